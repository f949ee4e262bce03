"""Backend choice, precision rules and the Unsloth argument mapping, checked on a CPU.

Nothing here pretends to run Unsloth: the choice is a pure function of facts about the
machine, tested with the facts of real machines (a CPU box, a T4, an H100, a GTX 1080);
the runs below use this CPU machine as it is. tests/test_gpu.py trains with Unsloth on a
real GPU.
"""

import ast
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ORDERS, tiny_config
from workbench.backends import select_backend
from workbench.backends.choice import UNSLOTH_INSTALL, Facts, decide_backend, import_order_note
from workbench.backends.loading import resolve_dtype
from workbench.backends.unsloth import (LLAMA_PROJECTIONS, linear_leaf_names, target_modules,
                                        unsloth_load_kwargs, unsloth_peft_kwargs)
from workbench.config import RunConfig
from workbench.errors import BackendUnavailable, ConfigError, ModelError

CPU = Facts(cuda=False)
CPU_WITH_UNSLOTH = Facts(cuda=False, unsloth_installed=True)
T4_BARE = Facts(cuda=True, gpu="Tesla T4", capability=(7, 5))
T4 = Facts(cuda=True, gpu="Tesla T4", capability=(7, 5), unsloth_installed=True,
           bitsandbytes_installed=True)
H100 = Facts(cuda=True, gpu="NVIDIA H100 80GB HBM3", capability=(9, 0), unsloth_installed=True,
             bitsandbytes_installed=True)
H100_BROKEN = Facts(cuda=True, gpu="NVIDIA H100 80GB HBM3", capability=(9, 0),
                    unsloth_installed=True, bitsandbytes_installed=True,
                    unsloth_error="ImportError: triton 2.1 is too old")
GTX1080 = Facts(cuda=True, gpu="NVIDIA GeForce GTX 1080", capability=(6, 1),
                unsloth_installed=True, bitsandbytes_installed=True)

CHOICES = [  # requested, facts, 4-bit, packing -> backend, words in the reason
    ("hf", CPU, False, False, "hf", "backend: hf was requested"),
    ("hf", H100, True, False, "hf", "backend: hf was requested"),
    ("auto", CPU, False, False, "hf", "auto: no CUDA GPU, so transformers + PEFT on the CPU"),
    ("auto", CPU_WITH_UNSLOTH, False, False, "hf", "auto: no CUDA GPU"),
    ("auto", T4_BARE, False, False, "hf",
     'auto: CUDA GPU Tesla T4 (compute capability 7.5), but Unsloth is not installed '
     '(pip install "workbench[unsloth]"), so transformers + PEFT'),
    ("auto", T4, False, False, "unsloth",
     "auto: CUDA GPU Tesla T4 (compute capability 7.5) and Unsloth are present"),
    ("auto", H100, True, False, "unsloth", "NVIDIA H100 80GB HBM3 (compute capability 9.0)"),
    ("auto", GTX1080, False, False, "hf", "Unsloth needs compute capability 7.0 or newer"),
    ("auto", H100_BROKEN, False, False, "hf",
     "Unsloth is installed but `import unsloth` failed (ImportError: triton 2.1 is too old)"),
    ("auto", H100, False, True, "hf", "data.packing needs the block attention mask"),
    ("unsloth", T4, False, False, "unsloth",
     "backend: unsloth was requested; CUDA GPU Tesla T4 (compute capability 7.5)"),
    ("unsloth", H100, True, False, "unsloth", "backend: unsloth was requested"),
]


@pytest.mark.parametrize("requested, facts, four_bit, packing, backend, reason", CHOICES)
def test_backend_choice(requested, facts, four_bit, packing, backend, reason):
    chosen, why = decide_backend(requested, facts, load_in_4bit=four_bit, packing=packing)
    assert chosen == backend
    assert reason in why


