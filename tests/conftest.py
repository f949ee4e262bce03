"""Shared fixtures: the real demo tokenizer on a tiny random Llama, and small datasets.

Most tests train a 2-layer, 64-wide Llama built from a config (seconds on CPU); a few
use the real demo model. The hub is never contacted.
"""

import json
import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
ORDERS = REPO / "workbench" / "demo" / "orders.jsonl"


def in_ci() -> bool:
    """`.ci/run` exports CI=true: there a missing test tool is a failure, never a skip."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(missing: list[str], what: str) -> None:
    """Skip a test whose tools are missing, naming them; under CI, fail instead."""
    if missing:
        message = f"{what} need " + "; ".join(missing)
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def demo_dir() -> str:
    from workbench.backends.models import resolve_model

    return resolve_model("demo")  # converts the bundled GGUF once, then cached


@pytest.fixture(scope="session")
def demo_tokenizer(demo_dir):
    from workbench.backends.loading import load_tokenizer

    return load_tokenizer(demo_dir, trust_remote_code=False)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, demo_dir) -> str:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(demo_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def orders_subset(tmp_path) -> Path:
    lines = ORDERS.read_text(encoding="utf-8").splitlines()[:48]
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_config(model_dir, data_path, runs_dir, **sections):
    """A RunConfig for the tiny model; keyword sections are merged over the defaults."""
    from workbench.config import RunConfig

    raw = {"model": {"name": str(model_dir)},
           "lora": {"r": 8, "alpha": 16},
           "data": {"path": str(data_path), "eval_fraction": 0.125, "max_length": 128},
           "train": {"learning_rate": 3e-3, "max_steps": 12, "batch_size": 4, "log_every": 1,
                     "save_every": 4, "eval_every": 0},
           "output": {"runs_dir": str(runs_dir), "name": "tiny"}}
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return RunConfig.from_dict(raw)


def lora_policy(model_dir, seed: int):
    """The tiny model with a LoRA adapter that is not a no-op (B != 0), and its tokenizer:
    a policy whose log-probabilities differ from the base model's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from workbench.backends.loading import load_tokenizer

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                      task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.05)
    return model, load_tokenizer(model_dir, False)


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
