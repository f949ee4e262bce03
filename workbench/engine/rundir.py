"""The run folder: one directory per run holding everything needed to understand,
resume and reuse it. Summary and config are written atomically (temp file + rename);
metrics and samples are append-only JSON lines, flushed as written, so a killed run
leaves readable files (a torn last line is skipped on reading). summary.json says
`running` from the start and is replaced when the run ends, so a folder whose summary
still says `running` while its process is gone was killed: `run_status` calls it
`interrupted`.

    runs/<name>-<timestamp>/
        config.yaml  environment.json  metrics.jsonl  samples.jsonl  answers.jsonl
        adapter/  checkpoints/  loss.png  summary.json  ratings.jsonl  control.jsonl
        base_adapters/      (a run stacked with lora.start_mode merge: see start_from.py)

`locate_adapter` says what a path names (a run folder, its adapter/ or one of its
checkpoints, or a bare PEFT adapter folder); loading, stacking and the adapter library
all ask it, so they agree.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from workbench.config import RunConfig, config_to_yaml, load_config
from workbench.errors import RunError
from workbench.secrets import redact

CONFIG, ENVIRONMENT, METRICS, SAMPLES, SUMMARY = (
    "config.yaml", "environment.json", "metrics.jsonl", "samples.jsonl", "summary.json")
ANSWERS, RATINGS, ROLLOUTS = "answers.jsonl", "ratings.jsonl", "rollouts.jsonl"
REFERENCE = "reference_logps.json"  # preference runs: the reference model's log-probabilities
ADAPTER, CHECKPOINTS, LOSS_PNG = "adapter", "checkpoints", "loss.png"
BASE_ADAPTERS, ADAPTER_CONFIG = "base_adapters", "adapter_config.json"
CHECKPOINT_PREFIX = "checkpoint-"


def checkpoint_step(path: Path | None) -> int | None:
    """N of a `checkpoint-N` folder (0 for no folder), or None for a name that is not one."""
    if path is None:
        return 0
    number = Path(path).name.removeprefix(CHECKPOINT_PREFIX)
    return int(number) if Path(path).name.startswith(CHECKPOINT_PREFIX) and number.isdigit() \
        else None


def checkpoint_folders(root: Path) -> list[Path]:
    """The `checkpoint-N` folders in `root`, by step."""
    found = [(checkpoint_step(p), p) for p in root.glob(f"{CHECKPOINT_PREFIX}*")]
    return [p for step, p in sorted((s, p) for s, p in found if s is not None)]


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary name, then rename: readers see the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(redact(text))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def replace_folder(scratch: Path, target: Path) -> None:
    """Move a fully written folder to its real name, replacing any folder there.

    Readers see the old folder or the new one, never a half-written one: a crash
    leaves at worst `.<name>.old` beside a complete folder (or the scratch folder)."""
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    scratch.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def prune_checkpoints(root: Path, keep: int) -> None:
    """Delete all but the `keep` newest checkpoint-N folders."""
    for path in checkpoint_folders(root)[:-keep] if keep else []:
        shutil.rmtree(path, ignore_errors=True)


def new_folder(parent: Path, name: str) -> Path:
    """A new folder `<name>-<YYYYmmdd-HHMMSS>` in `parent` (suffixed -2, -3 on a clash);
    made with mkdir, which fails if it exists, so two processes never share one."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        path = parent / (f"{name}-{stamp}" + ("" if attempt == 1 else f"-{attempt}"))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunError(f"could not create a new folder in {parent}")


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file; an unparsable (torn) line is skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_new_lines(path: Path, offset: int) -> tuple[list[str], int]:
    """The complete lines appended to `path` since byte `offset`, and the offset after
    them: a line still being written waits for the next read. No file yet: no lines.
    Other OSErrors (permissions, a stale NFS handle) reach the caller."""
    try:
        with open(path, "rb") as handle:  # opening (not a stat) re-checks a file on NFS
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        return [], offset
    complete = chunk[:chunk.rfind(b"\n") + 1]
    return complete.decode("utf-8", errors="replace").splitlines(), offset + len(complete)


