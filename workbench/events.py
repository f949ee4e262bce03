"""Events out, control in.

The engine tells the world what happens through frozen event dataclasses sent to
sinks (any callable taking one event). The only way back into a running training
loop is a `Control`, whose requests are honoured at the next optimizer step.
Stdlib only: the same events drive the run folder (`engine.recorder`), a console, a
chart or a widget, whatever the training method that emits them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunStarted:
    run_dir: str
    config: dict
    total_steps: int
    train_examples: int
    eval_examples: int
    backend: str
    device: str
    data: dict = field(default_factory=dict)  # per split: examples, truncated, dropped, tokens


@dataclass(frozen=True)
class StepLogged:
    step: int
    total_steps: int
    epoch: float
    loss: float
    learning_rate: float
    grad_norm: float | None
    tokens_seen: int
    tokens_per_second: float
    elapsed_seconds: float
    metrics: dict = field(default_factory=dict)  # the method's own: reward_accuracy, kl, ...


@dataclass(frozen=True)
class EvalLogged:
    step: int
    eval_loss: float
    perplexity: float
    epoch: float = 0.0
    elapsed_seconds: float = 0.0
    metrics: dict = field(default_factory=dict)  # the method's own, on held-out data


@dataclass(frozen=True)
class EvalScored:
    """Held-out answers scored (eval.scorers) and the forgetting check, at one step; step 0
    with adapter=False is the base model. general_change is the general-text loss's
    relative change from the base model's (None for the base itself)."""

    step: int
    adapter: bool
    scores: dict  # scorer name -> mean score, 0 to 1
    examples: int
    general_loss: float | None = None
    general_change: float | None = None
    seconds: float = 0.0
    tokens_per_second: float = 0.0
    answers: tuple = ()  # per case: where, prompt, reference, answer, scores


@dataclass(frozen=True)
class SampleGenerated:
    """One completion per sample prompt; step 0 with adapter=False is the base model."""

    step: int
    prompts: tuple[str, ...]
    completions: tuple[str, ...]
    adapter: bool = True


@dataclass(frozen=True)
class RolloutSampled:
    """Reward tuning: answers sampled at a step (the first groups of the latest rollout)
    with their total rewards."""

    step: int
    prompts: tuple[str, ...]
    completions: tuple[str, ...]
    rewards: tuple[float, ...]


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: str


@dataclass(frozen=True)
class RunPaused:
    step: int


@dataclass(frozen=True)
class RunResumed:
    step: int


@dataclass(frozen=True)
class RunEnded:
    """The last event of every run. status is finished, stopped or failed."""

    status: Literal["finished", "stopped", "failed"]
    step: int
    run_dir: str
    summary: dict = field(default_factory=dict)
    error: str | None = None


Event = (
    RunStarted | StepLogged | EvalLogged | EvalScored | SampleGenerated | RolloutSampled
    | CheckpointSaved
    | RunPaused | RunResumed | RunEnded
)


class Sink(Protocol):
    def __call__(self, event: Event) -> None: ...


def fan_out(sinks: list[Sink]) -> Callable[[Event], None]:
    """One emit function for many sinks. A failing sink is logged, never kills training."""

    def emit(event: Event) -> None:
        for sink in sinks:
            try:
                sink(event)
            except Exception:  # a broken chart must not lose an evening's run
                log.exception("sink %r failed on %s", sink, type(event).__name__)

    return emit


class Control:
    """Thread-safe requests to a running training loop.

    Call from any thread (a button callback, a signal handler, a test). The engine
    checks them after every optimizer step.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._save = threading.Event()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # a paused run must wake up to stop

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def save_now(self) -> None:
        self._save.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def pause_requested(self) -> bool:
        return not self._running.is_set()

    def take_save_request(self) -> bool:
        """True once per save_now() call."""
        if self._save.is_set():
            self._save.clear()
            return True
        return False
