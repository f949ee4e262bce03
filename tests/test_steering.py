"""Steering a run from its folder: `workbench stop|pause|resume|save RUN_DIR` from another
process, honoured at the next optimizer step; requests reach only the process they were
sent to."""

import json
import os
import socket
import subprocess
import sys
import time

from conftest import tiny_config
from test_cli import workbench, write_tiny_config


def wait_until(condition, seconds=120, what="the run"):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def metric_steps(run_dir) -> list[int]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines()
            if line.endswith("}") and '"loss"' in line]


def test_a_cli_run_is_paused_saved_resumed_and_stopped_from_another_process(tiny_model_dir,
                                                                            tmp_path):
    path = write_tiny_config(tmp_path, tiny_model_dir, "steered", max_steps=5000,
                             eval_fraction=0)
    log = open(tmp_path / "train.log", "w")  # a file, never an undrained pipe
    process = subprocess.Popen([sys.executable, "-m", "workbench", "train", str(path), "--quiet"],
                               stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        run_dir = wait_until(lambda: next((p.parent for p in (tmp_path / "runs").glob(
            "steered-*/metrics.jsonl") if len(metric_steps(p.parent)) >= 2), None),
            what="training to start")

        paused = workbench("pause", str(run_dir), "--wait", "60")
        assert paused.returncode == 0, paused.stdout + paused.stderr
        assert "is paused at step" in paused.stdout
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "running" and summary["paused"] is True
        listed = workbench("runs", "--runs-dir", str(tmp_path / "runs"))
        assert "steered-" in listed.stdout and " paused " in listed.stdout, listed.stdout
        steps_while_paused = metric_steps(run_dir)
        time.sleep(1.5)
        assert metric_steps(run_dir) == steps_while_paused, "a paused run kept training"

        saved = workbench("save", str(run_dir), "--wait", "60")  # honoured while paused
        assert saved.returncode == 0, saved.stdout + saved.stderr
        paused_at = summary["paused_at"]
        assert (run_dir / "checkpoints" / f"checkpoint-{paused_at}" / "trainer_state.json").exists()

        resumed = workbench("resume", str(run_dir), "--wait", "60")
        assert resumed.returncode == 0 and "running again" in resumed.stdout, resumed.stderr
        wait_until(lambda: metric_steps(run_dir)[-1] > paused_at + 2, what="training to go on")

        stopped = workbench("stop", str(run_dir), "--wait", "120")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert process.wait(timeout=120) == 0, (tmp_path / "train.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "stopped" and paused_at + 2 < summary["step"] < 5000
    assert (run_dir / "checkpoints" / f"checkpoint-{summary['step']}").is_dir()
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists()

    again = workbench("stop", str(run_dir))
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "is not running (status: stopped)" in again.stderr
    assert f"workbench train --resume {run_dir}" in again.stderr


def test_a_request_left_for_an_earlier_process_does_not_stop_the_resumed_run(
        tiny_model_dir, orders_subset, tmp_path):
    from workbench.engine.run import Run
    from workbench.engine.steering import send_request
    from workbench.events import StepLogged

    def stop_at_step_3(event):
        if isinstance(event, StepLogged) and event.step == 3:
            send_request(run.run_dir.path, "stop")  # through the folder, as another process

    run = Run(tiny_config(tiny_model_dir, orders_subset, tmp_path / "runs",
                          train={"max_steps": 6, "save_every": 3}), sinks=[stop_at_step_3])
    first = run.execute()
    assert first.status == "stopped" and first.summary["step"] == 4  # after the next step
    left_behind = (first.run_dir / "control.jsonl").read_text().splitlines()
    assert [json.loads(line)["action"] for line in left_behind] == ["stop"]

    resumed = Run.resume(first.run_dir).execute()
    assert resumed.status == "finished" and resumed.summary["step"] == 6


def test_requests_reach_only_the_run_and_the_process_they_were_sent_to(tmp_path):
    from workbench.engine.rundir import RunDir
    from workbench.engine.steering import RequestReader, send_request
    from workbench.events import Control

    runs = []
    for name in ("a", "b"):  # two runs in the same runs folder
        folder = RunDir(tmp_path / "runs" / name)
        folder.path.mkdir(parents=True)
        (folder.path / "config.yaml").write_text("{}\n")
        runs.append((folder, RequestReader(folder, folder.mark_running()), Control()))
    (a, reader_a, control_a), (b, reader_b, control_b) = runs

    send_request(a.path, "pause")
    assert reader_b.poll(control_b) == [] and not control_b.pause_requested
    assert reader_a.poll(control_a) == ["pause"] and control_a.pause_requested
    assert reader_a.poll(control_a) == []  # each request is applied once

    with open(a.file("control.jsonl"), "a") as handle:  # a sender still writing its line
        handle.write('{"session": "' + reader_a.session + '", "action": "resume"')
    assert reader_a.poll(control_a) == [] and control_a.pause_requested
    with open(a.file("control.jsonl"), "a") as handle:
        handle.write("}\n")
    assert reader_a.poll(control_a) == ["resume"] and not control_a.pause_requested

    a.mark_running()  # the run resumed in a new process: the old reader's session is gone
    send_request(a.path, "stop")
    assert reader_a.poll(control_a) == [] and not control_a.stop_requested


def test_requests_to_a_folder_that_is_not_a_running_run_say_so(tmp_path):
    not_a_run = workbench("pause", str(tmp_path))
    assert not_a_run.returncode == 2 and "Traceback" not in not_a_run.stderr
    assert "is not a run folder" in not_a_run.stderr

    killed = tmp_path / "killed-run"
    killed.mkdir()
    (killed / "config.yaml").write_text("{}\n")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (killed / "summary.json").write_text(json.dumps(
        {"status": "running", "pid": int(dead), "host": socket.gethostname(), "session": "x"}))
    result = workbench("stop", str(killed))
    assert result.returncode == 2 and "is not running (status: interrupted)" in result.stderr
    assert "continues from its last checkpoint" in result.stderr
    assert not (killed / "control.jsonl").exists(), "a request was left for nobody"


def test_a_dashboard_attached_to_a_cli_run_follows_it_and_steers_it(tiny_model_dir, tmp_path):
    import pytest

    from workbench.errors import RunError
    from workbench.ui.dashboard import Dashboard

    path = write_tiny_config(tmp_path, tiny_model_dir, "followed", max_steps=5000,
                             eval_fraction=0)
    log = open(tmp_path / "train.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "workbench", "train", str(path), "--quiet"],
                               stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        run_dir = wait_until(lambda: next((p.parent for p in (tmp_path / "runs").glob(
            "followed-*/metrics.jsonl") if metric_steps(p.parent)), None),
            what="training to start")
        watcher = Dashboard(interactive=True, redraw_seconds=0.0)
        watcher.attach(run_dir, poll_seconds=0.1)
        watcher.close()  # closing a dashboard that follows a run leaves the run going
        assert not (run_dir / "control.jsonl").exists(), "closing sent a request"

        dash = Dashboard(interactive=True, redraw_seconds=0.0)
        dash.attach(run_dir, poll_seconds=0.1)
        wait_until(lambda: dash.live.step >= 3, what="the chart to follow the run")
        assert dash.state == "running" and "/ 5000" in dash.live.status.value
        assert dash.live.chart.get_state()["value"][:4] == b"\x89PNG"
        with pytest.raises(RunError, match="is trained by another process"):
            dash.chat_model()

        dash.pause_button.click()
        wait_until(lambda: dash.state == "paused", what="the run to pause")
        assert not dash.resume_button.disabled and dash.pause_button.disabled
        paused_at = json.loads((run_dir / "summary.json").read_text())["paused_at"]
        dash.save_button.click()
        wait_until(lambda: f"checkpoint saved at step {paused_at}" in dash.live.status.value,
                   what="the dashboard to see the checkpoint")
        assert (run_dir / "checkpoints" / f"checkpoint-{paused_at}" / "trainer_state.json").exists()
        dash.resume_button.click()
        wait_until(lambda: dash.state == "running" and dash.live.step > paused_at + 2,
                   what="the run to go on")
        dash.stop_button.click()
        assert process.wait(timeout=120) == 0, (tmp_path / "train.log").read_text()
        wait_until(lambda: dash.state == "stopped", what="the dashboard to see the end")
        dash.wait(10)
        assert not dash.start_button.disabled and dash.stop_button.disabled
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    with pytest.raises(RunError, match=r"is not running \(status: stopped\)"):
        Dashboard(interactive=True).attach(run_dir)


def test_what_the_recorder_writes_the_follower_reads_back_as_the_same_events(tmp_path):
    from workbench.engine.follow import RunFollower
    from workbench.engine.recorder import RunRecorder
    from workbench.engine.rundir import RunDir
    from workbench.events import (EvalLogged, EvalScored, RunEnded, RunPaused, RunResumed,
                                  RunStarted, SampleGenerated, StepLogged)

    folder = RunDir(tmp_path / "run")
    folder.path.mkdir()
    (folder.path / "config.yaml").write_text("data: {path: x.jsonl}\ntrain: {max_steps: 9}\n")
    folder.mark_running()
    record, follower = RunRecorder(folder), RunFollower(folder.path)
    (started,) = follower.poll()
    assert isinstance(started, RunStarted) and started.total_steps == 9

    written = [StepLogged(step=1, total_steps=9, epoch=0.1, loss=2.5, learning_rate=1e-4,
                          grad_norm=None, tokens_seen=80, tokens_per_second=40.0,
                          elapsed_seconds=2.0, metrics={"reward": 1.5, "reward/json_valid": 0.5}),
               EvalLogged(step=1, eval_loss=2.0, perplexity=7.39, epoch=0.1, elapsed_seconds=2.5,
                          metrics={"eval_reward_accuracy": 0.75}),
               EvalScored(step=1, adapter=True, scores={"json_equal": 0.25}, examples=4,
                          general_loss=3.5, general_change=0.01, seconds=1.25,
                          tokens_per_second=30.5)]
    for event in written:
        record(event)
    record(SampleGenerated(step=1, prompts=("a", "b"), completions=("x", "y")))
    assert follower.poll() == written + [SampleGenerated(step=1, prompts=("a", "b"),
                                                         completions=("x", "y"))]
    assert follower.poll() == []  # nothing new

    with open(folder.file("metrics.jsonl"), "a") as handle:  # a row still being written
        handle.write('{"step": 2, "loss": 1.0')
    record(RunPaused(step=2))
    assert follower.poll() == [RunPaused(step=2)]
    record(RunResumed(step=2))
    assert follower.poll() == [RunResumed(step=2)]
    record(RunEnded(status="stopped", step=2, run_dir=str(folder.path),
                    summary={"status": "stopped", "step": 2}))
    (ended,) = follower.poll()
    assert isinstance(ended, RunEnded) and ended.status == "stopped" and follower.ended


def test_a_run_that_is_still_running_is_not_resumed_beside_itself(tmp_path):
    import pytest

    from workbench.engine.run import Run
    from workbench.engine.rundir import RunDir
    from workbench.errors import RunError

    folder = RunDir(tmp_path / "busy")
    folder.path.mkdir()
    (folder.path / "config.yaml").write_text("data: {path: x.jsonl}\n")
    folder.mark_running()  # this process runs it
    with pytest.raises(RunError, match=r"is still running \(pid \d+ on .*workbench stop"):
        Run.resume(folder.path)
