"""`workbench sweep`: run a notebook over a grid of parameters and compare the runs.

    result = sweep("notebooks/01-quickstart.ipynb",
                   {"learning_rate": [1e-4, 3e-4], "lora_r": [8, 16]}, {"max_steps": 30})
    result.rows       # one dict per grid point: parameters, status, losses, times

Each grid point runs headless (`runner.execute`) with a runs folder of its own inside
the sweep folder, so the run it made is known without guessing:

    runs/sweep-<time>/
        sweep.json  results.csv  results.md  loss-overlay.png
        01-learning_rate-0.0001-lora_r-8/quickstart-<time>/    a run folder + notebook.ipynb
        02-...

A point whose notebook fails becomes a row with status `failed` naming the failing cell;
the other points still run. Points run one after another; `jobs=N` runs N at once, in
separate processes, each kernel with its share of the CPU threads.
"""

from __future__ import annotations

import csv
import difflib
import itertools
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.engine.rundir import RunDir, new_folder, run_status
from workbench.formatting import format_value
from workbench.notebooks.runner import (NotebookError, NotebookRun, check_notebook,
                                        describe_failure, execute, notebook_defaults,
                                        parse_value)

METRICS = ("status", "step", "final_loss", "final_eval_loss", "best_eval_loss", "train_seconds",
           "wall_seconds")
RESULTS_CSV, RESULTS_MD, OVERLAY_PNG, SWEEP_JSON = (
    "results.csv", "results.md", "loss-overlay.png", "sweep.json")


@dataclass
class SweepResult:
    """A sweep folder and its rows; csv, markdown and overlay are the files written there."""

    folder: Path
    swept: dict
    rows: list[dict]

    def __post_init__(self):
        self.csv, self.markdown, self.overlay = (self.folder / RESULTS_CSV,
                                                 self.folder / RESULTS_MD,
                                                 self.folder / OVERLAY_PNG)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "failed"]


def parse_grid(pairs: list[tuple[str, str]]) -> tuple[dict, dict]:
    """`-p name value` pairs -> (fixed, swept). A value with commas is a list to sweep
    (`1e-4,3e-4`); each item is typed as `papermill -p` types a value."""
    fixed, swept = {}, {}
    for name, text in pairs:
        if name in fixed or name in swept:
            raise NotebookError(f"-p {name} is given twice; put all its values in one "
                                f"comma-separated list, e.g. -p {name} 1,2")
        if "," in text:
            values = [parse_value(item.strip()) for item in text.split(",")]
            if any(item.strip() == "" for item in text.split(",")):
                raise NotebookError(f"-p {name} {text!r} has an empty item; write the values "
                                    "separated by single commas, e.g. 1e-4,3e-4")
            swept[name] = values
        else:
            fixed[name] = parse_value(text)
    return fixed, swept


def grid_points(swept: dict[str, list]) -> list[dict]:
    """Every combination, the first parameter varying slowest."""
    names = list(swept)
    return [dict(zip(names, values)) for values in itertools.product(*swept.values())]


def sweep(notebook: str | Path, swept: dict[str, list], fixed: dict | None = None, *,
          jobs: int = 1, kernel: str = "python3", timeout: float | None = None,
          progress=print) -> SweepResult:
    """Run every grid point, then write results.csv, results.md and loss-overlay.png.

    The sweep folder goes under the `runs_dir` given in `fixed` (else the notebook's
    default, else `runs`); `progress` gets one line per point (None: silent)."""
    path = check_notebook(notebook)
    fixed = dict(fixed or {})
    defaults = notebook_defaults(path)
    _check_names(path, swept, fixed, defaults)
    points = grid_points(swept)
    folder = new_folder(Path(str(fixed.pop("runs_dir", None) or defaults.get("runs_dir")
                                 or "runs")), "sweep")
    (folder / SWEEP_JSON).write_text(json.dumps(
        {"notebook": str(path), "fixed": fixed, "swept": swept, "points": len(points),
         "started": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2, default=str) + "\n")
    say = progress or (lambda *_: None)
    say(f"sweep of {len(points)} points over {', '.join(swept)}; results in {folder}")
    tasks = []
    for number, point in enumerate(points, start=1):
        point_dir = folder / point_folder_name(number, point)
        tasks.append((number, point, str(path), {**fixed, **point, "runs_dir": str(point_dir)}))
    runs = _run_all(tasks, jobs, kernel, timeout, say, len(points))
    rows = [result_row(number, point, run, folder) for (number, point, _, _), run in zip(tasks, runs)]
    result = SweepResult(folder, swept, rows)
    write_results(result, runs)
    failed = len(result.failed)
    say(f"done: {len(rows) - failed} of {len(rows)} points ran"
        + (f", {failed} failed (see the error column)" if failed else "")
        + f"; {result.markdown}")
    return result


def _check_names(path: Path, swept: dict, fixed: dict, defaults: dict) -> None:
    if not swept:
        raise NotebookError("nothing to sweep: give at least one parameter with a comma list, "
                            "e.g. -p learning_rate 1e-4,3e-4")
    if "runs_dir" in swept:
        raise NotebookError("runs_dir cannot be swept: every point gets its own folder inside "
                            "the sweep folder; give one runs_dir to say where that goes")
    if not defaults:
        raise NotebookError(f"{path} has no cell tagged `parameters`, so nothing can be swept; "
                            "tag the cell that sets the defaults (View > Cell Toolbar > Tags)")
    unknown = [name for name in swept if name not in defaults]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, defaults, n=1)
            hints.append(f"{name}" + (f" (did you mean {close[0]}?)" if close else ""))
        raise NotebookError(f"{path} has no parameter {', '.join(hints)}; its parameters are "
                            f"{', '.join(defaults)}")


