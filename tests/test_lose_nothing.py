"""Lose nothing: hard kills, crashes mid-save, resource faults, determinism, concurrency,
and safe defaults (no remote code, no pickle, no tokens written, sandboxed templates).

Faults are injected into real runs of the tiny model (a raising hook or save function),
never by replacing the trainer.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, tiny_config
from workbench.config import config_to_yaml
from workbench.engine.rundir import RunDir, list_runs
from workbench.engine.run import Run
from workbench.errors import ConfigError, DataError, ModelError, RunError
from workbench.events import Control, StepLogged

PLANTED = "hf_" + "Planted0Token0For0Tests0abcdefghij"  # token-shaped, never a real one


def adapter_tensors(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(run_dir) / "adapter" / "adapter_model.safetensors"))


def losses(run_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in RunDir(run_dir).metrics() if "loss" in r]


def workbench_cli(*args, env=None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workbench", *args], cwd=REPO,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def only_run(runs_dir: Path) -> Path:
    folders = [p for p in Path(runs_dir).iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


# -- hard interruption -----------------------------------------------------------------------


def test_sigkill_mid_run_then_resume_ends_like_an_uninterrupted_run(tiny_model_dir,
                                                                     orders_subset, tmp_path):
    settings = {"train": {"max_steps": 40, "save_every": 4}, "data": {"eval_fraction": 0}}
    config = tiny_config(tiny_model_dir, orders_subset, tmp_path / "killed", **settings)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_to_yaml(config), encoding="utf-8")

    process = workbench_cli("train", str(config_file))
    deadline = time.monotonic() + 240
    folder = None
    while time.monotonic() < deadline and process.poll() is None:
        runs = list((tmp_path / "killed").glob("tiny-*"))
        if runs and any(r.get("step", 0) >= 10 for r in RunDir(runs[0]).metrics()):
            folder = runs[0]
            break
        time.sleep(0.02)
    assert folder is not None, f"the run ended before it could be killed: {process.poll()}"
    process.send_signal(signal.SIGKILL)
    process.wait()

    run = RunDir(folder)
    summary = run.summary()
    assert summary["status"] == "running" and summary["ended"] is False  # not a clean end
    assert run.status() == "interrupted"
    assert list_runs(tmp_path / "killed")[0]["status"] == "interrupted"
    assert summary["last_checkpoint"] and summary["step"] >= 8
    killed_at = max(r["step"] for r in run.metrics())
    assert 10 <= killed_at < 40
    with open(run.file("metrics.jsonl"), "a", encoding="utf-8") as handle:
        handle.write('{"step": 99, "loss": 1.2')  # a line torn by the kill
    assert [r["step"] for r in run.metrics()][-1] == killed_at  # the torn line is skipped
    assert not list((folder / "checkpoints").glob(".*"))  # no half-written checkpoint left

    resumed = workbench_cli("train", "--resume", str(folder))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert run.summary()["status"] == "finished" and run.status() == "finished"
    assert [step for step, _ in losses(folder)] == list(range(1, 41))  # one curve, no repeats

    reference = Run(tiny_config(tiny_model_dir, orders_subset, tmp_path / "whole",
                                **settings)).execute()
    expected = dict(losses(reference.run_dir))
    for step, loss in losses(folder):
        assert loss == pytest.approx(expected[step], abs=1e-5), step
    got, want = adapter_tensors(folder), adapter_tensors(reference.run_dir)
    assert got.keys() == want.keys()
    for name in want:  # the same adapter, to float32 rounding
        assert (got[name] - want[name]).abs().max().item() <= 1e-6, name


# -- atomic writes ---------------------------------------------------------------------------


def test_a_disk_full_mid_checkpoint_leaves_no_half_checkpoint_and_says_what_to_do(
        tiny_model_dir, orders_subset, tmp_path, monkeypatch):
    from transformers import Trainer

    real_save = Trainer._save_rng_state

    def disk_fills_at_step_8(self, output_dir):
        if self.state.global_step == 8:  # model and optimizer are written, the rest is not
            raise OSError(errno.ENOSPC, "No space left on device", f"{output_dir}/rng_state.pth")
        return real_save(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", disk_fills_at_step_8)
    config = tiny_config(tiny_model_dir, orders_subset, tmp_path)
    with pytest.raises(RunError) as caught:
        Run(config).execute()
    message = str(caught.value)
    assert message.startswith("the disk is full: could not write")
    assert "output.runs_dir" in message and "Checkpoints up to step 4 are kept" in message

    folder = only_run(tmp_path)
    run = RunDir(folder)
    assert sorted(p.name for p in run.checkpoints_dir.iterdir()
                  if not p.name.startswith(".")) == ["checkpoint-4"]
    assert run.last_checkpoint().name == "checkpoint-4"
    assert run.summary()["status"] == "failed" and run.summary()["error"] == f"RunError: {message}"
    assert [r["step"] for r in run.metrics() if "loss" in r] == list(range(1, 9))

    monkeypatch.setattr(Trainer, "_save_rng_state", real_save)  # space freed: resume
    resumed = Run.resume(folder).execute()
    assert resumed.status == "finished"
    assert [r["step"] for r in run.metrics() if "loss" in r] == list(range(1, 13))


def test_a_crash_while_saving_the_adapter_keeps_the_previous_adapter_whole(
        tiny_model_dir, orders_subset, tmp_path, monkeypatch):
    control = Control()

    def stop_at_step_6(event):
        if isinstance(event, StepLogged) and event.step == 6:
            control.stop()

    config = tiny_config(tiny_model_dir, orders_subset, tmp_path)
    stopped = Run(config, sinks=[stop_at_step_6], control=control).execute()
    adapter = stopped.run_dir / "adapter"
    before = {p.name: p.read_bytes() for p in adapter.iterdir()}

    from transformers import PreTrainedTokenizerBase

    def crash(self, *args, **kwargs):  # the weights are written, then the process dies
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", crash)
    with pytest.raises(OSError):
        Run.resume(stopped.run_dir).execute()
    assert {p.name: p.read_bytes() for p in adapter.iterdir()} == before
    assert RunDir(stopped.run_dir).summary()["status"] == "failed"


def test_config_and_summary_are_never_half_written(tmp_path, monkeypatch):
    run = RunDir.create(tmp_path, "atomic")
    run.write_json("summary.json", {"status": "running", "step": 1})

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # the new text is written, not yet durable
    with pytest.raises(OSError):
        run.write_json("summary.json", {"status": "finished", "step": 12})
    assert run.summary() == {"status": "running", "step": 1}


# -- determinism and concurrency ------------------------------------------------------------


def test_the_same_config_and_seed_give_the_same_loss_curve(tiny_model_dir, orders_subset,
                                                           tmp_path):
    first = Run(tiny_config(tiny_model_dir, orders_subset, tmp_path / "a")).execute()
    second = Run(tiny_config(tiny_model_dir, orders_subset, tmp_path / "b")).execute()
    assert len(losses(first.run_dir)) == 12
    assert losses(first.run_dir) == losses(second.run_dir)  # bitwise, on CPU
    other_seed = Run(tiny_config(tiny_model_dir, orders_subset, tmp_path / "c",
                                 train={"seed": 7})).execute()
    assert losses(other_seed.run_dir) != losses(first.run_dir)  # the seed is really used


def test_two_runs_started_together_get_their_own_folders(tiny_model_dir, orders_subset,
                                                         tmp_path):
    config = tiny_config(tiny_model_dir, orders_subset, tmp_path / "runs",
                         train={"max_steps": 4, "save_every": 2})
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_to_yaml(config), encoding="utf-8")
    rates = ("0.001", "0.002")
    processes = [workbench_cli("train", str(config_file), "--set", f"train.learning_rate={r}")
                 for r in rates]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2
    seen_rates = set()
    for folder in folders:
        run = RunDir(folder)
        seen_rates.add(str(run.read_config().train.learning_rate))
        assert [r["step"] for r in run.metrics() if "loss" in r] == [1, 2, 3, 4]
        assert run.summary()["run_dir"] == str(folder)
        assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == ["checkpoint-2",
                                                                          "checkpoint-4"]
    assert seen_rates == {"0.001", "0.002"}


def test_folder_creation_never_hands_one_folder_to_two_runs(tmp_path):
    created, start = [], threading.Barrier(8)

    def make():
        start.wait()
        created.append(RunDir.create(tmp_path, "same").path)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(created)) == 8


# -- resource faults -------------------------------------------------------------------------


def test_out_of_memory_names_the_settings_to_change_and_keeps_checkpoints(
        tiny_model_dir, orders_subset, tmp_path, monkeypatch):
    import torch

    from workbench.backends.hf import HFBackend

    real_load = HFBackend.load
    calls = {"forward": 0}

    def load_then_fail_at_step_6(self, config, *args, **kwargs):
        bundle = real_load(self, config, *args, **kwargs)

        def hook(module, inputs):
            if module.training:
                calls["forward"] += 1
                if calls["forward"] == 6:
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        bundle.model.get_decoder().register_forward_pre_hook(hook)
        return bundle

    monkeypatch.setattr(HFBackend, "load", load_then_fail_at_step_6)
    with pytest.raises(RunError) as caught:
        Run(tiny_config(tiny_model_dir, orders_subset, tmp_path)).execute()
    message = str(caught.value)
    assert message.startswith("out of memory on the cpu at step 5")
    assert "--set train.batch_size=2 --set train.grad_accum=2" in message
    assert "--set data.max_length=64" in message
    assert "train.gradient_checkpointing=true" in message
    assert "Checkpoints up to step 4 are kept" in message
    run = RunDir(only_run(tmp_path))
    assert run.summary()["status"] == "failed" and run.summary()["error"] == f"RunError: {message}"
    assert "OutOfMemoryError" in run.summary()["traceback"]  # the original stays on record
    assert run.last_checkpoint().name == "checkpoint-4"


# -- safe defaults ---------------------------------------------------------------------------


def test_remote_code_does_not_run_unless_the_config_trusts_it(tiny_model_dir, orders_subset,
                                                              tmp_path):
    import shutil

    folder = tmp_path / "remote-code-model"
    shutil.copytree(tiny_model_dir, folder)
    marker = tmp_path / "remote-code-ran"
    (folder / "modeling_evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "class EvilConfig(LlamaConfig):\n    model_type = 'evil-llama'\n"
        "class EvilForCausalLM(LlamaForCausalLM):\n    config_class = EvilConfig\n",
        encoding="utf-8")
    config_json = json.loads((folder / "config.json").read_text())
    config_json["model_type"] = "evil-llama"  # only its own code can load it
    config_json["auto_map"] = {"AutoConfig": "modeling_evil.EvilConfig",
                               "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (folder / "config.json").write_text(json.dumps(config_json))

    from workbench.backends.hf import HFBackend

    config = tiny_config(folder, orders_subset, tmp_path / "runs")
    assert config.model.trust_remote_code is False  # the default
    with pytest.raises(ModelError) as caught:
        Run(config).execute()
    assert "ships its own Python code" in str(caught.value)
    assert "model.trust_remote_code: true" in str(caught.value)
    assert not marker.exists()
    trusted = tiny_config(folder, orders_subset, tmp_path / "runs",
                          model={"trust_remote_code": True})
    bundle = HFBackend().load(trusted)
    assert marker.exists()  # the code did run, once asked to: the check above can fail
    assert "trust_remote_code was on" in bundle.notes[0]


def test_pickle_weights_are_refused_unless_allowed(tiny_model_dir, orders_subset, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.backends.hf import HFBackend

    import torch

    folder = tmp_path / "pickled"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # the old pickle format
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    assert (folder / "pytorch_model.bin").exists()
    assert not list(folder.glob("*.safetensors"))

    config = tiny_config(folder, orders_subset, tmp_path / "runs")
    with pytest.raises(ModelError) as caught:
        HFBackend().load(config)
    assert "pytorch_model.bin" in str(caught.value)
    assert "model.allow_pickle: true" in str(caught.value)

    allowed = tiny_config(folder, orders_subset, tmp_path / "runs", model={"allow_pickle": True})
    assert HFBackend().load(allowed).model is not None


def test_a_planted_token_is_never_written(tiny_model_dir, orders_subset, tmp_path,
                                          monkeypatch, capsys):
    import shutil

    monkeypatch.setenv("HF_TOKEN", PLANTED)
    monkeypatch.setenv("MY_SERVICE_API_KEY", "plain-secret-value-42")

    # 1. a config holding a token is refused, without echoing it
    with pytest.raises(ConfigError) as caught:
        tiny_config(tiny_model_dir, orders_subset, tmp_path, sample={"prompts": [PLANTED]})
    assert "sample.prompts" in str(caught.value) and "HF_TOKEN" in str(caught.value)
    assert PLANTED not in str(caught.value)

    # 2. a library error that quotes secrets, in the run folder, console and CLI
    folder = tmp_path / "leaky-model"
    shutil.copytree(tiny_model_dir, folder)
    config_json = json.loads((folder / "config.json").read_text())
    config_json["model_type"] = f"llama-{PLANTED}-plain-secret-value-42"
    (folder / "config.json").write_text(json.dumps(config_json))
    config = tiny_config(folder, orders_subset, tmp_path / "runs")
    with pytest.raises(ModelError) as caught:
        Run(config).execute()
    assert "[redacted]" in str(caught.value)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_to_yaml(config), encoding="utf-8")
    cli = workbench_cli("train", str(config_file))
    out, err = cli.communicate(timeout=300)
    assert cli.returncode == 2 and "[redacted]" in err

    written = [p.read_text(errors="replace") for p in (tmp_path / "runs").rglob("*")
               if p.is_file()]
    assert len(written) >= 4  # two run folders: config, summary, ...
    for text in written + [out, err, *capsys.readouterr()]:
        assert PLANTED not in text and "plain-secret-value-42" not in text


def test_chat_templates_run_in_a_sandbox(demo_tokenizer, tmp_path):
    import copy

    from workbench.data.encoding import encode
    from workbench.data.formats import Example

    marker = tmp_path / "template-ran-code"
    tokenizer = copy.deepcopy(demo_tokenizer)
    tokenizer.chat_template = (
        "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}"
        "{% for m in messages %}{{ m.content }}{% endfor %}")
    example = Example(where="orders.jsonl line 1",
                      messages=({"role": "user", "content": "hi"},
                                {"role": "assistant", "content": "hello"}))
    with pytest.raises(DataError) as caught:
        encode(example, tokenizer, max_length=64, train_on="responses")
    assert "orders.jsonl line 1" in str(caught.value) and "sandbox" in str(caught.value)
    assert not marker.exists()
