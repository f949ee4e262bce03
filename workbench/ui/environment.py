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
import re
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
    launcher = program_name(parent_command())
    return not any(runner in launcher for runner in HEADLESS_RUNNERS)


def program_name(command: list[str]) -> str:
    """The program a command line runs, lower-cased: `pytest` for `python -m pytest x`,
    `jupyter-lab` for `python /venv/bin/jupyter-lab --root_dir=/tmp/pytest-1`. Only the
    program counts: an argument such as a folder named after pytest or papermill must not
    turn a JupyterLab kernel headless (its buttons would then block the kernel)."""
    words = iter(command)
    for word in words:
        name = os.path.basename(word).lower()
        if word == "-m":
            return next(words, "").lower()
        if word in ("-X", "-W"):  # interpreter options that take a value
            next(words, None)
        elif not word.startswith("-") and not re.fullmatch(r"pythonw?[\d.]*(\.exe)?", name):
            return name
    return ""


def parent_command() -> list[str]:
    """The command line of the process that started this one ([] when unknown)."""
    parent = os.getppid()
    try:
        with open(f"/proc/{parent}/cmdline", "rb") as handle:
            return handle.read().decode(errors="replace").split("\0")
    except OSError:
        pass
    try:  # macOS and other systems without /proc (paths with spaces split wrongly here)
        return subprocess.run(["ps", "-o", "command=", "-p", str(parent)], capture_output=True,
                              text=True, timeout=5).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return []


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
