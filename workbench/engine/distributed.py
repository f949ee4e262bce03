"""One run in several processes: who this process is, the check that it was launched as
the config asks, and the few collectives the engine needs besides Trainer's own.

The workbench never starts these processes itself: `accelerate launch` (torchrun under
it, or a cluster scheduler's srun) does, and sets WORLD_SIZE, RANK and LOCAL_RANK
(launch.py builds that command). Trainer then owns the distribution (DDP, FSDP2 or
DeepSpeed); this module owns what Trainer does not: the main process (rank 0) writes
the run folder, every other process only trains, and they agree after each optimizer
step on stop, pause and save, so all of them stop, pause and resume together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from workbench.errors import RunError

LAUNCHER_VARIABLES = ("LOCAL_RANK", "WORLD_SIZE")  # set by torchrun (accelerate launch too)


@dataclass(frozen=True)
class Processes:
    """This process's place in the run: one process (world_size 1) unless launched."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    launched: bool = False  # started by torchrun, accelerate launch or srun + torchrun

    @classmethod
    def from_environment(cls, env=None) -> "Processes":
        env = os.environ if env is None else env
        if not all(name in env for name in LAUNCHER_VARIABLES):
            return cls()
        return cls(world_size=int(env["WORLD_SIZE"]), rank=int(env.get("RANK", 0)),
                   local_rank=int(env["LOCAL_RANK"]), launched=True)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def several(self) -> bool:
        return self.world_size > 1

    def describe(self, strategy: str) -> dict:
        return {"world_size": self.world_size, "strategy": strategy if self.several else None,
                "launched": self.launched}


def expected_world_size(settings) -> int:
    return settings.nproc * settings.nnodes


def check_world_size(settings, processes: Processes) -> None:
    """Fail at once, before anything loads, when the processes running are not the ones
    the config asks for: a run must never go on silently in one process."""
    expected = expected_world_size(settings)
    if processes.world_size == expected:
        return
    asked = f"distributed.nproc {settings.nproc}" + (
        f" x distributed.nnodes {settings.nnodes}" if settings.nnodes > 1 else "")
    if not processes.launched:
        raise RunError(
            f"this run asks for {expected} processes ({asked}) but runs in one; start it with "
            f"`workbench train CONFIG`, which launches {expected} with accelerate, or set "
            "distributed.nproc: 1 to train in this process")
    raise RunError(
        f"this run asks for {expected} processes ({asked}) but was launched with "
        f"{processes.world_size} (WORLD_SIZE={processes.world_size}); launch it with "
        f"--num_processes {expected} (torchrun: --nproc-per-node {settings.nproc}"
        f"{f' --nnodes {settings.nnodes}' if settings.nnodes > 1 else ''}), or let "
        "`workbench train CONFIG` launch it")


def start_process_group(processes: Processes) -> None:
    """Join the other processes now (gloo on a CPU, nccl on GPUs), before the run folder
    is chosen: the main process creates it and tells the others where it is. Trainer
    later finds this group and uses it."""
    if not processes.several:
        return
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    if state.device.type == "cpu":
        # accelerate names the CPU "cpu:0", which torch.load cannot map a checkpoint to
        # (Trainer loads the optimizer there on resume); the plain "cpu" is the same place.
        state.device = torch.device("cpu")


def share_from_main(value, processes: Processes):
    """The main process's `value`, in every process."""
    if not processes.several:
        return value
    import torch.distributed as dist

    box = [value if processes.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wait_for_all(processes: Processes) -> None:
    if processes.several:
        import torch.distributed as dist

        dist.barrier()


def agree_on_requests(control, processes: Processes) -> None:
    """Make every process's `control` say what the main process's says: pause, resume and
    save are asked of the main process only (the run folder and the dashboard talk to
    it), while a stop in any process (Ctrl-C reaches them all) stops every one. Called
    by all processes at the same points, so it is also where they wait for each other."""
    if not processes.several:
        return
    import torch
    import torch.distributed as dist

    main = processes.is_main
    flags = torch.tensor([int(control.stop_requested),
                          int(main and control.pause_requested),
                          int(main and control.take_save_request())], dtype=torch.int32)
    if dist.get_backend() == "nccl":
        flags = flags.cuda()
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    stop, pause, save = (bool(v) for v in flags.tolist())
    if stop:
        control.stop()
    elif pause:
        control.pause()
    else:
        control.resume()
    if save:
        control.save_now()


def grad_accum_on_resume(previous: dict, settings, grad_accum: int) -> tuple[int, str | None]:
    """The grad_accum that keeps a resumed run's optimizer steps as large as before when it
    resumes in another number of processes (`previous`: environment.json's `distributed`
    of the session that wrote the checkpoint). Returns it and a note, or raises."""
    before_world = int(previous.get("world_size") or 1)
    before_accum = int(previous.get("grad_accum") or grad_accum)
    now_world = expected_world_size(settings)
    passes = before_world * before_accum  # forward passes of one optimizer step, all processes
    if passes % now_world:
        fits = sorted(n for n in range(1, passes + 1) if passes % n == 0)
        raise RunError(
            f"this run's checkpoint was trained in {before_world} process(es) with "
            f"train.grad_accum {before_accum}: {passes} passes of train.batch_size per step, "
            f"which {now_world} processes cannot share evenly; resume it in "
            f"{' or '.join(map(str, fits))} processes (--nproc)")
    accum = passes // now_world
    if now_world == before_world:
        return accum, None
    return accum, (f"resumed in {now_world} process(es) instead of {before_world}: "
                   f"train.grad_accum {accum} (was {before_accum}) keeps the size and the data "
                   "order of every optimizer step")


# What accelerate calls a process group running each strategy (DistributedType names).
ACCELERATE_TYPES = {"fsdp": "FSDP", "deepspeed": "DEEPSPEED"}


def check_strategy(settings, processes: Processes, accelerator=None) -> None:
    """FSDP2 and DeepSpeed shard over CUDA GPUs only; accelerate quietly runs such a launch
    on CPUs as plain data parallel, so refuse it before anything loads, and once Trainer
    has set up its Accelerator, check that the strategy asked for is the one running."""
    wanted = ACCELERATE_TYPES.get(settings.strategy)
    if not processes.several or wanted is None:
        return
    import torch

    if not torch.cuda.is_available():
        raise RunError(f"distributed.strategy {settings.strategy} shards the model over CUDA "
                       "GPUs, and this machine has none; use distributed.strategy ddp here")
    if accelerator is not None and accelerator.distributed_type.name != wanted:
        raise RunError(f"distributed.strategy {settings.strategy} did not take effect: "
                       f"accelerate runs these processes as {accelerator.distributed_type.name}; "
                       "launch them with `workbench train` (or accelerate launch with the "
                       f"{settings.strategy} options)")
