"""Steer a run from its folder: `workbench stop|pause|resume|save RUN_DIR` act on a run
started anywhere (another terminal, a papermill job, a cluster node that shares the
filesystem), at its next optimizer step, exactly like the in-process `Control`.

    send_request(run_dir, "pause")          # the sender: any process
    reader = RequestReader(run_dir, session)
    reader.poll(control)                    # the run, after every optimizer step

A request is one JSON line appended to the run's `control.jsonl`, addressed to the
process that runs the folder now: the `session` in summary.json, a fresh token each
time a run starts or resumes. So a request left behind for an earlier process is never
honoured by a resumed one, and a run reads only its own folder's file, never another
run's. The reader takes complete lines only, and a file it cannot read never stops
training. One short `write` in append mode is not torn by another sender on a local
filesystem; on NFS, senders on different hosts at the same instant can clash, and a
request may be seen a few seconds late (attribute caching).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.engine.rundir import RunDir, read_new_lines, run_status
from workbench.errors import RunError

log = logging.getLogger(__name__)

REQUESTS = "control.jsonl"
ACTIONS = ("stop", "pause", "resume", "save")

# What to say when the run is not running: the next step for each status.
NOT_RUNNING_HINTS = {
    "finished": "it has ended; `workbench generate {run} --prompt \"...\"` uses its adapter",
    "stopped": "it was stopped; `workbench train --resume {run}` continues it",
    "failed": "it failed (summary.json says why); `workbench train --resume {run}` continues "
              "from its last checkpoint",
    "interrupted": "its process is gone; `workbench train --resume {run}` continues from its "
                   "last checkpoint",
    "unknown": "it has no summary.json yet (a run that is just starting writes it in a "
               "moment: try again)",
}


def send_request(run_dir: str | Path, action: str) -> dict:
    """Ask the run in `run_dir` to `action` (stop, pause, resume, save) at its next optimizer
    step; returns the running summary it was addressed to. Raises RunError when the folder
    is not a run or the run is not running."""
    if action not in ACTIONS:
        raise RunError(f"unknown request {action!r}; use one of: {', '.join(ACTIONS)}")
    folder = RunDir.open(run_dir)  # not a run folder: says so
    summary = folder.summary()
    status = run_status(summary)
    if status != "running":
        hint = NOT_RUNNING_HINTS.get(status, "").format(run=folder.path)
        raise RunError(f"{folder.path} is not running (status: {status}): {hint}; nothing was sent")
    session = summary.get("session")
    if not session:
        raise RunError(f"{folder.path} was started by a workbench that does not read requests; "
                       "stop it with Ctrl-C (or SIGTERM) in its own process")
    line = json.dumps({"session": session, "action": action,
                       "sent": time.strftime("%Y-%m-%dT%H:%M:%S"),
                       "by": f"{socket.gethostname()}:{os.getpid()}"}) + "\n"
    with open(folder.file(REQUESTS), "a", encoding="utf-8") as handle:
        handle.write(line)
    return summary


class RequestReader:
    """The running side: this session's new requests in `control.jsonl`, turned into
    `Control` calls. A poll with nothing new costs an open and an empty read."""

    def __init__(self, run_dir: RunDir, session: str):
        self.path = run_dir.file(REQUESTS)
        self.session = session
        self.offset = 0  # from the start: earlier sessions' lines are skipped by their token
        self.warned = False

    def poll(self, control) -> list[str]:
        """Apply every new request addressed to this session; returns their actions."""
        try:
            lines, self.offset = read_new_lines(self.path, self.offset)
        except OSError as exc:  # unreadable (permissions, a stale handle): go on training
            if not self.warned:  # once, not at every step
                log.warning("cannot read requests in %s: %s", self.path, exc)
                self.warned = True
            return []
        actions = []
        for line in lines:
            try:
                request = json.loads(line)
            except ValueError:
                continue  # a stray line must not stop training
            if not isinstance(request, dict) or request.get("session") != self.session:
                continue
            action = request.get("action")
            if action in ACTIONS:
                apply(control, action)
                actions.append(action)
        return actions


class FolderControl:
    """`Control`'s calls for a run in another process: each one a request through its
    folder (what a dashboard attached to that run presses)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.stop_requested = False

    def stop(self) -> None:
        send_request(self.run_dir, "stop")
        self.stop_requested = True

    def pause(self) -> None:
        send_request(self.run_dir, "pause")

    def resume(self) -> None:
        send_request(self.run_dir, "resume")

    def save_now(self) -> None:
        send_request(self.run_dir, "save")


def apply(control, action: str) -> None:
    {"stop": control.stop, "pause": control.pause, "resume": control.resume,
     "save": control.save_now}[action]()


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


def wait_for(run_dir: str | Path, action: str, sent_to: dict, seconds: float,
             poll_seconds: float = 0.2) -> Outcome:
    """Wait up to `seconds` for the run to show in summary.json that it did `action`
    (`sent_to`: the summary `send_request` returned)."""
    folder = RunDir(run_dir)
    deadline = time.monotonic() + seconds
    while True:
        summary = folder.summary()
        status = run_status(summary)
        if status == "running" and summary.get("session") != sent_to.get("session"):
            return Outcome(False, f"{folder.path} was started again (pid {summary.get('pid')} on "
                           f"{summary.get('host')}) before it could {action}; send it again")
        if status != "running":
            ended = f"{folder.path} has ended: {status} at step {summary.get('step')}"
            if action == "stop":
                return Outcome(status in ("stopped", "finished"), ended)
            return Outcome(False, f"{ended}, before it could {action}")
        if action == "pause" and summary.get("paused"):
            return Outcome(True, f"{folder.path} is paused at step {summary.get('paused_at')}")
        if action == "resume" and not summary.get("paused"):
            return Outcome(True, f"{folder.path} is running again")
        if action == "save" and summary.get("saved_at") != sent_to.get("saved_at"):
            return Outcome(True, f"{folder.path} saved {summary.get('last_checkpoint')}")
        if time.monotonic() >= deadline:
            return Outcome(False, f"{folder.path} has not done it after {seconds:g} s; the "
                           "request stays and is honoured after its current optimizer step")
        time.sleep(poll_seconds)
