"""The engine trains a real (tiny) Llama end to end: no mocks, real Trainer, real PEFT."""

import json
import threading

import pytest

from conftest import tiny_config
from workbench.engine.rundir import RunDir
from workbench.engine.run import Run
from workbench.errors import DataError, ModelError
from workbench.events import (Control, EvalLogged, RunEnded, RunPaused, RunResumed, RunStarted,
                              SampleGenerated, StepLogged)


class Recorder(list):
    def __call__(self, event):
        self.append(event)

    def of(self, kind):
        return [e for e in self if isinstance(e, kind)]


def test_loss_falls_and_the_run_folder_is_complete(tiny_model_dir, orders_subset, tmp_path):
    events = Recorder()
    config = tiny_config(tiny_model_dir, orders_subset, tmp_path, train={
        "max_steps": 30, "eval_every": 10, "save_every": 15, "learning_rate": 2e-2},
        sample={"prompts": ["Hello"], "every": 15, "max_new_tokens": 8})
    result = Run(config, sinks=[events]).execute()

    losses = [e.loss for e in events.of(StepLogged)]
    assert result.status == "finished"
    # A random 2-layer model starts at ln(49152) = 10.8 nats, where it stays without learning;
    # rank-8 LoRA on 64-wide layers moves it about 0.6 nats in 30 steps.
    assert sum(losses[-3:]) / 3 < losses[0] - 0.4, losses
    evals = events.of(EvalLogged)
    assert [e.step for e in evals] == [10, 20, 30] and evals[-1].eval_loss < evals[0].eval_loss
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunEnded)
    samples = events.of(SampleGenerated)
    assert [(s.step, s.adapter) for s in samples] == [(0, False), (15, True), (30, True)]

    folder = RunDir(result.run_dir)
    for name in ("config.yaml", "environment.json", "metrics.jsonl", "samples.jsonl",
                 "summary.json", "adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                 "checkpoints/checkpoint-30"):
        assert (result.run_dir / name).exists(), name
    metrics = folder.metrics()
    train_rows = [r for r in metrics if "loss" in r]
    assert [r["step"] for r in train_rows] == list(range(1, 31))
    assert set(train_rows[-1]) >= {"step", "epoch", "loss", "learning_rate", "grad_norm",
                                   "tokens_seen", "tokens_per_second", "elapsed_seconds"}
    assert train_rows[-1]["tokens_seen"] > train_rows[0]["tokens_seen"] > 0
    assert [r["step"] for r in metrics if "eval_loss" in r] == [10, 20, 30]
    summary = folder.summary()
    assert summary["status"] == "finished" and summary["step"] == 30
    assert summary["best_eval_loss"] == min(e.eval_loss for e in evals)
    assert folder.read_config() == config  # config.yaml round-trips
    env = json.loads((result.run_dir / "environment.json").read_text())
    assert env["device"] == "cpu" and env["torch"] and env["backend"] == "hf"


def test_saved_adapter_loads_with_plain_peft_and_gives_the_same_logits(
        tiny_model_dir, orders_subset, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run = Run(tiny_config(tiny_model_dir, orders_subset, tmp_path, train={"max_steps": 8}))
    result = run.execute()
    ids = torch.tensor([[1, 520, 33, 4067, 28, 905, 2]])
    run.bundle.model.eval()
    with torch.no_grad():
        ours = run.bundle.model(input_ids=ids).logits
        plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                          str(result.run_dir / "adapter")).eval()
        theirs = plain(input_ids=ids).logits
        base = plain.get_base_model()
        with plain.disable_adapter():
            untuned = plain(input_ids=ids).logits
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()
    assert not torch.allclose(ours, untuned, atol=1e-3)  # the adapter really changed something


def test_stop_mid_run_then_resume_continues_the_same_curve(tiny_model_dir, orders_subset,
                                                             tmp_path):
    reference = Run(tiny_config(tiny_model_dir, orders_subset, tmp_path / "a")).execute()
    expected = {r["step"]: r["loss"] for r in RunDir(reference.run_dir).metrics() if "loss" in r}

    control = Control()

    def stop_after_step_6(event):
        if isinstance(event, StepLogged) and event.step == 6:
            control.stop()

    events = Recorder()
    stopped = Run(tiny_config(tiny_model_dir, orders_subset, tmp_path / "b"),
                  sinks=[stop_after_step_6, events], control=control).execute()
    assert not events.of(EvalLogged)  # stop means now: no final evaluation first
    folder = RunDir(stopped.run_dir)
    assert stopped.status == "stopped" and folder.summary()["status"] == "stopped"
    # Requested while step 6 was being logged, honoured at the end of the next step.
    assert folder.summary()["step"] == 7
    assert (stopped.run_dir / "adapter" / "adapter_model.safetensors").exists()
    assert folder.last_checkpoint().name == "checkpoint-7"

    resumed = Run.resume(stopped.run_dir).execute()
    assert resumed.status == "finished" and resumed.run_dir == stopped.run_dir
    rows = [r for r in folder.metrics() if "loss" in r]
    assert [r["step"] for r in rows] == list(range(1, 13))  # one clean curve, no repeats
    for row in rows:
        assert row["loss"] == pytest.approx(expected[row["step"]], abs=1e-4), row["step"]
    assert rows[-1]["tokens_seen"] == [r for r in RunDir(reference.run_dir).metrics()
                                       if "loss" in r][-1]["tokens_seen"]


def test_a_run_stopped_at_its_last_step_resumes_without_training_more(
        tiny_model_dir, orders_subset, tmp_path):
    from safetensors.torch import load_file

    control = Control()

    def stop_after_step_11(event):  # honoured at the end of step 12, the last
        if isinstance(event, StepLogged) and event.step == 11:
            control.stop()

    config = tiny_config(tiny_model_dir, orders_subset, tmp_path, train={"eval_every": 5})
    stopped = Run(config, sinks=[stop_after_step_11], control=control).execute()
    folder = RunDir(stopped.run_dir)
    assert stopped.status == "stopped" and folder.last_checkpoint().name == "checkpoint-12"
    # Trainer evaluates at the last step of an eval_every schedule even when stopped there
    assert [r["step"] for r in folder.metrics() if "eval_loss" in r] == [5, 10, 12]

    events = Recorder()
    resumed = Run.resume(stopped.run_dir, sinks=[events]).execute()
    rows = folder.metrics()
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 13))  # no step 13
    assert not events.of(StepLogged)
    # step 12 was evaluated before the stop: the resumed run knows it and does not repeat it
    assert [r["step"] for r in rows if "eval_loss" in r] == [5, 10, 12]
    assert not events.of(EvalLogged) and events.of(RunStarted) and events.of(RunEnded)
    summary = folder.summary()
    assert resumed.status == "finished" and summary["step"] == 12
    assert summary["final_loss"] == [r for r in rows if "loss" in r][-1]["loss"]
    evals = {r["step"]: r["eval_loss"] for r in rows if "eval_loss" in r}
    assert summary["best_eval_loss"] == min(evals.values())  # before the stop counts too
    assert summary["best_eval_step"] == min(evals, key=evals.get)
    # the adapter saved is the trained one from the checkpoint, not a fresh start
    trained = load_file(folder.last_checkpoint() / "adapter_model.safetensors")
    saved = load_file(resumed.run_dir / "adapter" / "adapter_model.safetensors")
    assert trained.keys() == saved.keys()
    assert all(torch_equal(trained[k], saved[k]) for k in trained)


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a, b)


