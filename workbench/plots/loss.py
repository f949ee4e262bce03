"""Loss charts: the run folder's loss.png, redrawn by a sink as the run goes, and the
training-loss curves of several runs on one chart (History tab, sweeps, compare notebook).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from workbench.events import RunEnded, RunStarted, StepLogged
from workbench.plots import SMOOTH_FROM, empty_note, figure_png, smooth, thin


def overlay_figure(curves: dict[str, tuple[list, list]], empty: str = "no runs to compare",
                   title: str = ""):
    """Training-loss curves of several runs on one Figure (smoothed when long enough)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 3.6), dpi=80)
    axes = figure.subplots()
    if not curves:
        empty_note(axes, empty)
        return figure
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    for name, (steps, losses) in curves.items():
        values = smooth(losses) if len(losses) >= SMOOTH_FROM else losses
        xs, ys = thin(steps, values)
        axes.plot(xs, ys, linewidth=1.5, label=name, marker="o" if len(xs) < 5 else None)
    axes.legend(fontsize=8)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("training loss")
    if title:
        axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def overlay_png(curves: dict[str, tuple[list, list]], path: str | Path | None = None,
                title: str = "", empty: str = "no runs to compare") -> bytes:
    """`overlay_figure` as PNG bytes (written to `path` too when given)."""
    return figure_png(overlay_figure(curves, empty, title), path)


def render_loss_png(steps, losses, eval_steps, eval_losses, path: Path, title: str = "") -> None:
    """Training loss (raw, and smoothed once long enough) and held-out loss, to `path`."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.6), dpi=100)
    axes = figure.subplots()
    axes.set_title(title, fontsize=10)
    if not steps and not eval_steps:
        empty_note(axes, "no loss logged yet")
        figure_png(figure, path)
        return
    smoothed = len(steps) >= SMOOTH_FROM
    if steps:
        axes.plot(steps, losses, color="#9ecae1" if smoothed else "#3182bd",
                  linewidth=1 if smoothed else 2, label="training loss")
    if smoothed:  # with few points the average only lags the raw curve
        axes.plot(steps, smooth(losses), color="#3182bd", linewidth=2, label="smoothed")
    if eval_steps:
        axes.plot(eval_steps, eval_losses, "o-", color="#e6550d", label="held-out loss")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure_png(figure, path)


def draw_run_chart(run_dir: Path, title: str = "") -> Path:
    """Render loss.png from the run folder's metrics.jsonl (the whole curve, resumes included)."""
    from workbench.engine.rundir import LOSS_PNG, RunDir

    rows = RunDir(run_dir).metrics()
    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval_loss" in r]
    path = Path(run_dir) / LOSS_PNG
    render_loss_png([r["step"] for r in train], [r["loss"] for r in train],
                    [r["step"] for r in evals], [r["eval_loss"] for r in evals], path,
                    title or Path(run_dir).name)
    return path


class LossChartFile:
    """Sink: redraw the run folder's loss.png at most every `every_seconds`, and at the end.

    Intermediate redraws (50-100 ms of CPU each) run on a helper thread, so the training
    thread only pays for starting it; the final chart is drawn before the run returns.
    """

    def __init__(self, every_seconds: float = 30.0):
        self.every_seconds = every_seconds
        self.run_dir: Path | None = None
        self._last_draw = time.monotonic()
        self._drawing = threading.Lock()

    def __call__(self, event) -> None:
        if isinstance(event, RunStarted):
            self.run_dir = Path(event.run_dir)
        elif isinstance(event, StepLogged) and self.run_dir is not None:
            if time.monotonic() - self._last_draw > self.every_seconds:
                self._last_draw = time.monotonic()
                threading.Thread(target=self._draw_once, args=(self.run_dir,), daemon=True).start()
        elif isinstance(event, RunEnded):
            with self._drawing:
                draw_run_chart(Path(event.run_dir), f"{Path(event.run_dir).name}: {event.status}")

    def _draw_once(self, run_dir: Path) -> None:
        if self._drawing.acquire(blocking=False):  # skip if a redraw is still running
            try:
                draw_run_chart(run_dir)
            finally:
                self._drawing.release()
