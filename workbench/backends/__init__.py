"""Choose the backend for a run. Heavy libraries are imported only inside functions.

The choice is a pure function of facts (`decide_backend(requested, Facts(...))`), so
every branch can be tested on a CPU with real values; `gather_facts` looks at this
machine and `select_backend` ties the two together before any model is loaded.

Unsloth patches transformers, PEFT and TRL when it is imported, for the whole process:
an `hf` run that comes after an Unsloth run in the same process trains on the patched
classes. The benchmark and the GPU tests therefore run each backend in its own process.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from dataclasses import dataclass

from workbench.errors import BackendUnavailable

UNSLOTH_INSTALL = 'pip install "workbench[unsloth]"'
BITSANDBYTES_INSTALL = "pip install bitsandbytes"
# Unsloth's Triton kernels need Volta (7.0) or newer.
UNSLOTH_MIN_CAPABILITY = (7, 0)
PATCHED_BY_UNSLOTH = ("trl", "transformers", "peft")


@dataclass(frozen=True)
class Facts:
    """What this machine offers, as far as the choice of backend goes."""

    cuda: bool
    gpu: str | None = None
    capability: tuple[int, int] | None = None  # CUDA compute capability of GPU 0
    unsloth_installed: bool = False
    unsloth_error: str | None = None  # why `import unsloth` failed; None if it was not tried
    bitsandbytes_installed: bool = False


def decide_backend(requested: str, facts: Facts, *, load_in_4bit: bool = False,
                   packing: bool = False, stacking: bool = False) -> tuple[str, str]:
    """Return (backend name, reason). Raises BackendUnavailable naming every problem and
    its fix: a missing GPU, a missing package (with the install command), an old GPU."""
    problems = quantization_problems(facts) if load_in_4bit else []
    if requested == "unsloth":
        problems = unsloth_problems(facts) + problems
    if problems:
        raise BackendUnavailable("; ".join(problems))
    if requested == "hf":
        return "hf", "backend: hf was requested"
    if requested == "unsloth":
        return "unsloth", f"backend: unsloth was requested; {describe_gpu(facts)}"
    return _auto(facts, packing, stacking)


def _auto(facts: Facts, packing: bool, stacking: bool = False) -> tuple[str, str]:
    if not facts.cuda:
        return "hf", "auto: no CUDA GPU, so transformers + PEFT on the CPU"
    gpu = describe_gpu(facts)
    if not facts.unsloth_installed:
        why = f"Unsloth is not installed ({UNSLOTH_INSTALL})"
    elif _too_old(facts.capability):
        why = f"Unsloth needs compute capability {_dotted(UNSLOTH_MIN_CAPABILITY)} or newer"
    elif facts.unsloth_error:
        why = f"Unsloth is installed but `import unsloth` failed ({facts.unsloth_error})"
    elif packing:
        why = ("data.packing needs the block attention mask, which Unsloth ignores while "
               "training")
    elif stacking:
        why = "lora.start_from stacks on a saved adapter, which the Unsloth backend does not load"
    else:
        return "unsloth", f"auto: {gpu} and Unsloth are present"
    return "hf", f"auto: {gpu}, but {why}, so transformers + PEFT"


def unsloth_problems(facts: Facts) -> list[str]:
    """Why backend: unsloth cannot run here (empty when it can)."""
    if not facts.cuda:
        missing = "" if facts.unsloth_installed else "; the unsloth package is not installed either"
        return [f"backend: unsloth needs an NVIDIA GPU with CUDA and none was found{missing}. "
                f"Use backend: hf (or auto) on this machine; on a GPU machine install Unsloth "
                f"with {UNSLOTH_INSTALL}"]
    if not facts.unsloth_installed:
        return [f"backend: unsloth needs the unsloth package, which is not installed; install "
                f"it with {UNSLOTH_INSTALL}, or use backend: hf"]
    if _too_old(facts.capability):
        return [f"backend: unsloth needs a GPU of compute capability "
                f"{_dotted(UNSLOTH_MIN_CAPABILITY)} or newer and {describe_gpu(facts)}; "
                "use backend: hf"]
    if facts.unsloth_error:
        return [f"backend: unsloth: the unsloth package is installed but `import unsloth` failed "
                f"({facts.unsloth_error}); reinstall it with {UNSLOTH_INSTALL}, or use backend: hf"]
    return []


def quantization_problems(facts: Facts) -> list[str]:
    """Why model.load_in_4bit cannot run here (empty when it can). Both backends quantize
    through bitsandbytes, whose 4-bit kernels need CUDA."""
    if not facts.cuda:
        return ["model.load_in_4bit needs an NVIDIA GPU with CUDA and none was found; set "
                "load_in_4bit: false on this machine"]
    if not facts.bitsandbytes_installed:
        return [f"model.load_in_4bit needs bitsandbytes, which is not installed; install it "
                f"with {BITSANDBYTES_INSTALL} (or {UNSLOTH_INSTALL}, which includes it)"]
    return []


def describe_gpu(facts: Facts) -> str:
    if not facts.cuda:
        return "no CUDA GPU"
    capability = f" (compute capability {_dotted(facts.capability)})" if facts.capability else ""
    return f"CUDA GPU {facts.gpu or 'unknown'}{capability}"


def import_order_note(already_imported: list[str]) -> str | None:
    """What it costs that these libraries were imported before Unsloth, or None."""
    if not already_imported:
        return None
    names = ", ".join(already_imported)
    return (f"{names} was imported before unsloth, so Unsloth could not patch it and its "
            "unpatched code may run slower or use more memory; for full speed start a fresh "
            "Python process or kernel and start the run before anything imports transformers")


def _too_old(capability) -> bool:
    return capability is not None and tuple(capability) < UNSLOTH_MIN_CAPABILITY


def _dotted(capability) -> str:
    return ".".join(str(part) for part in capability)


# -- facts about this machine (side effects: imports torch, and unsloth when asked) ---------

def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def gather_facts(try_unsloth: bool) -> tuple[Facts, list[str]]:
    """The facts, and notes for the run folder. With try_unsloth, Unsloth is imported
    when it could run here, so that it patches transformers before anything else does."""
    import torch

    cuda = torch.cuda.is_available()
    gpu = torch.cuda.get_device_name(0) if cuda else None
    capability = tuple(torch.cuda.get_device_capability(0)) if cuda else None
    installed = importlib.util.find_spec("unsloth") is not None
    error, notes = None, []
    if try_unsloth and cuda and installed and not _too_old(capability):
        error, note = import_unsloth()
        notes += [note] if note else []
    facts = Facts(cuda=cuda, gpu=gpu, capability=capability, unsloth_installed=installed,
                  unsloth_error=error,
                  bitsandbytes_installed=importlib.util.find_spec("bitsandbytes") is not None)
    return facts, notes


def import_unsloth() -> tuple[str | None, str | None]:
    """Import Unsloth; return (the error if it failed, a note if it came too late)."""
    if "unsloth" in sys.modules:  # imported earlier (it warned then if it was too late)
        return None, None
    already = [name for name in PATCHED_BY_UNSLOTH if name in sys.modules]
    try:
        import unsloth  # noqa: F401  (importing it is what patches transformers and PEFT)
    except Exception as exc:  # it fails in many ways: no driver, Triton, version pins
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else ''}".strip(": "), None
    note = import_order_note(already)
    if note:
        warnings.warn(note, stacklevel=3)
    return None, note


def select_backend(config):
    """Return (backend, reason) for a RunConfig, before anything loads.
    Raises BackendUnavailable naming what is missing and how to install it."""
    model = config.model
    # auto with packing or stacking trains on hf anyway, so Unsloth is not imported to
    # patch anything
    stacking = bool(config.lora.start_from)
    wants = model.backend == "unsloth" or (model.backend == "auto" and not config.data.packing
                                           and not stacking)
    facts, notes = gather_facts(try_unsloth=wants)
    name, reason = decide_backend(model.backend, facts, load_in_4bit=model.load_in_4bit,
                                  packing=config.data.packing, stacking=stacking)
    if name == "unsloth":
        from workbench.backends.unsloth import UnslothBackend

        return UnslothBackend(notes=notes), reason
    from workbench.backends.hf import HFBackend

    return HFBackend(), reason
