"""The bridge between transformers.Trainer and the workbench: trainer hooks become events
(which the run folder's recorder and every other sink receive); `Control` requests
become TrainerControl flags. It writes nothing itself."""

from __future__ import annotations

import math
import time
from pathlib import Path

from transformers import TrainerCallback

from workbench.engine.distributed import Processes, agree_on_requests
from workbench.engine.recorder import (  # the metrics row format
    EVAL_FIELDS, STEP_FIELDS, event_from_metrics_row)
from workbench.events import (CheckpointSaved, Control, EvalLogged, EvalScored, RolloutSampled,
                              RunPaused, RunResumed, RunStarted, SampleGenerated, StepLogged)

ROLLOUT_GROUPS_SHOWN = 2
PAUSE_POLL_SECONDS = 0.1

# What Trainer itself logs; anything else in a log is the method's own (WorkbenchTrainer.log
# adds DPO's reward_accuracy, GRPO's reward/<function>, ...).
TRAINER_KEYS = {"loss", "grad_norm", "learning_rate", "epoch", "num_input_tokens_seen",
                "eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second",
                "total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second",
                "train_loss"}


def method_metrics(logs: dict, evaluation: bool = False) -> dict:
    return {k: float(v) for k, v in logs.items() if k not in TRAINER_KEYS and
            isinstance(v, (int, float)) and k.startswith("eval_") == evaluation}


