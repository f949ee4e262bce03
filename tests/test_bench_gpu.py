"""The parts of bench/gpu.py a CPU can check: the Llama-3.2-1B shapes, the LoRA FLOP
accounting (against numbers worked out by hand), the peak table, the plan and its skip
reasons, the data, and one measured row each way (engine, library directly) on the tiny
model with hf, the only backend a CPU has. The GPU numbers need a GPU."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from conftest import write_jsonl
from workbench.backends.choice import Facts

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gpu():
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "bench" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# Llama-3.2-1B by hand. Per layer, (in x out): q 2048x2048, k 2048x512, v 2048x512,
# o 2048x2048, gate/up 2048x8192, down 8192x2048 -> 4,194,304 x 2 + 1,048,576 x 2
# + 16,777,216 x 3 = 60,817,408; x 16 layers = 973,078,528. Tied embedding/head
# 128256 x 2048 = 262,668,288. Norms 2 x 2048 x 16 + 2048 = 67,584.
LINEAR = 973_078_528
HEAD = 262_668_288
TOTAL = LINEAR + HEAD + 67_584  # 1,235,814,400: the published size of Llama-3.2-1B
# LoRA r=16, r x (in + out): q 65,536, k 40,960, v 40,960, o 65,536, gate/up/down 163,840
# -> 704,512 a layer, x 16 = 11,272,192.
LORA = 11_272_192


def test_llama_1b_config_has_the_published_shapes(gpu):
    config = gpu.llama_1b_config()
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.num_key_value_heads, config.intermediate_size, config.vocab_size,
            config.tie_word_embeddings) == (2048, 16, 32, 8, 8192, 128256, True)
    assert gpu.llama_counts(config) == {"layers": 16, "attention_width": 2048,
                                        "frozen_matmul": LINEAR + HEAD, "lora": LORA,
                                        "total": TOTAL}


def test_counts_match_a_real_model_and_peft(gpu):
    """Built on the meta device: real module shapes, no memory for 1.2B weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(gpu.llama_1b_config())
    assert model.num_parameters() == TOTAL
    lora = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                            task_type="CAUSAL_LM"))
    assert sum(p.numel() for p in lora.parameters() if p.requires_grad) == LORA


def test_lora_flops_per_token_by_hand(gpu):
    # 4 x 1,235,746,816 + 6 x 11,272,192 + 12 x 16 layers x 1024 x 2048
    # = 4,942,987,264 + 67,633,152 + 402,653,184
    assert gpu.flops_per_token(LINEAR + HEAD, LORA, 16, 2048, 1024) == 5_413_273_600
    assert gpu.flops_per_token(LINEAR + HEAD, LORA, 16, 2048, 2048) == 5_815_926_784
    # 10,000 tokens/s on an H100 SXM (989.4 TFLOP/s): 5.4132736e13 / 9.894e14 = 5.47%
    assert gpu.mfu(10_000, 5_413_273_600, 989.4e12) == pytest.approx(0.054712, abs=1e-6)
    assert gpu.mfu(10_000, 5_413_273_600, None) is None


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989.4e12), ("NVIDIA H100 PCIe", 756e12),
    ("NVIDIA H100 NVL", 835e12), ("NVIDIA H200", 989.4e12),
    ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA A100 80GB PCIe", 312e12),
    ("NVIDIA GeForce RTX 4090", 165.2e12), ("NVIDIA L4", 121e12), ("Tesla T4", 65e12),
    ("NVIDIA GeForce RTX 3090", None), ("cpu", None), (None, None)])
def test_dense_peak_by_gpu_name(gpu, name, peak):
    assert gpu.peak_flops(name) == peak


