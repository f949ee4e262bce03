"""One run in several processes: `workbench train --nproc 2` under accelerate launch, with
gloo on the CPU. The main process alone writes the run folder; the loss curve equals a
single-process run with the same optimizer steps; checkpoints resume across process
counts; a launch that does not give the processes asked for fails at once."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ORDERS, REPO, tiny_config
from test_cli import workbench
from test_steering import metric_steps, wait_until

STEPS = 8


def write_config(folder: Path, model_dir, **train) -> Path:
    config = {"model": {"name": model_dir}, "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
              "data": {"path": str(folder / "orders.jsonl"), "eval_fraction": 0.125,
                       "max_length": 128},
              "train": {"learning_rate": 3e-3, "max_steps": STEPS, "batch_size": 2,
                        "log_every": 1, "save_every": 4, "eval_every": 0, **train},
              "output": {"runs_dir": str(folder / "runs"), "name": "spread"}}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def data_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = ORDERS.read_text(encoding="utf-8").splitlines()[:48]
    (root / "orders.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def only_run(runs: Path, name: str = "") -> Path:
    found = sorted(p for p in runs.iterdir() if p.name.startswith(name))
    assert len(found) == 1, f"expected one run folder, found {[p.name for p in found]}"
    return found[0]


def step_rows(run_dir: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [row["step"] for row in rows if "loss" in row]
    assert steps == sorted(set(steps)), f"one stream of steps, each once: {steps}"
    return {row["step"]: row for row in rows if "loss" in row}


def adapter_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def assert_same_tensors(a: dict, b: dict, tolerance: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        difference = (a[name] - b[name]).abs().max().item()
        assert difference <= tolerance, f"{name} differs by {difference}"


def as_stopped_at(source: Path, target: Path, step: int) -> Path:
    """A copy of a finished run as a run stopped at `step` leaves its folder: the later
    checkpoints and the final adapter are not there yet."""
    shutil.copytree(source, target)
    for checkpoint in (target / "checkpoints").glob("checkpoint-*"):
        if int(checkpoint.name.split("-")[1]) > step:
            shutil.rmtree(checkpoint)
    shutil.rmtree(target / "adapter")
    summary = json.loads((target / "summary.json").read_text())
    summary.update(status="stopped", step=step)
    (target / "summary.json").write_text(json.dumps(summary))
    return target


def assert_continues(resumed: Path, original: Path) -> None:
    """A run resumed after step 4 trained steps 5.. and ended as the uninterrupted one."""
    after, before = step_rows(resumed), step_rows(original)
    assert sorted(after) == list(range(1, STEPS + 1))
    for step in range(5, STEPS + 1):
        assert after[step]["loss"] == pytest.approx(before[step]["loss"], abs=1e-4), step
    assert_same_tensors(adapter_tensors(resumed / "adapter"), adapter_tensors(original / "adapter"),
                        1e-5)


@pytest.fixture(scope="module")
def two_runs(tiny_model_dir, tmp_path_factory):
    """The same 8 steps twice: in 2 processes of 2 examples (the CLI launches them), and
    in 1 process of 2 x 2 accumulated examples (in this process)."""
    from workbench.api import train
    from workbench.config import load_config

    spread = data_folder(tmp_path_factory.mktemp("two-processes"))
    done = workbench("train", str(write_config(spread, tiny_model_dir)), "--nproc", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    single = data_folder(tmp_path_factory.mktemp("one-process"))
    result = train(load_config(write_config(single, tiny_model_dir, grad_accum=2)), quiet=True)
    assert result.status == "finished"
    return only_run(spread / "runs"), result.run_dir, done


def test_two_processes_write_one_run_whose_curve_is_the_single_process_one(two_runs):
    spread, single, done = two_runs
    names = {p.name for p in spread.iterdir()}
    assert {"metrics.jsonl", "summary.json", "environment.json", "launch.log",
            "adapter"} <= names
    assert "launching 2 processes (ddp) with accelerate" in done.stderr
    assert "run finished at step 8" in done.stdout  # the log, followed to the end
    summary = json.loads((spread / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["world_size"] == 2
    environment = json.loads((spread / "environment.json").read_text())
    assert environment["distributed"] == {"world_size": 2, "strategy": "ddp", "launched": True,
                                          "grad_accum": 1, "examples_per_step": 4}
    checkpoint = spread / "checkpoints" / f"checkpoint-{STEPS}"
    assert (checkpoint / "rng_state_0.pth").exists() and (checkpoint / "rng_state_1.pth").exists()

    two, one = step_rows(spread), step_rows(single)
    assert sorted(two) == list(range(1, STEPS + 1)) == sorted(one)
    for step in two:  # the same examples in every step, gradients averaged over processes
        assert two[step]["loss"] == pytest.approx(one[step]["loss"], abs=1e-4), step
        assert two[step]["grad_norm"] == pytest.approx(one[step]["grad_norm"], rel=1e-3), step
        assert two[step]["tokens_seen"] == one[step]["tokens_seen"], step
    assert two[STEPS]["loss"] < two[1]["loss"] - 0.2, "the loss falls"
    assert_same_tensors(adapter_tensors(spread / "adapter"), adapter_tensors(single / "adapter"),
                        1e-5)


def test_a_two_process_checkpoint_resumes_in_one_process_and_continues_the_same_curve(
        two_runs, tmp_path):
    from workbench.api import resume

    spread, _, _ = two_runs
    stopped = as_stopped_at(spread, tmp_path / "stopped", 4)
    result = resume(stopped, quiet=True, nproc=1)
    assert result.status == "finished" and result.summary["world_size"] == 1
    environment = json.loads((stopped / "environment.json").read_text())
    assert environment["distributed"]["grad_accum"] == 2  # 4 examples a step, as before
    assert any("instead of 2: train.grad_accum 2" in note for note in environment["notes"])
    assert_continues(stopped, spread)


def test_a_one_process_checkpoint_resumes_in_two_processes_and_continues_the_same_curve(
        two_runs, tmp_path):
    _, single, _ = two_runs
    stopped = as_stopped_at(single, tmp_path / "stopped", 4)
    done = workbench("train", "--resume", str(stopped), "--nproc", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((stopped / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["world_size"] == 2
    assert json.loads((stopped / "environment.json").read_text())["distributed"]["grad_accum"] == 1
    assert_continues(stopped, single)


@pytest.mark.parametrize("nproc", [1, 2])
def test_the_adapter_a_resume_loads_is_the_saved_one_tensor_by_tensor(two_runs, tmp_path, nproc):
    """A checkpoint of the 2-process run, resumed at its last step in `nproc` processes:
    nothing trains, so the adapter the run then saves is what the checkpoint held."""
    spread, _, _ = two_runs
    stopped = as_stopped_at(spread, tmp_path / "stopped", STEPS)
    done = workbench("train", "--resume", str(stopped), "--nproc", str(nproc))
    assert done.returncode == 0, done.stdout + done.stderr
    assert_same_tensors(adapter_tensors(stopped / "adapter"),
                        adapter_tensors(stopped / "checkpoints" / f"checkpoint-{STEPS}"), 0.0)


def test_a_run_launched_with_fewer_processes_than_asked_fails_at_once(tiny_model_dir, tmp_path):
    from workbench.api import train
    from workbench.errors import RunError

    folder = data_folder(tmp_path)
    path = write_config(folder, tiny_model_dir)
    # torchrun itself, as a cluster job would start it: 1 process where the config asks for 2
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1",
                           "-m", "workbench", "train", str(path), "--set", "distributed.nproc=2"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode != 0
    assert ("error: this run asks for 2 processes (distributed.nproc 2) but was launched with 1 "
            "(WORLD_SIZE=1)") in done.stderr
    assert "workbench/engine/run.py" not in done.stderr, "a traceback from the engine"
    # and in a notebook or a script, which runs in one process
    config = tiny_config(tiny_model_dir, folder / "orders.jsonl", folder / "runs",
                         distributed={"nproc": 2})
    with pytest.raises(RunError, match="asks for 2 processes .* but runs in one; start it with "
                       "`workbench train CONFIG`"):
        train(config, quiet=True)
    assert not (folder / "runs").exists(), "a refused run leaves no folder"


def test_a_two_process_run_is_paused_resumed_and_stopped_from_its_folder(tiny_model_dir,
                                                                         tmp_path):
    folder = data_folder(tmp_path)
    path = write_config(folder, tiny_model_dir, max_steps=5000, save_every=0)
    log = open(tmp_path / "cli.log", "w")  # a file, never an undrained pipe
    # Started as a script's background job is: with SIGINT ignored, which the launcher must
    # undo for Ctrl-C to work.
    process = subprocess.Popen([sys.executable, "-m", "workbench", "train", str(path), "--nproc",
                                "2", "--quiet"], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        run_dir = wait_until(lambda: next((p.parent for p in (folder / "runs").glob(
            "spread-*/metrics.jsonl") if len(metric_steps(p.parent)) >= 2), None),
            what="training to start")
        paused = workbench("pause", str(run_dir), "--wait", "60")
        assert paused.returncode == 0, paused.stdout + paused.stderr
        steps = metric_steps(run_dir)
        time.sleep(1.5)
        assert metric_steps(run_dir) == steps, "a paused run kept training"
        saved = workbench("save", str(run_dir), "--wait", "60")  # both processes write it
        assert saved.returncode == 0, saved.stdout + saved.stderr
        paused_at = json.loads((run_dir / "summary.json").read_text())["paused_at"]
        checkpoint = run_dir / "checkpoints" / f"checkpoint-{paused_at}"
        assert (checkpoint / "rng_state_0.pth").exists() and (checkpoint / "rng_state_1.pth").exists()
        resumed = workbench("resume", str(run_dir), "--wait", "60")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        wait_until(lambda: len(metric_steps(run_dir)) > len(steps) + 2, what="training to go on")
        # Ctrl-C in the terminal: the launcher asks the run to stop through its folder
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0, (tmp_path / "cli.log").read_text()
    finally:
        if process.poll() is None:  # the launched processes are in their own session
            process.kill()
            subprocess.run(["pkill", "-f", str(folder / "runs")])
        log.close()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["world_size"] == 2
    assert (run_dir / "checkpoints" / f"checkpoint-{summary['step']}" / "rng_state_1.pth").exists()
    assert "stopping after this step" in (tmp_path / "cli.log").read_text()
    assert not processes_naming(run_dir), "a launched process outlived the run"


def processes_naming(text) -> list[str]:
    """The command lines of running processes that contain `text`."""
    listed = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [line for line in listed.stdout.splitlines()[1:] if str(text) in line]


def test_the_launch_command_is_accelerate_with_the_strategy_asked_for(tmp_path):
    from workbench.config import RunConfig
    from workbench.engine.launch import Nodes, accelerate_command
    from workbench.errors import RunError

    def settings(**values):
        return RunConfig.from_dict({"data": {"path": "x.jsonl"}, "distributed": values}).distributed

    ddp = accelerate_command(settings(nproc=4), ["train", "c.yaml"])
    assert ddp[1:3] == ["-m", "accelerate.commands.launch"]
    assert ddp[ddp.index("--num_processes") + 1] == "4" and "--multi_gpu" in ddp
    assert ddp[-4:] == ["-m", "workbench", "train", "c.yaml"]
    fsdp = accelerate_command(settings(nproc=2, strategy="fsdp"), ["train"])
    assert fsdp[fsdp.index("--fsdp_version") + 1] == "2" and "--use_fsdp" in fsdp
    nodes = accelerate_command(settings(nproc=4, nnodes=2), ["train"],
                               Nodes(rank=1, main_address="10.0.0.1"))
    assert nodes[nodes.index("--num_processes") + 1] == "8"
    assert nodes[nodes.index("--machine_rank") + 1] == "1"
    assert nodes[nodes.index("--main_process_ip") + 1] == "10.0.0.1"
    with pytest.raises(RunError, match="give every machine --node-rank and --main-address"):
        accelerate_command(settings(nproc=4, nnodes=2), ["train"])
    with pytest.raises(RunError, match="distributed.config_file missing.yaml does not exist"):
        accelerate_command(settings(nproc=2, config_file="missing.yaml"), ["train"])
    ds = tmp_path / "ds.json"
    ds.write_text("{}")
    with pytest.raises(RunError, match="needs DeepSpeed: pip install deepspeed"):
        accelerate_command(settings(nproc=2, strategy="deepspeed", config_file=str(ds)), ["train"])


def test_a_resume_that_cannot_keep_the_step_size_says_which_process_counts_can():
    from workbench.config import RunConfig
    from workbench.engine.distributed import grad_accum_on_resume
    from workbench.errors import ConfigError, RunError

    def settings(nproc):
        return RunConfig.from_dict({"data": {"path": "x.jsonl"},
                                    "distributed": {"nproc": nproc}}).distributed

    assert grad_accum_on_resume({"world_size": 2, "grad_accum": 3}, settings(3), 1)[0] == 2
    assert grad_accum_on_resume({}, settings(1), 4) == (4, None)
    with pytest.raises(RunError, match=r"2 process\(es\) with train.grad_accum 1: 2 passes .* "
                       "resume it in 1 or 2 processes"):
        grad_accum_on_resume({"world_size": 2, "grad_accum": 1}, settings(4), 1)
    with pytest.raises(ConfigError, match="distributed.strategy deepspeed needs a DeepSpeed JSON"):
        RunConfig.from_dict({"data": {"path": "x.jsonl"}, "distributed": {"strategy": "deepspeed"}})


def test_a_dashboard_starts_a_two_process_run_follows_it_and_steers_it(tiny_model_dir, tmp_path):
    from workbench.config import load_config
    from workbench.ui.dashboard import Dashboard

    folder = data_folder(tmp_path)
    config = load_config(write_config(folder, tiny_model_dir, max_steps=5000, save_every=0),
                         ["distributed.nproc=2"])
    dash = Dashboard(config, interactive=True, redraw_seconds=0.0)
    try:
        dash.start_button.click()
        run_dir = dash.launch.run_dir
        assert dash.attached == run_dir and dash.state in ("starting", "running")
        assert dash.launch.log == run_dir / "launch.log" and dash.launch.log.exists()
        wait_until(lambda: dash.live.step >= 3, what="the chart to follow the processes")
        dash.pause_button.click()
        wait_until(lambda: dash.state == "paused", what="the run to pause")
        steps = metric_steps(run_dir)
        time.sleep(1.0)
        assert metric_steps(run_dir) == steps, "a paused run kept training"
        dash.resume_button.click()
        wait_until(lambda: dash.state == "running" and dash.live.step > steps[-1] + 2,
                   what="the run to go on")
        dash.stop_button.click()
        wait_until(lambda: dash.state == "stopped", what="the dashboard to see the end")
        dash.wait(30)
        assert dash.result.status == "stopped" and dash.result.summary["world_size"] == 2
        assert dash.launch.process.wait(timeout=60) == 0
        assert "run stopped at step" in (run_dir / "launch.log").read_text()
    finally:
        if dash.launch is not None and dash.launch.running():
            dash.launch.terminate()
        dash.close()


def test_processes_that_fail_before_the_run_begins_leave_a_failed_summary_saying_why(
        tiny_model_dir, tmp_path):
    folder = data_folder(tmp_path)
    path = write_config(folder, tiny_model_dir)
    (folder / "orders.jsonl").write_text('{"messages": [}\n')  # a broken data file
    done = workbench("train", str(path), "--nproc", "2")
    assert done.returncode == 1
    run_dir = only_run(folder / "runs")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "orders.jsonl" in summary["error"]
    assert summary["log"] == str(run_dir / "launch.log")


def test_fsdp_on_a_machine_without_gpus_is_refused_instead_of_running_as_ddp(tiny_model_dir,
                                                                           tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA GPUs: FSDP2 can run here")
    folder = data_folder(tmp_path)
    done = workbench("train", str(write_config(folder, tiny_model_dir)), "--nproc", "2", "--set",
                     "distributed.strategy=fsdp")
    assert done.returncode == 1
    summary = json.loads((only_run(folder / "runs") / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["error"] == ("distributed.strategy fsdp shards the model over CUDA GPUs, and "
                                "this machine has none; use distributed.strategy ddp here")


def test_dpo_in_two_processes_equals_one_process_and_grpo_trains_in_two(tiny_model_dir,
                                                                        tmp_path):
    """train.method is the same in several processes: DPO's loss and its metrics (averaged
    over every process's pairs) equal one process of the same steps; GRPO samples in each
    process and trains."""
    from workbench.api import train
    from workbench.config import load_config

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join((REPO / "workbench" / "demo" / "brevity.jsonl").read_text()
                               .splitlines()[:24]) + "\n")
    folder = data_folder(tmp_path / "dpo")
    dpo = [f"data.path={pairs}", "train.method=dpo", "train.max_steps=4"]
    path = write_config(folder, tiny_model_dir)
    done = workbench("train", str(path), "--nproc", "2", *(f"--set={item}" for item in dpo))
    assert done.returncode == 0, done.stdout + done.stderr
    single = train(load_config(path, dpo + ["train.grad_accum=2", "output.name=single"]),
                   quiet=True)
    two, one = step_rows(only_run(folder / "runs", "spread")), step_rows(single.run_dir)
    assert sorted(two) == [1, 2, 3, 4]
    for step in two:
        for name in ("loss", "reward_accuracy", "reward_margin", "logp_chosen", "logp_rejected"):
            assert two[step][name] == pytest.approx(one[step][name], abs=1e-4), (step, name)
    assert two[4]["reward_accuracy"] == 1.0

    folder = data_folder(tmp_path / "grpo")
    done = workbench("train", str(write_config(folder, tiny_model_dir)), "--nproc", "2",
                     "--set=train.method=grpo", "--set=train.batch_size=4",
                     "--set=train.max_steps=3", "--set=grpo.rewards=[max_words:6]",
                     "--set=grpo.max_completion_length=12", "--set=train.learning_rate=0.01")
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = only_run(folder / "runs")
    rows = step_rows(run_dir)
    assert sorted(rows) == [1, 2, 3] and all("reward/max_words:6" in row for row in rows.values())
    assert json.loads((run_dir / "summary.json").read_text())["world_size"] == 2
    rollouts = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    assert {row["step"] for row in rollouts} == {1, 2, 3}


def test_a_run_folder_given_to_a_new_run_must_not_hold_one_already(two_runs):
    from workbench.api import train
    from workbench.config import load_config
    from workbench.errors import RunError

    spread, _, _ = two_runs
    before = (spread / "metrics.jsonl").read_text()
    config = load_config(spread / "config.yaml", ["distributed.nproc=1"])
    with pytest.raises(RunError, match=f"{spread} already holds a run; `workbench train "
                       f"--resume {spread}` continues it"):
        train(config, quiet=True, run_dir=spread)
    assert (spread / "metrics.jsonl").read_text() == before