class EventCallback(TrainerCallback):
    def __init__(self, *, emit, control: Control, started: dict, sample_every: int, sampler,
                 sample_base_first: bool, elapsed_offset: float = 0.0, evaluator=None,
                 evaluate_every: int = 0, evaluate_base_first: bool = False,
                 evaluate_start_first: bool = False, steering=None,
                 processes: Processes = Processes()):
        """`sampler(base)` returns (prompts, completions); `evaluator(base)` returns the
        fields of an EvalScored event but its step (None: no scores or forgetting check).
        `evaluate_start_first`: also score step 0 with the adapter on, for a run that
        continues an earlier adapter (there the adapter off is not where it starts).
        `steering`: a RequestReader (steering.py), requests from other processes.
        `processes`: this run's processes; only the main one samples and scores, and all
        of them agree on each step's requests (distributed.py)."""
        self.emit, self.requests, self.steering = emit, control, steering
        self.processes = processes
        self.started, self.sample_every, self.sampler = started, sample_every, sampler
        self.sample_base_first = sample_base_first
        self.evaluator, self.evaluate_every = evaluator, evaluate_every
        self.evaluate_base_first = evaluate_base_first and evaluator is not None
        self.evaluate_start_first = evaluate_start_first and evaluator is not None
        self.scored: list[EvalScored] = []  # every evaluation of this run, resumes included
        self.trainer = None  # set by the engine once the Trainer exists
        self.stopped_by_request = False
        self.last_loss = None
        self.last_metrics: dict = {}  # the method's own, from the last log step
        self.last_eval_metrics: dict = {}
        self.eval_losses: list[tuple[int, float]] = []
        self._elapsed_offset = elapsed_offset
        self._clock_start = self._last_log_time = time.perf_counter()
        self._excluded = 0.0  # seconds spent paused or sampling, not training

    def restore_history(self, rows: list[dict]) -> None:
        """On resume: the last training loss and the evaluations logged before the checkpoint
        (the metrics rows kept), so the run's summary and its best step cover all of it."""
        for row in rows:
            if "loss" in row:
                self.last_loss = row["loss"]
                self.last_metrics = {k: v for k, v in row.items() if k not in STEP_FIELDS}
            if "eval_loss" in row:
                self.eval_losses.append((row["step"], row["eval_loss"]))
                self.last_eval_metrics = {k: v for k, v in row.items() if k not in EVAL_FIELDS}
            if "scored_examples" in row:
                scored = event_from_metrics_row(row)
                if scored is not None:
                    self.scored.append(scored)

    def elapsed(self) -> float:
        return self._elapsed_offset + time.perf_counter() - self._clock_start

    def on_train_begin(self, args, state, control, **kwargs):
        self.emit(RunStarted(total_steps=state.max_steps, **self.started))
        if self.sample_base_first:
            self.sample(0, base=True)  # the untuned model's answers, for comparison
        if self.evaluate_base_first:
            self.score(0, base=True)  # the untuned model's scores and general-text loss
        if self.evaluate_start_first:
            self.score(0)  # the earlier adapter this run continues, before any step
        self._clock_start = self._last_log_time = time.perf_counter()
        self._excluded = 0.0

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self._log_train(state, logs)
        if "eval_loss" in logs:
            self._log_eval(state, logs)

    def _log_train(self, state, logs):
        now = time.perf_counter()
        new_tokens = self.trainer.take_tokens_seen()
        state.num_input_tokens_seen += new_tokens  # saved in checkpoints, so resume continues
        busy = max(now - self._last_log_time - self._excluded, 1e-9)
        self._last_log_time, self._excluded = now, 0.0
        grad_norm = logs.get("grad_norm")
        event = StepLogged(
            step=state.global_step, total_steps=state.max_steps, epoch=round(state.epoch or 0, 4),
            loss=float(logs["loss"]), learning_rate=float(logs.get("learning_rate", 0.0)),
            grad_norm=None if grad_norm is None else float(grad_norm),
            tokens_seen=int(state.num_input_tokens_seen),
            tokens_per_second=round(new_tokens / busy, 1), elapsed_seconds=round(self.elapsed(), 2),
            metrics=method_metrics(logs))
        self.last_loss = event.loss
        self.last_metrics = event.metrics
        self.emit(event)
        rollout = getattr(self.trainer, "last_rollout", None)
        if rollout is not None:  # reward tuning: what it sampled, with the rewards
            shown = ROLLOUT_GROUPS_SHOWN * rollout.group_size
            self.emit(RolloutSampled(step=state.global_step,
                                     prompts=tuple(rollout.prompts[:shown]),
                                     completions=tuple(rollout.completions[:shown]),
                                     rewards=tuple(float(r) for r in rollout.rewards[:shown])))

    def _log_eval(self, state, logs):
        loss = float(logs["eval_loss"])
        event = EvalLogged(step=state.global_step, eval_loss=loss,
                           perplexity=math.exp(min(loss, 50.0)), epoch=round(state.epoch or 0, 4),
                           elapsed_seconds=round(self.elapsed(), 2),
                           metrics=method_metrics(logs, evaluation=True))
        self.eval_losses.append((event.step, loss))
        self.last_eval_metrics = event.metrics
        self.emit(event)

    def on_step_end(self, args, state, control, **kwargs):
        self.take_outside_requests()
        if self.sample_every and state.global_step % self.sample_every == 0:
            self.sample(state.global_step)
        if self.evaluate_every and state.global_step % self.evaluate_every == 0:
            self.score(state.global_step)
        if self.requests.pause_requested and not self.requests.stop_requested:
            self._pause(state)  # a save asked with the pause is done at once, while paused
        if self.requests.take_save_request():
            control.should_save = True
        if self.requests.stop_requested:
            self.stopped_by_request = True
            control.should_training_stop = True
            control.should_save = True  # a stopped run can be resumed from exactly here

    def _pause(self, state) -> None:
        """Hold the training thread between steps; the model stays in memory, so a paused
        run can be sampled, chatted with and checkpointed, then resumed. Every process
        waits here together, asking each poll whether to save, resume or stop."""
        paused_at = time.perf_counter()
        self.emit(RunPaused(step=state.global_step))
        while True:
            time.sleep(PAUSE_POLL_SECONDS)
            self.take_outside_requests()  # a `workbench resume` or `stop` wakes the run
            if self.requests.take_save_request():
                # The same state Trainer saves right after this hook: step, optimizer and
                # scheduler are all updated.
                self.trainer.save_checkpoint_now()
                self.on_save(self.trainer.args, state, None)
            if not self.requests.pause_requested or self.requests.stop_requested:
                break
        self._excluded += time.perf_counter() - paused_at
        self.emit(RunResumed(step=state.global_step))

    def take_outside_requests(self) -> None:
        """`workbench stop|pause|resume|save RUN_DIR` from any process become Control calls
        (read by the main process), then every process of the run takes the same ones."""
        if self.steering is not None:
            self.steering.poll(self.requests)
        agree_on_requests(self.requests, self.processes)

    def sample(self, step: int, base: bool = False) -> None:
        if not self.processes.is_main:  # the others go on to the next step and wait there
            return
        began = time.perf_counter()
        prompts, completions = self.sampler(base)
        self._excluded += time.perf_counter() - began
        if not prompts:
            return
        self.emit(SampleGenerated(step=step, prompts=tuple(prompts),
                                  completions=tuple(completions), adapter=not base))

    def score(self, step: int, base: bool = False) -> None:
        """Answer and score the held-out cases (and the forgetting check) now."""
        if self.evaluator is None or not self.processes.is_main:
            return
        began = time.perf_counter()
        fields = self.evaluator(base)
        self._excluded += time.perf_counter() - began
        event = EvalScored(step=step, adapter=not base, **fields)
        self.scored.append(event)
        self.emit(event)

    def scored_at(self, step: int) -> bool:
        return any(event.step == step and event.adapter for event in self.scored)

    def on_save(self, args, state, control, **kwargs):
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.emit(CheckpointSaved(step=state.global_step, path=str(path)))
