"""The live view: a sink that turns run events into a status line, charts and a samples grid.

It runs on the training thread and changes widgets only by assigning traits. Charts
are redrawn at most every `redraw_seconds` (and once at the end), and never more often
than keeps drawing under a tenth of the time: a redraw plots at most a few hundred
points per curve, so its cost does not grow with the run or depend on the step rate.
"""

from __future__ import annotations

import time

import ipywidgets as widgets

from workbench.evaluation.general import flagged
from workbench.events import (CheckpointSaved, EvalLogged, EvalScored, RolloutSampled, RunEnded,
                              RunPaused, RunResumed, RunStarted, SampleGenerated, StepLogged)
from workbench.ui.environment import peak_memory_text
from workbench.plots.live import LiveChart
from workbench.ui.render import rollout_html, samples_table_html, status_html

MAX_DRAW_SHARE = 0.1  # of wall time spent redrawing, at most


def empty_history() -> dict:
    return {"step": [], "loss": [], "learning_rate": [], "grad_norm": [], "eval_step": [],
            "eval_loss": [], "scores": {}, "base_scores": {},
            "general_step": [], "general_change": []}


class LiveView:
    """Status, chart and samples widgets, fed by events from the training thread."""

    def __init__(self, redraw_seconds: float = 1.0):
        self.redraw_seconds = redraw_seconds
        self.status = widgets.HTML(status_html("idle", "set up a run and press Start"))
        self.chart = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.chart.add_class("workbench-live-chart")
        self.samples = widgets.HTML()
        self._gap = redraw_seconds
        self.redraws = 0  # how many times the chart was drawn (tests and benchmarks read it)
        self.reset()

    def reset(self) -> None:
        self.history = empty_history()
        self.base: dict[str, str] = {}
        self.by_step: dict[int, dict[str, str]] = {}
        self.prompts: list[str] = []
        self.state, self.step, self.total, self.note = "starting", 0, 0, ""
        self.last_step: StepLogged | None = None
        self.last_scores: EvalScored | None = None
        self.rollout: RolloutSampled | None = None
        self.general_change: float | None = None  # the forgetting check's latest change
        self.run_dir = ""
        self._last_draw = 0.0
        self._draws_this_run = 0
        self._gap = self.redraw_seconds
        # A LiveChart, made on the first redraw of each run: an empty figure reused from the
        # last run would keep that run's axis ranges.
        self._chart = None

    # -- events --------------------------------------------------------------------------

    def __call__(self, event) -> None:
        handler = HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _started(self, event: RunStarted) -> None:
        self.state, self.total, self.run_dir = "running", event.total_steps, event.run_dir
        self.prompts = list(event.config.get("sample", {}).get("prompts", []))
        self.samples.value = samples_table_html(self.base, self.by_step, self.prompts)
        self.note = f"run folder {event.run_dir}"
        self.show_status()
        self.redraw()

    def _step(self, event: StepLogged) -> None:
        history = self.history
        history["step"].append(event.step)
        history["loss"].append(event.loss)
        history["learning_rate"].append(event.learning_rate)
        history["grad_norm"].append(event.grad_norm)
        if "reward_accuracy" in event.metrics:  # a preference run: how often it prefers right
            add_point(history, "reward accuracy", event.step, event.metrics["reward_accuracy"])
        for name, value in event.metrics.items():  # a reward-tuning run: each reward's mean
            if name == "reward" or (name.startswith("reward/") and not name.endswith("/std")):
                add_point(history, name, event.step, value)
        self.step, self.total, self.last_step = event.step, event.total_steps, event
        if self.state == "starting":
            self.state = "running"
        self.show_status()
        self.redraw_if_due()

    def _eval(self, event: EvalLogged) -> None:
        self.history["eval_step"].append(event.step)
        self.history["eval_loss"].append(event.eval_loss)
        if "eval_reward_accuracy" in event.metrics:
            add_point(self.history, "held-out reward accuracy", event.step,
                      event.metrics["eval_reward_accuracy"])
        self.note = f"held-out loss {event.eval_loss:.4f} at step {event.step}"
        self.show_status()
        self.redraw_if_due()

    def _scored(self, event: EvalScored) -> None:
        history = self.history
        if not event.adapter:
            history["base_scores"] = dict(event.scores)
        else:
            for name, value in event.scores.items():
                add_point(history, name, event.step, value)
        if event.adapter and event.general_change is not None:
            history["general_step"].append(event.step)
            history["general_change"].append(event.general_change)
            self.general_change = event.general_change
        self.last_scores = event
        self.show_status()
        self.redraw_if_due()

    def _sample(self, event: SampleGenerated) -> None:
        answers = dict(zip(event.prompts, event.completions))
        if event.adapter:
            self.by_step[event.step] = answers
        else:
            self.base = answers
        self.prompts = self.prompts or list(event.prompts)
        self.samples.value = samples_table_html(self.base, self.by_step, self.prompts)

    def _rollout(self, event: RolloutSampled) -> None:
        """Reward tuning: the latest sampled answers with their rewards, under the samples."""
        self.rollout = event
        self.samples.value = samples_table_html(self.base, self.by_step, self.prompts) + \
            rollout_html(event)

    def _checkpoint(self, event: CheckpointSaved) -> None:
        self.note = f"checkpoint saved at step {event.step}"
        self.show_status()

    def _paused(self, event: RunPaused) -> None:
        self.state, self.step = "paused", event.step
        self.note = "the model is in memory: chat with it, then Resume"
        self.show_status()

    def _resumed(self, event: RunResumed) -> None:
        self.state, self.note = "running", ""
        self.show_status()

    def _ended(self, event: RunEnded) -> None:
        self.state = event.status
        self.note = (event.error or "") if event.status == "failed" else \
            f"adapter saved in {event.run_dir}/adapter"
        self.show_status()
        self.redraw()

    # -- drawing -------------------------------------------------------------------------

    def show_status(self) -> None:
        self.status.value = status_html(self.state, self.status_text())

    def status_text(self) -> str:
        parts = []
        if self.total:
            parts.append(f"step {self.step} / {self.total}")
        event = self.last_step
        if event is not None:
            if self.state in ("running", "paused") and event.step:
                remaining = event.elapsed_seconds / event.step * (event.total_steps - event.step)
                parts.append(f"ETA {format_seconds(remaining)}")
            parts.append(f"loss {event.loss:.4f}")
            if "reward_accuracy" in event.metrics:
                parts.append(f"reward accuracy {event.metrics['reward_accuracy']:.2f}")
            if "reward" in event.metrics:
                parts.append(f"reward {event.metrics['reward']:.2f}")
            parts.append(f"{event.tokens_per_second:,.0f} tokens/s")
        scored = self.last_scores
        if scored is not None and scored.scores:
            base = self.history["base_scores"]
            parts.append(", ".join(
                f"{name} {value:.2f}" + (f" (base {base[name]:.2f})" if name in base and
                                         scored.adapter else "")
                for name, value in scored.scores.items()))
        if flagged(self.general_change):
            parts.append(f"FORGETTING: general-text loss {self.general_change:+.0%} from the "
                         "base model")
        parts.append(peak_memory_text())
        if self.note:
            parts.append(self.note)
        return " · ".join(p for p in parts if p)

    def redraw_if_due(self) -> None:
        if time.monotonic() - self._last_draw >= self._gap:
            self.redraw()

    def redraw(self) -> None:
        began = time.monotonic()
        self._chart = self._chart or LiveChart()
        self.chart.value = self._chart.png(self.history)
        self._last_draw = time.monotonic()
        # 0 means every event (tests ask for that). A run's first draw is not a measure:
        # it pays for matplotlib's first figure, and counting it would hold the chart
        # still for seconds (a dashboard attaching to a run reads many steps at once).
        if self.redraw_seconds > 0 and self._draws_this_run:
            self._gap = max(self.redraw_seconds, (self._last_draw - began) / MAX_DRAW_SHARE)
        self.redraws += 1
        self._draws_this_run += 1


def add_point(history: dict, name: str, step: int, value: float) -> None:
    steps, values = history["scores"].setdefault(name, ([], []))
    steps.append(step)
    values.append(value)


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


HANDLERS = {RunStarted: LiveView._started, StepLogged: LiveView._step, EvalLogged: LiveView._eval,
            EvalScored: LiveView._scored, RolloutSampled: LiveView._rollout,
            SampleGenerated: LiveView._sample, CheckpointSaved: LiveView._checkpoint,
            RunPaused: LiveView._paused, RunResumed: LiveView._resumed, RunEnded: LiveView._ended}
