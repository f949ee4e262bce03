"""The `hf` backend: transformers for the model, PEFT for the LoRA adapter."""

from __future__ import annotations

import os
from pathlib import Path

from workbench.backends.base import ModelBundle
from workbench.backends.models import resolve_model
from workbench.config import RunConfig
from workbench.errors import BackendUnavailable, ModelError
from workbench.secrets import redact_log_records


# bfloat16 needs Ampere (compute capability 8.0) or newer in hardware. torch's
# is_bf16_supported() also says yes on older GPUs that only emulate it (slowly), so the
# rule reads the compute capability instead.
BF16_MIN_CAPABILITY = (8, 0)


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


class HFBackend:
    name = "hf"

    def load(self, config: RunConfig, adapter_dir: str | None = None,
             trainable: bool = True, base_adapters=()) -> ModelBundle:
        """The base model, with `base_adapters` merged into its weights in order (sequential
        stacking), then a new LoRA adapter, or the saved one in `adapter_dir`."""
        import torch
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own sinks report progress
        redact_log_records()  # loaders log the values they choke on
        capability = gpu_capability()
        on_cuda = capability is not None
        dtype = resolve_dtype(config.model.dtype, capability)
        notes = []
        source = resolve_model(config.model.name)
        tokenizer = load_tokenizer(source, config.model.trust_remote_code)
        model = load_model(source, config, getattr(torch, dtype), on_cuda)
        if base_adapters:
            model = merge_saved_adapters(model, base_adapters, config)
            notes.append(f"merged into the base before training: {', '.join(map(str, base_adapters))}")
        if adapter_dir:
            model = attach_saved_adapter(model, adapter_dir, trainable,
                                         config.model.allow_pickle)
        else:
            model = attach_new_adapter(model, config)
        if config.model.trust_remote_code:
            notes.append("trust_remote_code was on: the model's own Python code ran")
        return ModelBundle(model=model, tokenizer=tokenizer, backend=self.name,
                           device="cuda" if on_cuda else "cpu", dtype=dtype, source=source,
                           notes=notes)


def load_tokenizer(source: str, trust_remote_code: bool):
    from transformers import AutoTokenizer

    from workbench.data.encoding import ensure_chat_template

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelError(_load_failure(source, "tokenizer", exc)) from None
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


def load_model(source: str, config: RunConfig, dtype, on_cuda: bool):
    from transformers import AutoModelForCausalLM

    if not config.model.allow_pickle:
        refuse_pickle_only(Path(source), "model", ("*.safetensors",),
                           ("*.bin", "*.pt", "*.pth", "*.ckpt"))
    kwargs = {"dtype": dtype, "trust_remote_code": config.model.trust_remote_code,
              # safetensors only, unless the config allows pickle (which can run code)
              "use_safetensors": None if config.model.allow_pickle else True}
    if config.model.load_in_4bit:
        # compute in the run's dtype: bf16 or fp16 by the GPU's capability
        kwargs["quantization_config"] = four_bit_config(on_cuda, dtype)
        kwargs["device_map"] = {"": 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except Exception as exc:
        raise ModelError(_load_failure(source, "model", exc)) from None
    if on_cuda and not config.model.load_in_4bit:
        model = model.to("cuda")
    return model


def four_bit_config(on_cuda: bool, dtype):
    """NF4 with double quantization (the QLoRA recipe). select_backend has already refused
    4-bit without a GPU or bitsandbytes; this repeats it for callers that load directly."""
    import importlib.util

    from workbench.backends import Facts, quantization_problems

    problems = quantization_problems(Facts(
        cuda=on_cuda, bitsandbytes_installed=importlib.util.find_spec("bitsandbytes") is not None))
    if problems:
        raise BackendUnavailable(problems[0])
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)


def attach_new_adapter(model, config: RunConfig):
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed

    set_seed(config.train.seed)  # the LoRA A matrices are random: same seed, same start
    lora = config.lora
    peft_config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                             target_modules=lora.target_modules, use_rslora=lora.use_rslora,
                             bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, peft_config)
    except ValueError as exc:
        raise ModelError(f"lora.target_modules {lora.target_modules!r} does not fit this model "
                         f"({exc}); use all-linear or names of its linear layers") from None


def attach_saved_adapter(model, adapter_dir: str, trainable: bool, allow_pickle: bool = False):
    from peft import PeftModel

    if not allow_pickle:
        refuse_pickle_only(Path(adapter_dir), "adapter", ("adapter_model.safetensors",),
                           ("adapter_model.bin", "*.pt", "*.pth"))

    return PeftModel.from_pretrained(model, adapter_dir, is_trainable=trainable)


def merge_saved_adapters(model, adapter_dirs, config: RunConfig):
    """Fold saved LoRA adapters into the base weights, one after another."""
    if config.model.load_in_4bit:
        raise ModelError("lora.start_mode merge folds an adapter into the base weights, which "
                         "a 4-bit base cannot hold; set model.load_in_4bit: false or use "
                         "lora.start_mode: continue")
    for folder in adapter_dirs:
        model = attach_saved_adapter(model, str(folder), False,
                                     config.model.allow_pickle).merge_and_unload()
    return model


def refuse_pickle_only(folder: Path, what: str, safe: tuple, pickled: tuple) -> None:
    """Refuse a local folder whose weights exist only as pickle files."""
    if not folder.is_dir() or any(any(folder.glob(p)) for p in safe):
        return
    found = sorted(f.name for p in pickled for f in folder.glob(p))
    if found:
        raise ModelError(f"{folder}: the {what} weights are only in pickle format ({found[0]}), "
                         "which can run code when loaded. Convert them to safetensors, or set "
                         "model.allow_pickle: true if you trust where they came from")


def ships_code(source: str) -> bool:
    """True for a local model folder whose config points at Python files of its own."""
    import json

    try:
        return "auto_map" in json.loads(Path(source, "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def _load_failure(source: str, what: str, exc: Exception) -> str:
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
