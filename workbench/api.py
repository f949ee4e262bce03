"""The Python entry points a notebook cell or script calls.

    from workbench import RunConfig, train
    result = train(RunConfig.from_dict({"data": {"path": "my.jsonl"}, "train": {"max_steps": 50}}))
"""

from __future__ import annotations

from pathlib import Path

from workbench.config import RunConfig
from workbench.console import ConsoleSink
from workbench.engine.loaded import LoadedRun, load_run
from workbench.engine.preview import tokenizer_for  # noqa: F401 (part of the public API)
from workbench.engine.run import Run, RunResult
from workbench.events import Control
from workbench.plots.loss import LossChartFile


def default_sinks(quiet: bool = False) -> list:
    return [LossChartFile()] + ([] if quiet else [ConsoleSink()])


def train(config: RunConfig, sinks=(), control: Control | None = None,
          quiet: bool = False, scorers=(), run_dir: str | Path | None = None) -> RunResult:
    """Train to the end (blocking), printing progress unless quiet; returns status and summary.
    `scorers` are your own f(prompt, answer, reference) -> 0..1, beside eval.scorers.
    `run_dir`: a new, empty folder to write into (default: output.runs_dir/<name>-<time>)."""
    return Run(config, sinks=default_sinks(quiet) + list(sinks), control=control,
               scorers=scorers, run_dir=run_dir).execute()


def resume(run_dir: str | Path, sinks=(), control: Control | None = None,
           quiet: bool = False, scorers=(), nproc: int | None = None) -> RunResult:
    """Continue a stopped, failed or killed run from its last checkpoint, in the same folder
    (`nproc`: in that many processes per machine, not the number it was started with)."""
    return Run.resume(run_dir, sinks=default_sinks(quiet) + list(sinks), control=control,
                      scorers=scorers, nproc=nproc).execute()


def TunedModel(run_dir: str | Path) -> LoadedRun:  # noqa: N802 (the README's name since 0.1)
    """A finished run's model, ready to answer prompts: `load_run(run_dir)`."""
    return load_run(run_dir)

