"""Where the dashboard runs: a notebook someone is looking at, or a headless execution.

A click needs a person and a frontend. Under papermill (or nbclient, nbconvert,
pytest) nobody clicks and the kernel is shut down when the last cell ends, so a run
started there must block its cell. Jupyter has no flag for "a person is watching"
(nbconvert#787, papermill#481), so: plain Python is headless; a kernel started by a
known headless runner is headless; any other kernel is interactive. Both can be
forced with `Dashboard(interactive=...)` or WORKBENCH_INTERACTIVE=0/1.
"""

from __future__ import annotations

import os
import subprocess
import sys

HEADLESS_RUNNERS = ("papermill", "nbclient", "nbconvert", "nbmake", "testbook", "pytest")


def in_kernel() -> bool:
    """True inside a Jupyter kernel (not plain Python, not a terminal IPython)."""
    shell = sys.modules.get("IPython") and _ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _ipython():
    from IPython import get_ipython

    return get_ipython()


def is_interactive() -> bool:
    forced = os.environ.get("WORKBENCH_INTERACTIVE", "").strip().lower()
    if forced in ("0", "false", "no"):
        return False
    if forced in ("1", "true", "yes"):
        return True
    if not in_kernel():
        return False
    launcher = parent_command().lower()
    return not any(runner in launcher for runner in HEADLESS_RUNNERS)


def parent_command() -> str:
    """The command line of the process that started this one ('' when unknown)."""
    parent = os.getppid()
    try:
        with open(f"/proc/{parent}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        pass
    try:  # macOS and other systems without /proc
        return subprocess.run(["ps", "-o", "command=", "-p", str(parent)], capture_output=True,
                              text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def peak_memory_text() -> str:
    """Peak memory of this process (and of the GPU when one is in use), for the status line."""
    try:
        import resource
    except ImportError:  # Windows
        return ""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_bytes = peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB
    text = f"peak RAM {peak_bytes / 2**30:.2f} GB"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        text += f", GPU {torch.cuda.max_memory_allocated() / 2**30:.2f} GB"
    return text
