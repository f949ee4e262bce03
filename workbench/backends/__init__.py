"""Choose the backend for a run. Heavy libraries are imported only inside functions."""

from __future__ import annotations

import importlib.util

from workbench.errors import BackendUnavailable

UNSLOTH_INSTALL = 'pip install "workbench[unsloth]"'


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def select_backend(requested: str):
    """Return (backend, reason). Raises BackendUnavailable naming what is missing."""
    from workbench.backends.hf import HFBackend

    if requested == "hf":
        return HFBackend(), "backend: hf was requested"
    if requested == "unsloth":
        raise BackendUnavailable(_unsloth_problem())
    if cuda_available() and importlib.util.find_spec("unsloth") is not None:
        reason = ("auto: a CUDA GPU and Unsloth are present, but the Unsloth backend is not "
                  "built yet, so transformers + PEFT runs")
    elif cuda_available():
        reason = f"auto: CUDA GPU found but Unsloth is not installed ({UNSLOTH_INSTALL})"
    else:
        reason = "auto: no CUDA GPU, so transformers + PEFT on CPU"
    return HFBackend(), reason


def _unsloth_problem() -> str:
    if not cuda_available():
        return ("backend: unsloth needs an NVIDIA GPU with CUDA and none was found; "
                "use backend: hf (or auto) on this machine")
    if importlib.util.find_spec("unsloth") is None:
        return f"backend: unsloth needs the unsloth package; install it with {UNSLOTH_INSTALL}"
    return ("backend: unsloth is not available in this version of workbench yet; "
            "use backend: hf (or auto)")
