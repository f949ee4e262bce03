"""What both backends share when they load a model: the tokenizer (the same for both, so
they train on the same tokens), the dtype rule, refusing pickle-only weights, and the
messages that explain a failed load or a LoRA target that does not fit."""

from __future__ import annotations

import json
import os
from pathlib import Path

from workbench.errors import ModelError

# bfloat16 needs Ampere (compute capability 8.0) or newer in hardware. torch's
# is_bf16_supported() also says yes on older GPUs that only emulate it (slowly), so the
# rule reads the compute capability instead.
BF16_MIN_CAPABILITY = (8, 0)
SAFE_WEIGHTS, PICKLED_WEIGHTS = ("*.safetensors",), ("*.bin", "*.pt", "*.pth", "*.ckpt")
SAFE_ADAPTER, PICKLED_ADAPTER = ("adapter_model.safetensors",), ("adapter_model.bin", "*.pt",
                                                                 "*.pth")
# What from_pretrained raises for a model that cannot be had: a missing or unreadable
# file or hub id (OSError), a config it cannot parse or a refused remote code
# (ValueError). Anything else is a bug of ours and keeps its traceback.
LOAD_ERRORS = (OSError, ValueError)
TRUST_NOTE = "trust_remote_code was on: the model's own Python code ran"


def resolve_dtype(requested: str, capability: tuple[int, int] | None) -> str:
    """The dtype to load weights and train in; capability is the GPU's (None on a CPU).

    auto: float32 on a CPU (bf16 there is slow or unsupported), bfloat16 on GPUs of
    compute capability 8.0 or newer, float16 on older GPUs."""
    if capability is None:
        if requested == "float16":
            raise ModelError("model.dtype float16 cannot train on a CPU; use auto or float32")
        return "float32" if requested == "auto" else requested
    bf16 = tuple(capability) >= BF16_MIN_CAPABILITY
    if requested == "auto":
        return "bfloat16" if bf16 else "float16"
    if requested == "bfloat16" and not bf16:
        raise ModelError(f"model.dtype bfloat16 needs a GPU of compute capability 8.0 or newer "
                         f"(Ampere); this one is {capability[0]}.{capability[1]}, so use auto "
                         "or float16")
    return requested


def gpu_capability() -> tuple[int, int] | None:
    import torch

    return tuple(torch.cuda.get_device_capability(0)) if torch.cuda.is_available() else None


def load_tokenizer(source: str, trust_remote_code: bool):
    from transformers import AutoTokenizer

    from workbench.data.encoding import ensure_chat_template

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except LOAD_ERRORS as exc:
        raise ModelError(describe_load_failure(source, "tokenizer", exc)) from None
    if not getattr(tokenizer, "is_fast", False):
        # Label masking maps trained characters to tokens through offset mappings,
        # which only the Rust ("fast") tokenizers provide.
        raise ModelError(f"{source}: only a slow (Python) tokenizer could be loaded; workbench "
                         "needs a fast tokenizer (tokenizer.json). Install `tokenizers` and, if "
                         "the model ships only a sentencepiece file, save it once with "
                         "AutoTokenizer.from_pretrained(..., use_fast=True).save_pretrained(...)")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # BPE tokenizers must not "clean up" spaces before punctuation: it corrupts decoded text.
    tokenizer.clean_up_tokenization_spaces = False
    ensure_chat_template(tokenizer)
    return tokenizer


def refuse_pickle_only(folder: Path, what: str, safe: tuple = SAFE_WEIGHTS,
                       pickled: tuple = PICKLED_WEIGHTS) -> None:
    """Refuse a local folder whose weights exist only as pickle files."""
    if not folder.is_dir() or any(any(folder.glob(p)) for p in safe):
        return
    found = sorted(f.name for p in pickled for f in folder.glob(p))
    if found:
        raise ModelError(f"{folder}: the {what} weights are only in pickle format ({found[0]}), "
                         "which can run code when loaded. Convert them to safetensors, or set "
                         "model.allow_pickle: true if you trust where they came from")


def target_modules_error(requested, exc: Exception) -> ModelError:
    return ModelError(f"lora.target_modules {requested!r} does not fit this model ({exc}); use "
                      "all-linear or names of its linear layers")


def ships_code(source: str) -> bool:
    """True for a local model folder whose config points at Python files of its own."""
    try:
        return "auto_map" in json.loads(Path(source, "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def describe_load_failure(source: str, what: str, exc: Exception) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    if "trust_remote_code" in str(exc) or ships_code(source):
        return (f"{source} ships its own Python code (auto_map in its config.json), which "
                "workbench does not run unless the config says model.trust_remote_code: true; "
                "turn it on only if you trust the model's author")
    if os.path.isdir(source):
        return f"cannot load the {what} from {source}: {exc}"
    if offline:
        return (f"cannot load {source!r}: HF_HUB_OFFLINE=1 and it is not in the Hugging Face "
                "cache. Download it once with network access (huggingface-cli download "
                f"{source}), or use a local folder or `demo`")
    return (f"cannot load {source!r} from the Hugging Face hub ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); check the id and your network")