REFUSALS = [  # requested, facts, 4-bit -> words the one-line message must contain
    ("unsloth", CPU, False,
     ["needs an NVIDIA GPU with CUDA and none was found",
      "the unsloth package is not installed either", "Use backend: hf (or auto)",
      UNSLOTH_INSTALL]),
    ("unsloth", CPU_WITH_UNSLOTH, False, ["none was found. Use backend: hf", UNSLOTH_INSTALL]),
    ("unsloth", T4_BARE, False,
     ["needs the unsloth package, which is not installed", f"install it with {UNSLOTH_INSTALL}"]),
    ("unsloth", GTX1080, False,
     ["compute capability 7.0 or newer",
      "CUDA GPU NVIDIA GeForce GTX 1080 (compute capability 6.1)"]),
    ("unsloth", H100_BROKEN, False,
     ["installed but `import unsloth` failed (ImportError: triton 2.1 is too old)",
      f"reinstall it with {UNSLOTH_INSTALL}"]),
    ("unsloth", CPU, True, ["needs an NVIDIA GPU", "model.load_in_4bit needs an NVIDIA GPU"]),
    ("hf", CPU, True, ["model.load_in_4bit needs an NVIDIA GPU with CUDA",
                       "set load_in_4bit: false"]),
    ("auto", CPU, True, ["model.load_in_4bit needs an NVIDIA GPU"]),
    ("hf", T4_BARE, True, ["needs bitsandbytes, which is not installed",
                           "pip install bitsandbytes", UNSLOTH_INSTALL]),
]


@pytest.mark.parametrize("requested, facts, four_bit, words", REFUSALS)
def test_backend_refusals_say_what_is_missing_and_how_to_install_it(requested, facts, four_bit,
                                                                   words):
    with pytest.raises(BackendUnavailable) as caught:
        decide_backend(requested, facts, load_in_4bit=four_bit)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


PRECISION = [  # model.dtype, compute capability (None: CPU) -> dtype
    ("auto", None, "float32"),
    ("float32", None, "float32"),
    ("bfloat16", None, "bfloat16"),
    ("auto", (7, 5), "float16"),  # T4
    ("auto", (7, 0), "float16"),  # V100
    ("auto", (8, 0), "bfloat16"),  # A100
    ("auto", (8, 6), "bfloat16"),  # RTX 3090
    ("auto", (9, 0), "bfloat16"),  # H100
    ("float16", (9, 0), "float16"),
    ("float32", (7, 5), "float32"),
]


@pytest.mark.parametrize("requested, capability, dtype", PRECISION)
def test_precision_follows_compute_capability(requested, capability, dtype):
    assert resolve_dtype(requested, capability) == dtype


@pytest.mark.parametrize("requested, capability, words", [
    ("float16", None, "float16 cannot train on a CPU"),
    ("bfloat16", (7, 5), "compute capability 8.0 or newer (Ampere); this one is 7.5"),
])
def test_impossible_precision_is_refused(requested, capability, words):
    with pytest.raises(ModelError, match=words.replace("(", r"\(").replace(")", r"\)")):
        resolve_dtype(requested, capability)


def test_import_order_note():
    assert import_order_note([]) is None
    note = import_order_note(["transformers", "peft"])
    assert note.startswith("transformers, peft was imported before unsloth")
    assert "fresh Python process or kernel" in note


def test_all_linear_becomes_the_llama_projection_names(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    names = linear_leaf_names(model)
    assert names == sorted(LLAMA_PROJECTIONS)  # lm_head (tied, a Linear) is left out
    assert target_modules("all-linear", names) == list(LLAMA_PROJECTIONS)
    assert target_modules(["v_proj", "q_proj"], names) == ["v_proj", "q_proj"]
    # an architecture with other names keeps them, after the known ones
    assert target_modules("all-linear", ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]) == \
        ["o_proj", "down_proj", "gate_up_proj", "qkv_proj"]