def test_arguments_plan_and_skip_reasons(gpu):
    args = gpu.parse_args([])
    assert (args.models, args.seq, args.backends, args.bits) == \
        (["llama-1b", "demo"], [1024, 2048], ["hf", "unsloth"], [16, 4])
    cases = gpu.plan(args)
    assert len(cases) == 16 + 6  # every combination, then direct/engine/direct per backend
    assert [(c.backend, c.path) for c in cases[16:19]] == \
        [("hf", "direct"), ("hf", "engine"), ("hf", "direct")]
    assert all(c.overhead and c.bits == 16 and c.model == "llama-1b" for c in cases[16:])

    small = gpu.parse_args(["--models", "demo", "--seq", "1024", "--bits", "4",
                            "--no-overhead"])
    cases = gpu.plan(small)
    assert [c.label for c in cases] == ["demo seq 1024 hf 4-bit engine",
                                        "demo seq 1024 unsloth 4-bit engine"]
    h100_without_unsloth = Facts(cuda=True, gpu="NVIDIA H100 80GB HBM3", capability=(9, 0),
                                 bitsandbytes_installed=True)
    reasons = gpu.skip_reasons(cases, h100_without_unsloth)
    assert list(reasons.values()) == [
        'backend: unsloth needs the unsloth package, which is not installed; install it with '
        'pip install "workbench[unsloth]", or use backend: hf']
    no_bnb = Facts(cuda=True, gpu="Tesla T4", capability=(7, 5), unsloth_installed=True)
    assert all("needs bitsandbytes" in r for r in gpu.skip_reasons(cases, no_bnb).values())
    assert set(gpu.skip_reasons(cases, Facts(cuda=False))) == set(cases)

    for bad in (["--models", "llama-8b"], ["--bits", "8"], ["--steps", "10", "--warmup", "10"]):
        with pytest.raises(SystemExit):
            gpu.parse_args(bad)


def test_demo_model_replaces_the_installed_demo(gpu, tiny_model_dir, tmp_path):
    """--demo-model: the demo rows train that folder (gpu-check's random-weights model of
    the demo's architecture), and preparing it runs in a child like every model."""
    args = gpu.parse_args(["--models", "demo", "--demo-model", tiny_model_dir,
                           "--work-dir", str(tmp_path)])
    assert args.demo_model == tiny_model_dir
    assert gpu.prepare_model("demo", tmp_path, tiny_model_dir) == tiny_model_dir
    assert gpu._prepare_in_child("demo", args) == (tiny_model_dir, None)
    assert gpu.parse_args([]).demo_model is None


def test_bench_rows_are_exactly_the_sequence_length(gpu, demo_tokenizer, tmp_path):
    from workbench.config import DataSettings
    from workbench.data import encode_splits, load_splits

    texts = gpu.random_texts(6, words=256)
    assert texts == gpu.random_texts(6, words=256)  # the same rows every time
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": t} for t in texts])
    settings = DataSettings(path=str(path), format="text", max_length=256, eval_fraction=0)
    encoded = encode_splits(load_splits(settings, 0), demo_tokenizer, settings)
    assert [len(r["input_ids"]) for r in encoded.train] == [256] * 6  # no padding in a batch
    assert encoded.stats["train"]["truncated"] == 6


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_has_cuda(), reason="on a GPU, tests/test_gpu.py runs the real benchmark")
def test_one_row_each_way_on_this_cpu(gpu, tiny_model_dir, tmp_path):
    """The measuring code itself, with hf on the tiny model (CPU numbers, not a benchmark)."""
    rows = []
    for path in ("engine", "direct"):
        spec = {"case": {"model": "tiny", "seq": 64, "backend": "hf", "bits": 16, "path": path,
                         "overhead": True},
                "folder": tiny_model_dir, "batch": 2, "steps": 4, "warmup": 2, "log_every": 2,
                "work_dir": str(tmp_path), "gradient_checkpointing": False, "peak_flops": None}
        row = gpu.measure_row(spec)
        assert row["tokens_per_second"] > 0 and row["step_seconds"] > 0
        assert row["gpu"] == "cpu" and row["mfu"] is None and row["peak_reserved_gib"] is None
        assert row["trainable_params"] == row["expected_lora_params"]  # the count is right
        rows.append({**spec["case"], **row})
    assert rows[0]["backend_reason"] == "backend: hf was requested"
    table = gpu.markdown(rows + [{"model": "demo", "seq": 1024, "backend": "unsloth", "bits": 4,
                                  "path": "engine", "overhead": False, "skipped": "no CUDA GPU"}])
    assert "| demo | 1024 | unsloth | 4 | skipped: no CUDA GPU |" in table
    assert "| hf | " in table.split("engine overhead |")[1]  # the overhead table has hf
    json.dumps(rows)  # rows are saved as JSON lines
