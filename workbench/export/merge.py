"""Fold adapters into the base weights and save a standard Hugging Face model folder.

    model, tokenizer, config = merged_run("runs/my-run-20261122-101500")
    save_hf(model, tokenizer, "out/hf")    # AutoModelForCausalLM.from_pretrained("out/hf") loads it

The folder holds safetensors weights, config.json, the tokenizer, the chat template the
model was trained with (chat_template.jinja) and a generation config whose EOS is the
token that ends the model's turns, so plain `generate()` stops where it should.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from workbench.engine.loaded import load_run
from workbench.engine.rundir import replace_folder


def merged_run(run_dir: str | Path):
    """A run's model as one plain transformers model: base, adapters merged beneath (for a
    `lora.start_mode: merge` run) and the run's adapter, all folded into the weights.
    Returns (model, tokenizer, config)."""
    loaded = load_run(run_dir)
    return loaded.model.merge_and_unload().eval(), loaded.tokenizer, loaded.config


def save_hf(model, tokenizer, out_dir: str | Path, end_of_turn: int | None = None) -> Path:
    """Write model + tokenizer as a Hugging Face folder; it replaces `out_dir` only once
    fully written. `end_of_turn` joins the EOS ids generation stops at."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = out.with_name(f".{out.name}.saving")
    shutil.rmtree(scratch, ignore_errors=True)
    stops = [t for t in dict.fromkeys([tokenizer.eos_token_id, end_of_turn]) if t is not None]
    generation = model.generation_config
    generation.eos_token_id = stops[0] if len(stops) == 1 else stops
    generation.pad_token_id = tokenizer.pad_token_id
    generation.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(str(scratch))  # safetensors is the default and the only format here
    tokenizer.save_pretrained(str(scratch))
    replace_folder(scratch, out)
    return out