def point_folder_name(number: int, point: dict) -> str:
    """`03-learning_rate-0.0003-lora_r-8`: readable and safe as a folder name."""
    text = "-".join(f"{name}-{value}" for name, value in point.items())
    return f"{number:02d}-" + re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80]


# -- running the points ------------------------------------------------------------------

def _run_point(notebook: str, parameters: dict, kernel: str, timeout) -> NotebookRun:
    return execute(notebook, parameters, kernel=kernel, timeout=timeout)


def _run_all(tasks, jobs: int, kernel: str, timeout, say, total: int) -> list[NotebookRun]:
    if jobs <= 1:
        runs = []
        for number, point, notebook, parameters in tasks:
            say(f"[{number}/{total}] {_label(point)} ...")
            runs.append(_run_point(notebook, parameters, kernel, timeout))
            say(f"[{number}/{total}] {_label(point)}: {_outcome(runs[-1])}")
        return runs
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Kernels inherit the environment: share the cores instead of each taking them all.
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    saved = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    for name, value in saved.items():
        if value is None:
            os.environ[name] = threads
    try:
        context = multiprocessing.get_context("spawn")  # no forked copies of torch state
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [pool.submit(_run_point, notebook, parameters, kernel, timeout)
                       for _, _, notebook, parameters in tasks]
            runs = []
            for (number, point, _, _), future in zip(tasks, futures):
                runs.append(future.result())
                say(f"[{number}/{total}] {_label(point)}: {_outcome(runs[-1])}")
            return runs
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)


def _label(point: dict) -> str:
    return ", ".join(f"{name}={value}" for name, value in point.items())


def _outcome(run: NotebookRun) -> str:
    if run.failure:
        return f"failed in {describe_failure(run.failure)}"
    if not run.run_dirs:
        return f"ran in {run.seconds:.0f} s (no run folder made)"
    summary = RunDir(run.run_dirs[-1]).summary()
    loss = summary.get("final_loss")
    return (f"{run_status(summary)} at step {summary.get('step')}"
            + (f", loss {loss:.4f}" if isinstance(loss, (int, float)) else "")
            + f" ({run.seconds:.0f} s)")


# -- results -----------------------------------------------------------------------------

def result_row(number: int, point: dict, run: NotebookRun, folder: Path) -> dict:
    """One table row. Metrics come from the last run folder the point's notebook made."""
    summary = RunDir(run.run_dirs[-1]).summary() if run.run_dirs else {}
    if run.failure:
        status = "failed"
    else:
        status = run_status(summary) if run.run_dirs else "no run"
    where = run.run_dirs[-1] if run.run_dirs else (run.executed[0] if run.executed else None)
    return {"point": number, **point, "status": status, "step": summary.get("step"),
            "final_loss": summary.get("final_loss"),
            "final_eval_loss": summary.get("final_eval_loss"),
            "best_eval_loss": summary.get("best_eval_loss"),
            "train_seconds": summary.get("elapsed_seconds"), "wall_seconds": run.seconds,
            "run": str(Path(where).relative_to(folder)) if where else "",
            "error": describe_failure(run.failure) if run.failure else ""}


def write_results(result: SweepResult, runs: list[NotebookRun]) -> None:
    from workbench.notebooks.compare import overlay_png, view_run

    columns = list(result.rows[0])
    with open(result.csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()}
                         for row in result.rows)
    result.markdown.write_text(markdown_table(result), encoding="utf-8")
    made = [(row, run) for row, run in zip(result.rows, runs) if run.run_dirs]
    views = [view_run(run.run_dirs[-1]) for _, run in made]
    labels = [_label({k: row[k] for k in result.swept}) for row, _ in made]
    overlay_png(views, labels, path=result.overlay, title=f"{result.folder.name}: training loss")


def markdown_table(result: SweepResult) -> str:
    rows = result.rows
    columns = list(rows[0])
    lines = [f"# {result.folder.name}", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    best = best_row(rows)
    if best is not None:
        key = "final_eval_loss" if best.get("final_eval_loss") is not None else "final_loss"
        lines += ["", f"Lowest {key.replace('_', ' ')}: point {best['point']} "
                  f"({_label({k: best[k] for k in result.swept})}), {best[key]:.4f}."]
    return "\n".join(lines) + "\n"


def best_row(rows: list[dict]) -> dict | None:
    """The finished point with the lowest held-out loss (training loss when none has one)."""
    done = [r for r in rows if r["status"] == "finished"]
    for key in ("final_eval_loss", "final_loss"):
        scored = [r for r in done if isinstance(r.get(key), (int, float))]
        if scored:
            return min(scored, key=lambda r: r[key])
    return None


def _cell(value) -> str:
    """A markdown table cell: no pipes or line breaks inside."""
    return format_value(value).replace("|", "\\|").replace("\n", " ")
