"""Start a run in several processes with `accelerate launch` (torchrun under it), never a
launcher of our own, and follow it through its log file.

    launch = launch_new_run(config, source_args=[])   # the run folder exists at once
    code = launch.follow(print)                        # the CLI: the log, until the end

The launched processes run `python -m workbench train ...` themselves, see WORLD_SIZE
and LOCAL_RANK, and train (distributed.py). Their output goes to `launch.log` in the run
folder, never to a pipe nobody reads (a full pipe blocks a run), so a dashboard or a
terminal can follow it, and it is still there after the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from workbench.engine.distributed import expected_world_size
from workbench.engine.rundir import CONFIG, SUMMARY, RunDir, read_new_lines
from workbench.errors import RunError

LAUNCH_LOG = "launch.log"


@dataclass(frozen=True)
class Nodes:
    """Where this machine sits in a run over several machines (torchrun's --node-rank,
    --master-addr, --master-port); one machine needs none of it."""

    rank: int = 0
    main_address: str | None = None
    main_port: int | None = None


def accelerate_command(settings, worker_args: list[str], nodes: Nodes = Nodes()) -> list[str]:
    """`accelerate launch` with the config's process count and strategy, running
    `python -m workbench <worker_args>` in every process."""
    command = [sys.executable, "-m", "accelerate.commands.launch",
               "--num_processes", str(expected_world_size(settings)),
               "--num_machines", str(settings.nnodes), "--mixed_precision", "no",
               "--dynamo_backend", "no"]
    if settings.nnodes > 1:
        if not nodes.main_address:
            raise RunError(f"distributed.nnodes is {settings.nnodes}: give every machine "
                           "--node-rank and --main-address (the address of node 0)")
        command += ["--machine_rank", str(nodes.rank), "--main_process_ip", nodes.main_address,
                    "--main_process_port", str(nodes.main_port or 29500)]
    if settings.config_file and settings.strategy != "deepspeed":
        command += ["--config_file", require_file(settings.config_file)]
    if settings.strategy == "ddp":
        # accelerate's name for DDP; on a machine without GPUs the processes use gloo
        command += ["--multi_gpu"]
    elif settings.strategy == "fsdp":
        command += ["--use_fsdp", "--fsdp_version", "2",
                    "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
                    "--fsdp_state_dict_type", "FULL_STATE_DICT"]
    else:
        require_deepspeed()
        command += ["--use_deepspeed", "--deepspeed_config_file",
                    require_file(settings.config_file)]
    return command + ["-m", "workbench", *worker_args]


def require_file(path: str) -> str:
    if not Path(path).is_file():
        raise RunError(f"distributed.config_file {path} does not exist; give the path of an "
                       "accelerate config (`accelerate config --config_file PATH` writes one) "
                       "or a DeepSpeed JSON")
    return str(Path(path).resolve())


def require_deepspeed() -> None:
    from importlib.util import find_spec

    if find_spec("deepspeed") is None:
        raise RunError("distributed.strategy deepspeed needs DeepSpeed: pip install deepspeed "
                       "(on a machine with CUDA); or use strategy fsdp, which needs nothing more")


@dataclass
class Launch:
    """A run started in other processes: its folder (None on a machine other than node 0,
    which only hosts processes), its log and the launcher's process."""

    process: subprocess.Popen
    log: Path
    run_dir: Path | None
    _offset: int = field(default=0, repr=False)

    def new_output(self) -> list[str]:
        lines, self._offset = read_new_lines(self.log, self._offset)
        return lines

    def running(self) -> bool:
        return self.process.poll() is None

    def follow(self, write=print, poll_seconds: float = 0.5) -> int:
        """Write the log's lines as they come until the processes end; returns their exit
        code. A first Ctrl-C asks the run to stop at its next step (through its folder,
        so every process saves and stops together); a second ends them now."""
        interrupts = 0
        while True:
            try:
                for line in self.new_output():
                    write(line)
                if not self.running():
                    for line in self.new_output():
                        write(line)
                    return self.finish()
                time.sleep(poll_seconds)
            except KeyboardInterrupt:
                interrupts += 1
                if interrupts == 1 and self.ask_to_stop():
                    write("stopping after this step (checkpoint and adapter will be saved); "
                          "press Ctrl-C again to end the processes now")
                else:
                    self.terminate()

    def finish(self) -> int:
        """Once the processes have ended: a run folder they left without a summary (they
        failed before the run began: a bad data file, a model that would not load) gets
        a failed one naming the error from the log. Returns their exit code."""
        code = self.process.wait()
        if self.run_dir is not None:
            folder = RunDir(self.run_dir)
            if not folder.summary():
                folder.write_json(SUMMARY, {
                    "status": "failed", "ended": True, "step": 0, "run_dir": str(folder.path),
                    "error": last_error(self.log), "log": str(self.log)})
        return code

    def ask_to_stop(self) -> bool:
        from workbench.engine.steering import send_request

        if self.run_dir is None:
            return False
        try:
            send_request(self.run_dir, "stop")
        except RunError:  # not running yet (still loading): end the processes instead
            return False
        return True

    def terminate(self) -> None:
        if self.running():
            os.killpg(self.process.pid, signal.SIGTERM)


