"""Resource faults (out of memory, a full disk) turned into errors that say what to change.

Both are the machine's limits, not bugs: the user needs the settings that lower the
need, and to know that the run folder kept everything up to the last checkpoint.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from workbench.config import RunConfig
from workbench.engine.rundir import checkpoint_step
from workbench.errors import RunError

OOM_PHRASES = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):  # CUDA and other accelerators
            return True
    except ImportError:
        pass
    return isinstance(exc, RuntimeError) and any(p in str(exc).lower() for p in OOM_PHRASES)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def explain(exc: BaseException, config: RunConfig, run_dir: Path | None, step: int,
            last_checkpoint: Path | None, device: str) -> RunError | None:
    """A RunError naming the fix for a resource fault, or None for anything else."""
    kept = (f"Checkpoints up to step {checkpoint_step(last_checkpoint)} are kept in "
            f"{last_checkpoint.parent}." if last_checkpoint else "No checkpoint was saved yet.")
    if is_out_of_memory(exc):
        return RunError(f"out of memory on the {device} at step {step} "
                        f"({_first_line(exc)}). Try, one at a time: "
                        + "; ".join(memory_suggestions(config, device)) + f". {kept}")
    if is_disk_full(exc):
        where = run_dir or Path(config.output.runs_dir)
        return RunError(f"the disk is full: could not write {exc.filename or 'a file'} "
                        f"({_free_megabytes(where)} MB free where {where} is). Free some space "
                        "(old runs' checkpoints/ folders can go) or set output.runs_dir to a "
                        f"disk with room. {kept}")
    return None


def memory_suggestions(config: RunConfig, device: str) -> list[str]:
    train, data = config.train, config.data
    tips = []
    if train.batch_size > 1:
        tips.append(f"--set train.batch_size={train.batch_size // 2} --set train.grad_accum="
                    f"{train.grad_accum * 2} (the same effective batch)")
    if data.max_length > 64:
        tips.append(f"--set data.max_length={data.max_length // 2} (longer examples are cut)")
    if not train.gradient_checkpointing:
        tips.append("--set train.gradient_checkpointing=true (about 20% slower)")
    if device == "cuda" and not config.model.load_in_4bit:
        tips.append("--set model.load_in_4bit=true (QLoRA)")
    return tips or ["a smaller model"]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:200]


def _free_megabytes(path: Path) -> int:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free // 2**20
    return 0