def test_pause_holds_training_until_resume(tiny_model_dir, orders_subset, tmp_path):
    control, events = Control(), Recorder()
    paused = threading.Event()

    def pause_at_step_3(event):
        events(event)
        if isinstance(event, StepLogged) and event.step == 3:
            control.pause()
        if isinstance(event, RunPaused):
            paused.set()

    worker = threading.Thread(target=Run(tiny_config(
        tiny_model_dir, orders_subset, tmp_path), sinks=[pause_at_step_3], control=control).execute)
    worker.start()
    assert paused.wait(120), "the run never paused"
    steps_when_paused = len(events.of(StepLogged))
    worker.join(1.0)
    assert worker.is_alive() and len(events.of(StepLogged)) == steps_when_paused
    control.resume()
    worker.join(120)
    assert not worker.is_alive()
    assert [e.step for e in events.of(RunPaused)] == [4] and events.of(RunResumed)
    assert events[-1].status == "finished" and events[-1].step == 12


def test_bad_data_fails_before_the_model_loads(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{oops\n')
    config = tiny_config("/nonexistent/model", tmp_path / "bad.jsonl", tmp_path / "runs")
    with pytest.raises(DataError, match="bad.jsonl line 2"):
        Run(config).execute()
    assert not (tmp_path / "runs").exists()  # no half-made run folder


def test_a_failure_is_recorded_in_the_run_folder(tiny_model_dir, orders_subset, tmp_path):
    events = Recorder()
    config = tiny_config(tiny_model_dir, orders_subset, tmp_path,
                         lora={"target_modules": ["no_such_layer"]})
    with pytest.raises(ModelError, match="no_such_layer"):
        Run(config, sinks=[events]).execute()
    (run_dir,) = list(tmp_path.glob("tiny-*"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "no_such_layer" in summary["error"]
    assert RunDir.open(run_dir).read_config() == config  # the failed run says what was tried
    assert events[-1].status == "failed"


def test_a_broken_sink_does_not_stop_training(tiny_model_dir, orders_subset, tmp_path, caplog):
    def broken(event):
        raise RuntimeError("chart exploded")

    result = Run(tiny_config(tiny_model_dir, orders_subset, tmp_path, train={"max_steps": 3}),
                 sinks=[broken]).execute()
    assert result.status == "finished"
    assert RunDir.open(result.run_dir).metrics()  # the run folder was written all the same
    failures = [r for r in caplog.records if "failed on" in r.getMessage()]
    assert failures and "chart exploded" in (failures[0].exc_text or str(failures[0].exc_info))


def test_no_host_sync_on_steps_that_do_not_log(tiny_model_dir, orders_subset, tmp_path,
                                               monkeypatch):
    """`.item()` forces a GPU to finish its queue; only logging steps may call it.

    Counted in the workbench and in Trainer. torch.optim's Adam reads its step counters
    with `.item()`, but those live on the host even on a GPU, so they do not sync.
    """
    import os
    import sys

    import torch
    import transformers

    import workbench

    watched = tuple(os.path.dirname(m.__file__) + os.sep for m in (workbench, transformers))
    calls = []
    real_item = torch.Tensor.item

    def counting_item(self):
        caller = sys._getframe(1).f_code.co_filename
        if caller.startswith(watched):
            calls.append(caller)
        return real_item(self)

    config = tiny_config(tiny_model_dir, orders_subset, tmp_path,
                         data={"eval_fraction": 0}, train={"max_steps": 21, "log_every": 10,
                                                           "save_every": 0})
    run = Run(config)
    monkeypatch.setattr(torch.Tensor, "item", counting_item)
    run.execute()
    logs = len([r for r in RunDir(run.run_dir.path).metrics() if "loss" in r])
    assert logs == 3  # steps 1, 10, 20
    assert len(calls) <= 4 * logs, f"{len(calls)} .item() calls for {logs} log steps: {calls}"


def test_the_recorder_writes_the_run_folder_from_events_alone(tmp_path):
    """What a new training method gets by emitting the engine's events: metrics, samples,
    checkpoint progress and the summary, in the files every view reads."""
    from workbench.engine.recorder import RunRecorder
    from workbench.events import CheckpointSaved, SampleGenerated, StepLogged

    folder = RunDir.create(tmp_path, "events")
    folder.mark_running()
    record = RunRecorder(folder)
    record(StepLogged(step=1, total_steps=2, epoch=0.5, loss=2.5, learning_rate=1e-3,
                      grad_norm=None, tokens_seen=40, tokens_per_second=10.0,
                      elapsed_seconds=4.0))
    record(EvalLogged(step=2, eval_loss=2.0, perplexity=7.39, epoch=1.0, elapsed_seconds=8.0))
    record(SampleGenerated(step=2, prompts=("hi",), completions=("hello",)))
    record(CheckpointSaved(step=2, path=str(folder.checkpoints_dir / "checkpoint-2")))
    assert folder.summary()["step"] == 2 and folder.summary()["status"] == "running"
    record(RunEnded(status="finished", step=2, run_dir=str(folder.path),
                    summary={"status": "finished", "step": 2}))
    assert [(r["step"], r.get("loss"), r.get("eval_loss")) for r in folder.metrics()] == [
        (1, 2.5, None), (2, None, 2.0)]
    assert folder.samples() == [{"step": 2, "adapter": True, "prompt": "hi",
                                 "completion": "hello"}]
    assert folder.summary() == {"status": "finished", "step": 2}
