"""Several run folders side by side: outcomes, configs (differences highlighted), loss
curves and sample answers. Pure functions from run folders to HTML and PNG, for the
compare notebook and for sweeps.

    runs = load_runs("runs", last=3)
    HTML(config_table_html(runs)); Image(overlay_png(runs)); HTML(runs_samples_html(runs))

Configs are read as plain YAML, not validated, so runs made by an older workbench
(with fields since renamed) can still be compared. All run and model text is escaped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from workbench.engine.rundir import CONFIG, RunDir, list_runs, run_status
from workbench.errors import RunError
from workbench.formatting import format_value

DIFFERENT = "background:#fff3b0"  # rows whose value differs between runs
CELL = 'style="vertical-align:top;text-align:left;white-space:pre-wrap;max-width:22em"'


@dataclass
class RunView:
    """What a comparison needs from one run folder."""

    name: str
    path: Path
    config: dict  # flat: {"lora.r": 16, ...}
    summary: dict
    metrics: list[dict] = field(repr=False)
    samples: list[dict] = field(repr=False)

    @property
    def status(self) -> str:
        return run_status(self.summary)

    def losses(self) -> tuple[list, list]:
        rows = [r for r in self.metrics if "loss" in r]
        return [r["step"] for r in rows], [r["loss"] for r in rows]


def view_run(path: str | Path, name: str | None = None) -> RunView:
    """What a comparison reads from one run folder (no model is loaded)."""
    import yaml

    folder = RunDir.open(path)
    raw = yaml.safe_load(folder.file(CONFIG).read_text(encoding="utf-8")) or {}
    return RunView(name or folder.path.name, folder.path, flatten(raw), folder.summary(),
                   folder.metrics(), folder.samples())


def find_runs(runs_dir: str | Path) -> list[dict]:
    """`list_runs` rows of a runs folder and of its sub-folders that hold runs (a sweep's
    points), newest first; a nested run is named `<sub-folder>/<run>`."""
    rows = list_runs(runs_dir)
    root = Path(runs_dir)
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        if child.is_dir() and not (child / CONFIG).is_file():
            rows += [{**row, "run": f"{child.name}/{row['run']}"} for row in list_runs(child)]
    return sorted(rows, key=lambda r: Path(r["path"]).stat().st_mtime, reverse=True)


def load_runs(runs_dir: str | Path = "runs", names: list[str] | None = None,
              last: int | None = None) -> list[RunView]:
    """The named runs of a runs folder (or of a sweep folder), else its `last` newest;
    oldest first."""
    rows = find_runs(runs_dir)  # newest first
    available = [r["run"] for r in rows]
    if names:
        missing = [n for n in names if n not in available]
        if missing:
            raise RunError(f"no run named {', '.join(missing)} in {runs_dir}; it has: "
                           f"{', '.join(available) or 'no runs'}")
        by_name = {r["run"]: r["path"] for r in rows}
        return [view_run(by_name[n], n) for n in names]
    chosen = rows[:last] if last else rows
    return [view_run(r["path"], r["run"]) for r in reversed(chosen)]


def flatten(raw: dict) -> dict:
    """{"lora": {"r": 8}} -> {"lora.r": 8}"""
    flat = {}
    for section, values in (raw or {}).items():
        if isinstance(values, dict):
            for key, value in values.items():
                flat[f"{section}.{key}"] = value
        else:
            flat[section] = values
    return flat


def differing_keys(runs: list[RunView]) -> list[str]:
    """Config keys whose value is not the same in every run (a key missing counts)."""
    keys = _all_keys(runs)
    missing = object()
    return [k for k in keys if len({repr(r.config.get(k, missing)) for r in runs}) > 1]


def _all_keys(runs: list[RunView]) -> list[str]:
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.config if k not in keys]
    return keys


# -- tables ------------------------------------------------------------------------------

def config_table_html(runs: list[RunView], only_differences: bool = False) -> str:
    """Every config field as a row, one column per run; differing rows highlighted."""
    if not runs:
        return "<p><i>No runs to compare.</i></p>"
    differ = set(differing_keys(runs))
    keys = [k for k in _all_keys(runs) if k in differ or not only_differences]
    head = "".join(f"<th>{html.escape(r.name)}</th>" for r in runs)
    rows = []
    for key in keys:
        style = f' style="{DIFFERENT}"' if key in differ else ""
        cells = "".join(f"<td {CELL}>{html.escape(format_value(r.config.get(key, '–')))}</td>"
                        for r in runs)
        rows.append(f"<tr{style}><th {CELL}>{html.escape(key)}</th>{cells}</tr>")
    note = (f"<p>{len(differ)} field(s) differ (highlighted).</p>" if differ
            else "<p>The configs are identical.</p>")
    return (f'{note}<table class="workbench-config-compare"><thead><tr><th>field</th>{head}'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def summary_table_html(runs: list[RunView]) -> str:
    """Outcome of each run: status, steps, final and best losses, training time."""
    columns = (("status", lambda r: r.status), ("step", lambda r: r.summary.get("step")),
               ("final loss", lambda r: r.summary.get("final_loss")),
               ("final held-out loss", lambda r: r.summary.get("final_eval_loss")),
               ("best held-out loss", lambda r: r.summary.get("best_eval_loss")),
               ("training seconds", lambda r: r.summary.get("elapsed_seconds")))
    head = "".join(f"<th>{name}</th>" for name, _ in columns)
    rows = "".join(f"<tr><th>{html.escape(r.name)}</th>"
                   + "".join(f"<td>{html.escape(format_value(get(r)))}</td>" for _, get in columns)
                   + "</tr>" for r in runs)
    return (f'<table class="workbench-runs-compare"><thead><tr><th>run</th>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def final_answers(run: RunView) -> tuple[dict[str, str], dict[str, str]]:
    """(base model answers, answers at the run's last sampled step), by prompt."""
    base = {s["prompt"]: s["completion"] for s in run.samples if not s.get("adapter", True)}
    tuned: dict[str, tuple[int, str]] = {}
    for s in run.samples:
        if s.get("adapter", True) and s["step"] >= tuned.get(s["prompt"], (-1, ""))[0]:
            tuned[s["prompt"]] = (s["step"], s["completion"])
    return base, {prompt: answer for prompt, (_, answer) in tuned.items()}


def runs_samples_html(runs: list[RunView], limit: int = 5) -> str:
    """Prompts as rows: the base model's answer, then each run's last answer."""
    answers = [final_answers(r) for r in runs]
    prompts: list[str] = []
    for base, tuned in answers:
        prompts += [p for p in list(base) + list(tuned) if p not in prompts]
    if not prompts:
        return "<p><i>These runs have no sample answers (set sample.prompts to get some).</i></p>"
    base_from = next((r.name for r, (base, _) in zip(runs, answers) if base), None)
    base = next((b for b, _ in answers if b), {})
    head = (f"<th>base model ({html.escape(base_from)})</th>" if base_from else "") + "".join(
        f"<th>{html.escape(r.name)}</th>" for r in runs)
    rows = []
    for prompt in prompts[:limit]:
        cells = (f"<td {CELL}>{_text(base.get(prompt))}</td>" if base_from else "") + "".join(
            f"<td {CELL}>{_text(tuned.get(prompt))}</td>" for _, tuned in answers)
        rows.append(f"<tr><th {CELL}>{_text(prompt)}</th>{cells}</tr>")
    return (f'<table class="workbench-samples-compare"><thead><tr><th>prompt</th>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>")


def _text(value: str | None) -> str:
    return "<i>–</i>" if value is None else html.escape(value)


# -- charts ------------------------------------------------------------------------------

def loss_curves(runs: list[RunView], labels: list[str] | None = None) -> dict:
    return {label: run.losses() for label, run in zip(labels or [r.name for r in runs], runs)}


def overlay_png(runs: list[RunView], labels: list[str] | None = None, path: str | Path | None = None,
                title: str = "") -> bytes:
    """Training-loss curves of the runs on one chart; also written to `path` if given."""
    from workbench.plots import loss

    return loss.overlay_png(loss_curves(runs, labels), path, title)