def last_error(log: Path) -> str:
    """The `error: ...` line the processes printed last, else the log's last lines."""
    lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
             if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    if starts:  # with the indented lines that go on with it (each problem of a data file)
        end = starts[-1] + 1
        while end < len(lines) and lines[end].startswith((" ", "\t")):
            end += 1
        return "\n".join(lines[starts[-1]:end])[len("error: "):]
    return f"the processes ended before the run began; the end of {log}:\n" + \
        "\n".join(lines[-8:])


def start_launch(settings, worker_args: list[str], run_dir: Path | None, nodes: Nodes = Nodes(),
                 log: Path | None = None) -> Launch:
    """Start `accelerate launch` in its own session (so an interrupt in a notebook or a
    terminal reaches the run only through its folder), its output appended to `log`
    (default: launch.log in `run_dir`)."""
    command = accelerate_command(settings, worker_args, nodes)
    log = log or RunDir(run_dir).file(LAUNCH_LOG)
    with open(log, "ab") as handle:
        handle.write(f"$ {' '.join(command)}\n".encode())
        handle.flush()
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return Launch(process, log, run_dir)


def launch_new_run(config, source_args: list[str], nodes: Nodes = Nodes(),
                   quiet: bool = False) -> Launch:
    """Create the run folder (on node 0), write its config, and start its processes there.
    `source_args`: the config file and --set options as given, which a machine other
    than node 0 passes on (its processes learn the folder from node 0's)."""
    from workbench.engine.run import library_versions

    quiet_args = ["--quiet"] if quiet else []
    if nodes.rank > 0:
        return start_launch(config.distributed, ["train", *source_args, *quiet_args], None,
                            nodes, log=Path(f"{LAUNCH_LOG}.node{nodes.rank}"))
    folder = RunDir.create(config.output.runs_dir, config.output.name)
    folder.write_config(config, library_versions())  # first, so even a failed launch has it
    worker = ["train", str(folder.file(CONFIG)), "--run-dir", str(folder.path), *quiet_args]
    return start_launch(config.distributed, worker, folder.path, nodes)


def launch_resume(run_dir: Path, settings, nproc: int | None, nodes: Nodes = Nodes(),
                  quiet: bool = False) -> Launch:
    """Start the processes that resume `run_dir` (in `nproc` per machine, if given)."""
    worker = ["train", "--resume", str(run_dir)] + (["--nproc", str(nproc)] if nproc else []) \
        + (["--quiet"] if quiet else [])
    main = nodes.rank == 0
    return start_launch(settings, worker, run_dir if main else None, nodes,
                        log=None if main else Path(f"{LAUNCH_LOG}.node{nodes.rank}"))
