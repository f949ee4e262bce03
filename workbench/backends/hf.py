"""The `hf` backend: transformers for the model, PEFT for the LoRA adapter."""

from __future__ import annotations

import os
from pathlib import Path

from workbench.backends.base import ModelBundle
from workbench.backends.choice import Facts, quantization_problems
from workbench.backends.loading import (LOAD_ERRORS, PICKLED_ADAPTER, SAFE_ADAPTER, TRUST_NOTE,
                                        describe_load_failure, gpu_capability, load_tokenizer,
                                        refuse_pickle_only, resolve_dtype, target_modules_error)
from workbench.backends.models import resolve_model
from workbench.config import RunConfig
from workbench.errors import BackendUnavailable, ModelError
from workbench.secrets import redact_log_records


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
            notes.append(TRUST_NOTE)
        return ModelBundle(model=model, tokenizer=tokenizer, backend=self.name,
                           device="cuda" if on_cuda else "cpu", dtype=dtype, source=source,
                           notes=notes)


def load_model(source: str, config: RunConfig, dtype, on_cuda: bool):
    from transformers import AutoModelForCausalLM

    if not config.model.allow_pickle:
        refuse_pickle_only(Path(source), "model")
    kwargs = {"dtype": dtype, "trust_remote_code": config.model.trust_remote_code,
              # safetensors only, unless the config allows pickle (which can run code)
              "use_safetensors": None if config.model.allow_pickle else True}
    if config.model.load_in_4bit:
        # compute in the run's dtype: bf16 or fp16 by the GPU's capability
        kwargs["quantization_config"] = four_bit_config(on_cuda, dtype)
        kwargs["device_map"] = {"": local_gpu()}  # pinned: never "auto" with several processes
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except LOAD_ERRORS as exc:
        raise ModelError(describe_load_failure(source, "model", exc)) from None
    if on_cuda and not config.model.load_in_4bit:
        model = model.to(f"cuda:{local_gpu()}")
    return model


def local_gpu() -> int:
    """This process's GPU: its LOCAL_RANK when a launcher started several, else 0."""
    return int(os.environ.get("LOCAL_RANK", 0))


def four_bit_config(on_cuda: bool, dtype):
    """NF4 with double quantization (the QLoRA recipe). select_backend has already refused
    4-bit without a GPU or bitsandbytes; this repeats it for callers that load directly."""
    import importlib.util

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
        raise target_modules_error(lora.target_modules, exc) from None


def attach_saved_adapter(model, adapter_dir: str, trainable: bool, allow_pickle: bool = False):
    from peft import PeftModel

    if not allow_pickle:
        refuse_pickle_only(Path(adapter_dir), "adapter", SAFE_ADAPTER, PICKLED_ADAPTER)
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
