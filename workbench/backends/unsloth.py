"""The `unsloth` backend: Unsloth loads the model and attaches LoRA; the engine trains it.

Unsloth's FastLanguageModel patches the model's attention, MLP, RoPE and loss with its
own kernels, and gradient checkpointing with its offloading variant; training still goes
through the workbench engine (its Trainer, events and run folder). The tokenizer is the
workbench's own (`loading.load_tokenizer`), so both backends train on the same tokens, and the
saved adapter is plain PEFT, so it loads without Unsloth.

The API calls here were checked against unsloth 2026.10.9's source; they have not yet run
on a GPU (docs/gpu-check.md is the prepared check). The mappings from the
workbench config to Unsloth's arguments are pure functions so CPU tests can check them;
`import unsloth` happens in `select_backend`, before transformers is imported.
"""

from __future__ import annotations

from pathlib import Path

from workbench.backends.base import ModelBundle
from workbench.backends.loading import (LOAD_ERRORS, TRUST_NOTE, describe_load_failure,
                                        gpu_capability, load_tokenizer, refuse_pickle_only,
                                        resolve_dtype, target_modules_error)
from workbench.backends.models import resolve_model
from workbench.config import LoraSettings, RunConfig
from workbench.errors import BackendUnavailable, ModelError
from workbench.secrets import redact_log_records

# The projections Unsloth's fast LoRA kernels cover, in the order Unsloth lists them.
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Unsloth cuts every forward input to max_seq_length, generation and chat included.
UNSLOTH_MIN_SEQ_LENGTH = 2048
# Unsloth's loader also raises these for an architecture or setting it does not support.
UNSLOTH_LOAD_ERRORS = LOAD_ERRORS + (RuntimeError, NotImplementedError, ImportError)


def unsloth_load_kwargs(source: str, config: RunConfig, dtype: str) -> dict:
    """Arguments for FastLanguageModel.from_pretrained (dtype as a name; the caller makes it
    a torch dtype)."""
    return {
        "model_name": source,
        "max_seq_length": max(config.data.max_length, UNSLOTH_MIN_SEQ_LENGTH),
        "dtype": dtype,
        # Unsloth defaults to 4-bit; the config decides, and 16-bit is said explicitly.
        "load_in_4bit": config.model.load_in_4bit,
        "load_in_16bit": not config.model.load_in_4bit and dtype != "float32",
        "full_finetuning": False,
        "trust_remote_code": config.model.trust_remote_code,
        # Load exactly what the config names: no swap to a pre-quantized Unsloth mirror.
        "use_exact_model_name": True,
        # The workbench's tokenizer is used; Unsloth must not alter the model to fit its own.
        "fix_tokenizer": False,
        "use_gradient_checkpointing": checkpointing_mode(config.train.gradient_checkpointing),
    }


def unsloth_peft_kwargs(lora: LoraSettings, seed: int, gradient_checkpointing: bool,
                        linear_names: list[str]) -> dict:
    """Arguments for FastLanguageModel.get_peft_model, the same LoRA as the hf backend's."""
    return {
        "r": lora.r, "lora_alpha": lora.alpha, "lora_dropout": lora.dropout,
        "target_modules": target_modules(lora.target_modules, linear_names),
        "bias": "none", "use_rslora": lora.use_rslora, "random_state": seed,
        "use_gradient_checkpointing": checkpointing_mode(gradient_checkpointing),
    }


def checkpointing_mode(enabled: bool):
    """Unsloth's own checkpointing ("unsloth": activations offloaded to CPU RAM) or none."""
    return "unsloth" if enabled else False


def target_modules(requested, linear_names: list[str]) -> list[str]:
    """Explicit module names for Unsloth.

    Unsloth releases before 2026 iterate `target_modules`, so the string `all-linear`
    became its characters; and its fast kernels only cover modules named explicitly.
    `all-linear` becomes the leaf names of the model's linear layers (the output head
    excluded, as PEFT does): for Llama-family models, exactly LLAMA_PROJECTIONS."""
    if requested != "all-linear":
        return list(requested)
    names = sorted(set(linear_names))
    known = [name for name in LLAMA_PROJECTIONS if name in names]
    return known + [name for name in names if name not in known]


def linear_leaf_names(model) -> list[str]:
    """Leaf names of the nn.Linear layers (bitsandbytes' 4-bit ones included), output head
    excluded."""
    import torch

    head = model.get_output_embeddings()
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear) and module is not head})


class UnslothBackend:
    name = "unsloth"

    def __init__(self, notes=()):
        self.notes = list(notes)  # e.g. that transformers was imported before unsloth

    def load(self, config: RunConfig, adapter_dir: str | None = None,
             trainable: bool = True, base_adapters=()) -> ModelBundle:
        if adapter_dir or base_adapters:
            raise BackendUnavailable("backend unsloth trains new adapters on a plain base "
                                     "model; for lora.start_from (stacking) or a saved adapter "
                                     "use backend: hf (TunedModel does: adapters are plain PEFT)")
        import torch
        from transformers.utils import logging as hf_logging
        from unsloth import FastLanguageModel

        hf_logging.disable_progress_bar()
        redact_log_records()
        dtype = resolve_dtype(config.model.dtype, gpu_capability())
        source = resolve_model(config.model.name)
        if not config.model.allow_pickle:
            refuse_pickle_only(Path(source), "model")
        tokenizer = load_tokenizer(source, config.model.trust_remote_code)
        kwargs = unsloth_load_kwargs(source, config, dtype)
        kwargs["dtype"] = getattr(torch, dtype)
        try:
            model, _ = FastLanguageModel.from_pretrained(**kwargs)
        except UNSLOTH_LOAD_ERRORS as exc:
            raise ModelError(describe_load_failure(source, "model", exc)) from None
        peft = unsloth_peft_kwargs(config.lora, config.train.seed,
                                   config.train.gradient_checkpointing, linear_leaf_names(model))
        try:
            model = FastLanguageModel.get_peft_model(model, **peft)
        except (TypeError, ValueError) as exc:
            raise target_modules_error(config.lora.target_modules, exc) from None
        notes = self.notes + ([TRUST_NOTE] if config.model.trust_remote_code else [])
        return ModelBundle(model=model, tokenizer=tokenizer, backend=self.name, device="cuda",
                           dtype=dtype, source=source, notes=notes, model_loss=True,
                           backend_checkpointing=True)
