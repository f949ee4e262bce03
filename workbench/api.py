"""The Python entry points a notebook cell or script calls.

    from workbench import RunConfig, train
    result = train(RunConfig.from_dict({"data": {"path": "my.jsonl"}, "train": {"max_steps": 50}}))
"""

from __future__ import annotations

from pathlib import Path

from workbench.config import RunConfig
from workbench.console import ConsoleSink
from workbench.engine.rundir import ENVIRONMENT, RunDir
from workbench.engine.run import Run, RunResult
from workbench.events import Control
from workbench.plots import LossChartFile


def default_sinks(quiet: bool = False) -> list:
    return [LossChartFile()] + ([] if quiet else [ConsoleSink()])


def train(config: RunConfig, sinks=(), control: Control | None = None,
          quiet: bool = False) -> RunResult:
    """Train to the end (blocking), printing progress unless quiet; returns status and summary."""
    return Run(config, sinks=default_sinks(quiet) + list(sinks), control=control).execute()


def resume(run_dir: str | Path, sinks=(), control: Control | None = None,
           quiet: bool = False) -> RunResult:
    """Continue a stopped, failed or killed run from its last checkpoint, in the same folder."""
    return Run.resume(run_dir, sinks=default_sinks(quiet) + list(sinks), control=control).execute()


class TunedModel:
    """A finished run's adapter on its base model, ready to answer prompts."""

    def __init__(self, run_dir: str | Path):
        from workbench.backends.hf import HFBackend
        from workbench.engine.stacking import base_adapter_dirs

        folder = RunDir.open(run_dir)
        if not folder.adapter_dir.is_dir():
            raise_missing_adapter(folder)
        self.config = folder.read_config()
        fmt = folder.read_json(ENVIRONMENT).get("data", {}).get("format", self.config.data.format)
        self.chat = fmt in ("messages", "alpaca", "auto")
        # A run stacked on earlier adapters (lora.start_mode merge) needs them merged first.
        self.bundle = HFBackend().load(self.config, adapter_dir=str(folder.adapter_dir),
                                       trainable=False,
                                       base_adapters=[str(p) for p in base_adapter_dirs(folder.path)])

    def generate(self, prompts: list[str], base: bool = False, max_new_tokens: int | None = None,
                 temperature: float | None = None) -> list[str]:
        from workbench.engine.sampling import generate

        sample = self.config.sample
        return generate(self.bundle.model, self.bundle.tokenizer, prompts,
                        max_new_tokens=sample.max_new_tokens if max_new_tokens is None else max_new_tokens,
                        temperature=sample.temperature if temperature is None else temperature,
                        chat=self.chat, system_prompt=self.config.data.system_prompt, base=base)


def tokenizer_for(model: str = "demo", trust_remote_code: bool = False):
    """The tokenizer (with its chat template) of what model.name accepts: `demo`, a model
    folder, a .gguf file or a hub id; the weights are not loaded."""
    from workbench.backends.hf import load_tokenizer
    from workbench.backends.models import resolve_model

    return load_tokenizer(resolve_model(model), trust_remote_code)


def raise_missing_adapter(folder: RunDir):
    from workbench.errors import RunError

    status = folder.status()
    if folder.last_checkpoint() is not None:
        hint = f"resume it with `workbench train --resume {folder.path}`"
    else:
        hint = "it has no checkpoint either, so train it again"
    raise RunError(f"{folder.path} has no adapter (status: {status}); {hint}")
