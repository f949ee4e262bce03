"""The choice of backend as a pure function of facts about the machine, so every branch
can be tested on a CPU with real values (a T4, an H100, a GTX 1080, no GPU):

    decide_backend("auto", Facts(cuda=True, gpu="Tesla T4", capability=(7, 5)))

`workbench.backends.select_backend` gathers the facts and calls this before anything loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.errors import BackendUnavailable

UNSLOTH_INSTALL = 'pip install "workbench[unsloth]"'
BITSANDBYTES_INSTALL = "pip install bitsandbytes"
# Unsloth's Triton kernels need Volta (7.0) or newer.
UNSLOTH_MIN_CAPABILITY = (7, 0)


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
    elif too_old(facts.capability):
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
    if too_old(facts.capability):
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


def too_old(capability) -> bool:
    return capability is not None and tuple(capability) < UNSLOTH_MIN_CAPABILITY


def _dotted(capability) -> str:
    return ".".join(str(part) for part in capability)