def test_config_maps_to_unsloth_arguments(tmp_path):
    config = RunConfig.from_dict({
        "model": {"name": "demo", "backend": "unsloth", "load_in_4bit": True,
                  "trust_remote_code": False},
        "lora": {"r": 32, "alpha": 64, "dropout": 0.05, "use_rslora": True},
        "data": {"path": str(ORDERS), "max_length": 4096},
        "train": {"seed": 7, "gradient_checkpointing": True}})
    load = unsloth_load_kwargs("/models/demo", config, "bfloat16")
    assert load == {"model_name": "/models/demo", "max_seq_length": 4096, "dtype": "bfloat16",
                    "load_in_4bit": True, "load_in_16bit": False, "full_finetuning": False,
                    "trust_remote_code": False, "use_exact_model_name": True,
                    "fix_tokenizer": False, "use_gradient_checkpointing": "unsloth"}
    peft = unsloth_peft_kwargs(config.lora, 7, True, list(LLAMA_PROJECTIONS))
    assert peft == {"r": 32, "lora_alpha": 64.0, "lora_dropout": 0.05,
                    "target_modules": list(LLAMA_PROJECTIONS), "bias": "none",
                    "use_rslora": True, "random_state": 7, "use_gradient_checkpointing": "unsloth"}

    plain = config.with_overrides(["model.load_in_4bit=false", "data.max_length=512",
                                   "train.gradient_checkpointing=false"])
    load = unsloth_load_kwargs("/models/demo", plain, "float16")
    # 16-bit said explicitly (Unsloth defaults to 4-bit); never below Unsloth's 2048 tokens,
    # because it cuts generation inputs to max_seq_length too
    assert (load["load_in_4bit"], load["load_in_16bit"], load["max_seq_length"]) == \
        (False, True, 2048)
    assert load["use_gradient_checkpointing"] is False
    assert unsloth_peft_kwargs(plain.lora, 1, False, [])["use_gradient_checkpointing"] is False


UNSLOTH = importlib.util.find_spec("unsloth")


@pytest.mark.skipif(UNSLOTH is None, reason=f"unsloth not installed ({UNSLOTH_INSTALL}); "
                    "the argument names were checked by hand against unsloth 2026.10.9")
def test_argument_names_exist_in_the_installed_unsloth(tmp_path):
    """Reads Unsloth's source without importing it (the import needs a GPU)."""
    root = Path(UNSLOTH.origin).parent
    loader = _method_parameters(root / "models" / "loader.py", "FastLanguageModel",
                                "from_pretrained")
    peft = _method_parameters(root / "models" / "llama.py", "FastLlamaModel", "get_peft_model")
    config = tiny_config("/m", ORDERS, tmp_path)
    assert set(unsloth_load_kwargs("/m", config, "bfloat16")) <= loader
    assert set(unsloth_peft_kwargs(config.lora, 1, True, ["q_proj"])) <= peft


def _method_parameters(path: Path, class_name: str, method: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == method:
                    return {a.arg for a in item.args.args + item.args.kwonlyargs}
    raise AssertionError(f"{class_name}.{method} not found in {path}")


# -- this CPU machine, as it is --------------------------------------------------------------

def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


cpu_only = pytest.mark.skipif(_has_cuda(), reason="describes a machine without a GPU; "
                              "tests/test_gpu.py covers GPUs")


@cpu_only
def test_unsloth_on_this_cpu_fails_before_anything_loads(tiny_model_dir, tmp_path):
    from workbench import train

    config = tiny_config(tiny_model_dir, ORDERS, tmp_path / "runs",
                         model={"backend": "unsloth"})
    began = time.perf_counter()
    with pytest.raises(BackendUnavailable) as caught:
        train(config, quiet=True)
    assert time.perf_counter() - began < 5
    assert "needs an NVIDIA GPU with CUDA and none was found" in str(caught.value)
    assert UNSLOTH_INSTALL in str(caught.value)
    assert not (tmp_path / "runs").exists()  # no run folder: nothing was started


@cpu_only
def test_4bit_on_this_cpu_fails_before_anything_loads(tiny_model_dir, tmp_path):
    from workbench import train

    config = tiny_config(tiny_model_dir, ORDERS, tmp_path / "runs",
                         model={"backend": "hf", "load_in_4bit": True})
    with pytest.raises(BackendUnavailable, match="load_in_4bit needs an NVIDIA GPU"):
        train(config, quiet=True)
    assert not (tmp_path / "runs").exists()


def test_packing_with_unsloth_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="data.packing is not supported with model.backend "
                                          "unsloth"):
        tiny_config("/m", ORDERS, tmp_path, model={"backend": "unsloth"},
                    data={"packing": True}).validate()
    # auto with packing is fine: it picks hf where Unsloth would have run
    tiny_config("/m", ORDERS, tmp_path, data={"packing": True}).validate()


