"""Choose the backend for a run: `select_backend(config)`, before any model is loaded.

`gather_facts` looks at this machine (imports torch, and Unsloth when it could run);
the decision itself is the pure `choice.decide_backend`. Heavy libraries are imported
only inside functions.

Unsloth patches transformers, PEFT and TRL when it is imported, for the whole process:
an `hf` run that comes after an Unsloth run in the same process trains on the patched
classes. The benchmark and the GPU tests therefore run each backend in its own process.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings

from workbench.backends.choice import Facts, decide_backend, import_order_note, too_old

PATCHED_BY_UNSLOTH = ("trl", "transformers", "peft")


# -- facts about this machine (side effects: imports torch, and unsloth when asked) ---------

def gather_facts(try_unsloth: bool) -> tuple[Facts, list[str]]:
    """The facts, and notes for the run folder. With try_unsloth, Unsloth is imported
    when it could run here, so that it patches transformers before anything else does."""
    import torch

    cuda = torch.cuda.is_available()
    gpu = torch.cuda.get_device_name(0) if cuda else None
    capability = tuple(torch.cuda.get_device_capability(0)) if cuda else None
    installed = importlib.util.find_spec("unsloth") is not None
    error, notes = None, []
    if try_unsloth and cuda and installed and not too_old(capability):
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
