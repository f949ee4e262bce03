"""The run folder's record of a run, written from its events.

    recorder = RunRecorder(run_dir)
    recorder(StepLogged(...))     # one row in metrics.jsonl

Every training method (SFT today) reports through the same events, so writing them
down here gives each the same run folder, and so the same dashboard, History tab and
compare notebook. The engine calls the recorder before the other sinks and outside
`fan_out`: a chart that fails is logged and forgotten, but a row that cannot be
written (a full disk) must fail the run, which then says so.
"""

from __future__ import annotations

import dataclasses

from workbench.engine.rundir import ANSWERS, METRICS, ROLLOUTS, SAMPLES, SUMMARY, RunDir
from workbench.events import (CheckpointSaved, EvalLogged, EvalScored, RolloutSampled, RunEnded,
                              RunPaused, RunResumed, SampleGenerated, StepLogged)


class RunRecorder:
    """Events -> metrics.jsonl, samples.jsonl, the running summary's progress, summary.json."""

    def __init__(self, run_dir: RunDir):
        self.run_dir = run_dir

    def __call__(self, event) -> None:
        if isinstance(event, (StepLogged, EvalLogged)):
            row = dataclasses.asdict(event)
            row.update(row.pop("metrics"))  # reward_accuracy, eval_reward_accuracy, ... flat
            self.run_dir.append_jsonl(METRICS, row)
        elif isinstance(event, EvalScored):
            self.run_dir.append_jsonl(METRICS, scores_row(event))
            for answer in event.answers:
                self.run_dir.append_jsonl(ANSWERS, {"step": event.step, "adapter": event.adapter,
                                                    **answer})
        elif isinstance(event, RolloutSampled):
            for prompt, completion, reward in zip(event.prompts, event.completions,
                                                  event.rewards):
                self.run_dir.append_jsonl(ROLLOUTS, {"step": event.step, "prompt": prompt,
                                                     "completion": completion,
                                                     "reward": reward})
        elif isinstance(event, SampleGenerated):
            for prompt, completion in zip(event.prompts, event.completions):
                self.run_dir.append_jsonl(SAMPLES, {"step": event.step, "adapter": event.adapter,
                                                    "prompt": prompt, "completion": completion})
        elif isinstance(event, CheckpointSaved):
            self.run_dir.note_checkpoint(event.step, event.path)
        elif isinstance(event, (RunPaused, RunResumed)):
            self.run_dir.note_paused(isinstance(event, RunPaused), event.step)
        elif isinstance(event, RunEnded):
            self._write_summary(event)

    def _write_summary(self, event: RunEnded) -> None:
        try:
            self.run_dir.write_json(SUMMARY, event.summary)
        except OSError:
            if event.status != "failed":
                raise
            # a full disk must not hide the error that failed the run


def scores_row(event: EvalScored) -> dict:
    """The metrics.jsonl row of an evaluation: score/<name> per scorer, the general-text loss
    and its change, and what answering cost."""
    row = {"step": event.step, "adapter": event.adapter,
           **{f"score/{name}": value for name, value in event.scores.items()},
           "scored_examples": event.examples, "eval_seconds": round(event.seconds, 2),
           "answer_tokens_per_second": round(event.tokens_per_second, 1)}
    if event.general_loss is not None:
        row["general_loss"] = event.general_loss
        row["general_loss_change"] = event.general_change
    return row


# A metrics.jsonl row holds these fields of its event; every other key is in its metrics.
STEP_FIELDS = {f.name for f in dataclasses.fields(StepLogged)} - {"metrics"}
EVAL_FIELDS = {f.name for f in dataclasses.fields(EvalLogged)} - {"metrics"}


def event_from_metrics_row(row: dict):
    """The event a metrics.jsonl row was written from (the inverse of the recorder, for a
    dashboard that follows a run from its folder); None for a row it cannot read."""
    try:
        if "scored_examples" in row:
            return EvalScored(step=row["step"], adapter=row["adapter"],
                              scores={k[6:]: v for k, v in row.items() if k.startswith("score/")},
                              examples=row["scored_examples"],
                              general_loss=row.get("general_loss"),
                              general_change=row.get("general_loss_change"),
                              seconds=row.get("eval_seconds", 0.0),
                              tokens_per_second=row.get("answer_tokens_per_second", 0.0))
        if "eval_loss" in row:
            return EvalLogged(**{k: row[k] for k in EVAL_FIELDS if k in row},
                              metrics={k: v for k, v in row.items() if k not in EVAL_FIELDS})
        if "loss" in row:
            return StepLogged(**{k: row[k] for k in STEP_FIELDS},
                              metrics={k: v for k, v in row.items() if k not in STEP_FIELDS})
    except (KeyError, TypeError):
        return None
    return None