def test_stacking_trains_on_hf(tmp_path):
    """lora.start_from loads a saved adapter, which only the hf backend does."""
    chosen, why = decide_backend("auto", H100, stacking=True)
    assert chosen == "hf" and "lora.start_from" in why
    assert decide_backend("auto", H100)[0] == "unsloth"  # the same machine without stacking
    with pytest.raises(ConfigError, match="lora.start_from is not supported with model.backend "
                       "unsloth"):
        tiny_config("/m", ORDERS, tmp_path, model={"backend": "unsloth"},
                    lora={"start_from": str(tmp_path)}).validate()


@cpu_only
def test_cli_refuses_unsloth_in_one_line_without_loading_transformers(tiny_model_dir, tmp_path):
    config = {"model": {"name": tiny_model_dir, "backend": "unsloth"},
              "data": {"path": str(ORDERS)}, "train": {"max_steps": 2},
              "output": {"runs_dir": str(tmp_path / "runs")}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    # The real CLI entry point; afterwards, say whether transformers was ever imported.
    code = ("import sys; from workbench.cli import main; rc = main(['train', sys.argv[1]]); "
            "print('transformers' in sys.modules); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2, done.stderr
    assert done.stdout.strip() == "False"  # failed before any model code was imported
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith("error: backend: unsloth needs an NVIDIA GPU with CUDA")
    assert UNSLOTH_INSTALL in lines[0]
    assert not (tmp_path / "runs").exists()


@cpu_only
def test_auto_records_hf_and_why_in_the_run_folder(tiny_model_dir, tmp_path):
    from workbench import train

    config = tiny_config(tiny_model_dir, ORDERS, tmp_path, train={"max_steps": 2,
                                                                  "save_every": 0})
    assert config.model.backend == "auto"
    assert select_backend(config)[1] == "auto: no CUDA GPU, so transformers + PEFT on the CPU"
    result = train(config, quiet=True)
    env = json.loads((result.run_dir / "environment.json").read_text())
    assert env["backend"] == "hf"
    assert env["backend_reason"] == "auto: no CUDA GPU, so transformers + PEFT on the CPU"
    assert env["dtype"] == "float32" and env["gpu"] is None and env["gpu_capability"] is None
    assert json.loads((result.run_dir / "summary.json").read_text())["backend"] == "hf"


def test_model_loss_path_trains_the_same_objective(tiny_model_dir, orders_subset, tmp_path):
    """Under Unsloth the engine keeps the model's own loss; on the same model and batch it
    is the selective loss's value, so the choice changes speed, not what is learned."""
    import torch

    from workbench.backends.hf import HFBackend
    from workbench.data import encode_splits, load_splits
    from workbench.data.encoding import PaddingCollator
    from workbench.engine.rundir import RunDir
    from workbench.engine.run import training_arguments
    from workbench.engine.trainer import WorkbenchTrainer

    config = tiny_config(tiny_model_dir, orders_subset, tmp_path, model={"dtype": "float32"},
                         train={"gradient_checkpointing": True})
    bundle = HFBackend().load(config)
    rows = encode_splits(load_splits(config.data, 0), bundle.tokenizer, config.data).train
    batch = PaddingCollator(bundle.tokenizer.pad_token_id)(rows[:4])
    folder = RunDir.create(str(tmp_path), "t")
    losses, flags = [], []
    for own in (False, True):
        args = training_arguments(config, folder, bundle, has_eval=False)
        trainer = WorkbenchTrainer(model=bundle.model, args=args, train_dataset=rows,
                                   data_collator=PaddingCollator(bundle.tokenizer.pad_token_id),
                                   model_loss=own)
        with torch.no_grad():
            losses.append(trainer.compute_loss(bundle.model, dict(batch)).item())
        flags.append(trainer.selective_head)
    assert flags == [True, False]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)

    # Unsloth sets up its own checkpointing: Trainer must not switch on its own on top.
    from dataclasses import replace

    assert training_arguments(config, folder, bundle, False).gradient_checkpointing is True
    unsloth_like = replace(bundle, backend_checkpointing=True)
    assert training_arguments(config, folder, unsloth_like, False).gradient_checkpointing is False
