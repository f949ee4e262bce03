"""Follow a run from its folder: what its recorder wrote, read back as events while the
files grow, so a dashboard can attach to a run it did not start (a terminal's, a
papermill job's, a cluster node's on a shared filesystem).

    follower = RunFollower(run_dir)
    for event in follower.poll():     # call again and again: only what is new
        live_view(event)

Only complete lines are read (a line being written waits for the next poll). Pauses,
resumes and the end come from summary.json, which the run replaces atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

from workbench.engine.recorder import event_from_metrics_row
from workbench.engine.rundir import (ENVIRONMENT, METRICS, ROLLOUTS, SAMPLES, RunDir,
                                     read_new_lines, run_status)
from workbench.events import (CheckpointSaved, RolloutSampled, RunEnded, RunPaused, RunResumed,
                              RunStarted, SampleGenerated)

ENDED = ("finished", "stopped", "failed", "interrupted")


class RunFollower:
    """New events of one run folder at each `poll()`; `ended` once the run has ended."""

    def __init__(self, run_dir: str | Path):
        self.folder = RunDir.open(run_dir)  # not a run folder: RunError saying so
        self.offsets = {METRICS: 0, SAMPLES: 0, ROLLOUTS: 0}
        self.started = False
        self.paused = False
        self.ended = False
        self.samples: dict[tuple[int, bool], dict[str, str]] = {}
        self.rollouts: dict[int, list[dict]] = {}
        self.saved_at = self.folder.summary().get("saved_at")  # checkpoints from now on

    def poll(self) -> list:
        if self.ended:
            return []
        summary = self.folder.summary()  # read first: rows written before an end are shown
        events = [] if self.started else [self._started()]
        self.started = True
        for row in self._new_rows(METRICS):
            event = event_from_metrics_row(row)
            if event is not None:
                events.append(event)
        events += self._samples(self._new_rows(SAMPLES))
        events += self._rollouts(self._new_rows(ROLLOUTS))
        if summary.get("saved_at") != self.saved_at:
            self.saved_at = summary.get("saved_at")
            events.append(CheckpointSaved(step=summary.get("step") or 0,
                                          path=str(summary.get("last_checkpoint"))))
        status = run_status(summary)
        if status == "running":
            events += self._pause_change(summary)
        elif status in ENDED:
            self.ended = True
            events.append(self._end(summary, status))
        return events

    def _pause_change(self, summary: dict) -> list:
        if bool(summary.get("paused")) == self.paused:
            return []
        self.paused = not self.paused
        step = summary.get("paused_at") or summary.get("step") or 0
        return [RunPaused(step=step) if self.paused else RunResumed(step=step)]

    def _end(self, summary: dict, status: str) -> RunEnded:
        if status == "interrupted":  # killed: its summary still says running
            error = (f"the run's process is gone (interrupted); `workbench train --resume "
                     f"{self.folder.path}` continues from its last checkpoint")
            return RunEnded(status="failed", step=summary.get("step") or 0,
                            run_dir=str(self.folder.path), summary=summary, error=error)
        return RunEnded(status=status, step=summary.get("step") or 0,
                        run_dir=str(self.folder.path), summary=summary,
                        error=summary.get("error"))

    @property
    def status(self) -> str:
        return run_status(self.folder.summary())

    def _started(self) -> RunStarted:
        config = self.folder.read_config().to_dict()
        try:
            data = self.folder.read_json(ENVIRONMENT).get("data") or {}
        except (OSError, ValueError):
            data = {}
        return RunStarted(run_dir=str(self.folder.path), config=config,
                          total_steps=config["train"].get("max_steps") or 0,
                          train_examples=data.get("train", {}).get("examples", 0),
                          eval_examples=data.get("eval", {}).get("examples", 0),
                          backend="", device="", data=data)

    def _new_rows(self, name: str) -> list[dict]:
        lines, self.offsets[name] = read_new_lines(self.folder.file(name), self.offsets[name])
        rows = []
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows

    def _samples(self, rows: list[dict]) -> list[SampleGenerated]:
        """One event per (step, adapter) touched, with every answer read so far: a group
        split across two polls is shown whole on the second."""
        touched = []
        for row in rows:
            key = (row.get("step", 0), bool(row.get("adapter", True)))
            self.samples.setdefault(key, {})[row.get("prompt", "")] = row.get("completion", "")
            if key not in touched:
                touched.append(key)
        return [SampleGenerated(step=step, prompts=tuple(self.samples[(step, adapter)]),
                                completions=tuple(self.samples[(step, adapter)].values()),
                                adapter=adapter) for step, adapter in touched]

    def _rollouts(self, rows: list[dict]) -> list[RolloutSampled]:
        """The latest step's sampled answers, whole even when split across two polls."""
        for row in rows:
            self.rollouts.setdefault(row.get("step", 0), []).append(row)
        if not rows:
            return []
        last = max(self.rollouts)
        latest = self.rollouts[last]
        self.rollouts = {last: latest}  # older steps are not shown again
        return [RolloutSampled(step=last, prompts=tuple(r.get("prompt", "") for r in latest),
                               completions=tuple(r.get("completion", "") for r in latest),
                               rewards=tuple(r.get("reward", 0.0) for r in latest))]