class RunDir:
    """Paths and writers of one run folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, runs_dir: str | Path, name: str) -> "RunDir":
        """A new, unique folder `<name>-<YYYYmmdd-HHMMSS>` (suffixed -2, -3 on a clash)."""
        return cls(new_folder(Path(runs_dir), name))

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        run = cls(path)
        if not (run.path / CONFIG).is_file():
            raise RunError(f"{path} is not a run folder (no {CONFIG}); `workbench runs` lists runs")
        return run

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def adapter_dir(self) -> Path:
        return self.path / ADAPTER

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS

    def write_config(self, config: RunConfig, versions: dict) -> None:
        stamp = "".join(f"# {k}: {v}\n" for k, v in versions.items())
        write_atomic(self.file(CONFIG), "# resolved run config, written by workbench\n"
                     + stamp + config_to_yaml(config))

    def read_config(self) -> RunConfig:
        return load_config(self.file(CONFIG))

    def write_json(self, name: str, data: dict) -> None:
        write_atomic(self.file(name), json.dumps(data, indent=2, default=str) + "\n")

    def read_json(self, name: str) -> dict:
        path = self.file(name)
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return {}

    def append_jsonl(self, name: str, row: dict) -> None:
        with open(self.file(name), "a", encoding="utf-8") as handle:
            handle.write(redact(json.dumps(row, default=str)) + "\n")
            handle.flush()

    def truncate_metrics_after(self, step: int) -> None:
        """Keep only log rows up to `step`, so a resumed run continues one clean curve."""
        for name in (METRICS, SAMPLES, ANSWERS, ROLLOUTS):
            rows = [r for r in read_jsonl(self.file(name)) if r.get("step", 0) <= step]
            write_atomic(self.file(name), "".join(json.dumps(r) + "\n" for r in rows))

    def metrics(self) -> list[dict]:
        return read_jsonl(self.file(METRICS))

    def samples(self) -> list[dict]:
        return read_jsonl(self.file(SAMPLES))

    def summary(self) -> dict:
        return self.read_json(SUMMARY)

    def status(self) -> str:
        return run_status(self.summary())

    def mark_running(self, step: int = 0) -> str:
        """Say, before any work, that a run is under way here and who runs it. Returns the
        session: a fresh token that requests to this process (steering.py) must carry."""
        session = uuid.uuid4().hex
        self.write_json(SUMMARY, {
            "status": "running", "ended": False, "step": step, "pid": os.getpid(),
            "host": socket.gethostname(), "session": session,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "last_checkpoint": None, "run_dir": str(self.path),
            "note": "the run has not ended; if its process is gone it was interrupted and "
                    f"`workbench train --resume {self.path}` continues from the last checkpoint"})
        return session

    def note_checkpoint(self, step: int, path: Path) -> None:
        """Record progress in a running summary, so an interrupted run says how far it got."""
        summary = self.summary()
        if summary.get("status") == "running":
            self.write_json(SUMMARY, {**summary, "step": step, "last_checkpoint": str(path),
                                      "saved_at": time.time()})  # a save at the same step too

    def note_paused(self, paused: bool, step: int) -> None:
        """Say in a running summary whether the run is paused now and at which step it last
        paused or resumed, so `workbench runs`, a sender of requests and a dashboard
        following the folder can see it."""
        summary = self.summary()
        if summary.get("status") == "running":
            self.write_json(SUMMARY, {**summary, "paused": paused, "paused_at": step})

    def checkpoints(self) -> list[Path]:
        """The complete checkpoints (a torn one has no trainer_state.json), by step."""
        return [p for p in checkpoint_folders(self.checkpoints_dir)
                if (p / "trainer_state.json").exists()]

    def last_checkpoint(self) -> Path | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def base_adapter_dirs(self) -> list[Path]:
        """The adapters merged beneath this run's own adapter, in order (empty for a plain
        run)."""
        root = self.path / BASE_ADAPTERS
        if not root.is_dir():
            return []
        return sorted(p for p in root.iterdir() if (p / ADAPTER_CONFIG).is_file())


@dataclass(frozen=True)
class AdapterSource:
    """What a path names: an adapter folder, and the run it belongs to (None for a bare
    PEFT adapter folder). `adapter` may not exist yet: a run that has not finished."""

    adapter: Path
    run: RunDir | None = None

    def read_adapter_config(self) -> dict:
        """adapter_config.json; raises OSError or ValueError when it cannot be read."""
        return json.loads((self.adapter / ADAPTER_CONFIG).read_text(encoding="utf-8"))


def locate_adapter(path: str | Path) -> AdapterSource | None:
    """A run folder (its adapter/), a run's adapter/ folder, one of its checkpoints/
    folders, or a bare adapter folder (adapter_config.json); None when the path is none of
    them."""
    path = Path(path).expanduser()
    if path.name == ADAPTER and (path.parent / CONFIG).is_file():
        path = path.parent  # a run's adapter: use the run, it knows what lies beneath
    if (path / CONFIG).is_file():
        run = RunDir(path)
        return AdapterSource(run.adapter_dir, run)
    if path.parent.name == CHECKPOINTS and (path.parent.parent / CONFIG).is_file():
        return AdapterSource(path, RunDir(path.parent.parent))
    if (path / ADAPTER_CONFIG).is_file():
        return AdapterSource(path)
    return None


def run_status(summary: dict) -> str:
    """finished / stopped / failed as recorded; running while its process lives, else
    interrupted (killed, or the machine went down); unknown without a summary."""
    status = summary.get("status")
    if not status:
        return "unknown"
    if status == "running" and not process_alive(summary.get("pid"), summary.get("host")):
        return "interrupted"
    return status


def process_alive(pid, host) -> bool:
    if not isinstance(pid, int) or host != socket.gethostname():
        return True  # another machine's run: it cannot be checked from here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


def list_runs(runs_dir: str | Path) -> list[dict]:
    """One summary per run folder, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    rows = []
    for path in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if not (path / CONFIG).is_file():
            continue
        summary = RunDir(path).summary()
        status = run_status(summary)
        rows.append({"run": path.name, "path": str(path), "status": status,
                     "paused": bool(summary.get("paused")) and status == "running",
                     "step": summary.get("step"), "final_loss": summary.get("final_loss"),
                     "best_eval_loss": summary.get("best_eval_loss")})
    return rows
