"""A run: setup -> train -> save -> cleanup, reporting through events.

    run = Run(config, sinks=[print])
    result = run.execute()          # blocks; call from a worker thread for a live UI

Every run ends with exactly one RunEnded event and a summary.json whose status is
finished, stopped (a Control.stop() request) or failed (the error is recorded,
earlier checkpoints and metrics are kept).
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from workbench.config import RunConfig
from workbench.data.formats import is_chat_format
from workbench.data.preference import check_method
from workbench.data.splits import encode_splits, load_splits
from workbench.engine.distributed import (Processes, check_strategy, check_world_size,
                                          grad_accum_on_resume, share_from_main,
                                          start_process_group, wait_for_all)
from workbench.engine.evaluation import Evaluator
from workbench.engine.loaded import LoadedRun
from workbench.engine.recorder import RunRecorder
from workbench.engine.rundir import (ENVIRONMENT, METRICS, REFERENCE, RunDir,
                                     checkpoint_step, replace_folder, run_status)
from workbench.engine.steering import RequestReader
from workbench.errors import RunError
from workbench.events import Control, RunEnded, fan_out


@dataclass
class RunResult:
    status: str
    run_dir: Path
    summary: dict

    def __repr__(self) -> str:  # the summary is long; notebooks echo the result of a cell
        return f"RunResult(status={self.status!r}, step={self.summary.get('step')}, " \
               f"run_dir={str(self.run_dir)!r})"


class Run:
    def __init__(self, config: RunConfig, sinks=(), control: Control | None = None,
                 resume_dir: str | Path | None = None, scorers=(), rewards=(),
                 run_dir: str | Path | None = None):
        """`scorers` are Python functions f(prompt, answer, reference) -> 0..1 scored beside
        the config's eval.scorers (a notebook's own; the config can only name importable
        ones). `run_dir`: a new, empty folder to write into instead of one named by
        output.name (the launcher makes it, so its log can be there from the start)."""
        self.config = config.validate()
        self.control = control or Control()
        self.processes = Processes.from_environment()
        # Only the main process reports: the others' events would repeat its own.
        self.sinks = fan_out(list(sinks) if self.processes.is_main else [])
        self.given_dir = Path(run_dir) if run_dir else None
        self.recorder: RunRecorder | None = None  # writes the run folder, once it exists
        self.resume_dir = Path(resume_dir) if resume_dir else None
        self.run_dir: RunDir | None = None
        self.bundle = None  # the loaded model once setup has run
        self.chat = True  # whether prompts get the chat template: set from the data format
        self.loaded: LoadedRun | None = None  # the live model, shaped like a finished run's
        self.callback = None
        self.steering = None  # reads requests sent to the run folder, once it exists
        self.trainer = None
        self.data_stats: dict = {}
        self.backend = None  # chosen before anything loads, so a missing GPU fails at once
        self.backend_reason = ""
        self.start = None  # where a stacked run starts (lora.start_from), once resolved
        self.evaluator = None  # held-out scores and the forgetting check (eval section)
        self.extra_scorers = list(scorers)  # callables from a notebook, beside eval.scorers
        self.extra_rewards = list(rewards)  # likewise, beside grpo.rewards
        self.reward_check = None  # grpo: the reward test bench's report, before training
        self.resume_note = None  # resumed in another number of processes: what changed

    @classmethod
    def resume(cls, run_dir: str | Path, sinks=(), control: Control | None = None,
               scorers=(), nproc: int | None = None) -> "Run":
        """A run that continues `run_dir` from its last checkpoint; `nproc`: in this many
        processes per machine instead of the number it was started with."""
        folder = RunDir.open(run_dir)
        summary = folder.summary()
        if run_status(summary) == "running":  # two processes must never write one folder
            raise RunError(f"{run_dir} is still running (pid {summary.get('pid')} on "
                           f"{summary.get('host')}); stop it first: workbench stop {run_dir} "
                           "--wait 120")
        if folder.last_checkpoint() is None:
            raise RunError(f"{run_dir} has no checkpoint to resume from; checkpoints are saved "
                           "every train.save_every steps")
        config = folder.read_config()
        if nproc is not None:
            config = config.with_overrides([f"distributed.nproc={nproc}"])
        previous = folder.read_json(ENVIRONMENT).get("distributed") or {}
        accum, note = grad_accum_on_resume(previous, config.distributed, config.train.grad_accum)
        run = cls(config.with_overrides([f"train.grad_accum={accum}"]), sinks, control,
                  resume_dir=run_dir, scorers=scorers)
        run.resume_note = note
        return run

    def emit(self, event) -> None:
        """The run folder first (a failed write fails the run), then every other sink."""
        if self.recorder is not None:
            self.recorder(event)
        self.sinks(event)

    def execute(self) -> RunResult:
        """Run to the end and return its status and summary; errors are recorded, then raised."""
        from workbench.backends import select_backend
        from workbench.engine.start_from import resolve_start

        started = time.time()
        # Launched as many processes as the config asks for, or fail now: never a silent
        # single-process run.
        check_world_size(self.config.distributed, self.processes)
        check_strategy(self.config.distributed, self.processes)
        # Then: a backend that cannot run here fails before data or model load, and
        # Unsloth (when chosen) is imported before anything imports transformers.
        self.backend, self.backend_reason = select_backend(self.config)
        start_process_group(self.processes)
        splits = load_splits(self.config.data, self.config.train.seed)  # bad data fails here
        check_method(self.config.train.method, splits.format, splits.train,
                     self.config.data.path or self.config.data.train_path)
        # A scorer that raises or returns a non-number fails here too, before the model loads.
        self.evaluator = Evaluator.prepare(self.config, splits.eval, self.extra_scorers)
        versions = library_versions()
        if not self.resume_dir:
            self.start = resolve_start(self.config)  # a wrong start_from fails here too
        if self.processes.is_main:  # the one process that writes the run folder
            session = self._open_folder(versions)
            self.recorder = RunRecorder(self.run_dir)
            self.steering = RequestReader(self.run_dir, session)  # `workbench stop RUN_DIR`
        self.run_dir = RunDir(share_from_main(str(self.run_dir.path) if self.run_dir else None,
                                              self.processes))
        wait_for_all(self.processes)
        if not self.processes.is_main:  # it only trains; the main process reports failures
            self._setup(splits, versions)
            status = self._train()
            self._finish(status, started)
            return RunResult(status, self.run_dir.path, {})
        try:
            self._setup(splits, versions)
            status = self._train()
            summary = self._finish(status, started)
            ended = RunEnded(status=status, step=summary["step"], run_dir=str(self.run_dir.path),
                             summary=summary)
            self.recorder(ended)  # summary.json; inside the try, so a full disk is explained
        except BaseException as exc:  # KeyboardInterrupt too: the folder must say what happened
            explained = self._explain_resource_fault(exc)
            summary = self._failure_summary(explained or exc, started)
            self.emit(RunEnded(status="failed", step=summary.get("step", 0),
                               run_dir=str(self.run_dir.path), summary=summary,
                               error=summary["error"]))
            if explained is not None:
                raise explained from exc
            raise
        self.sinks(ended)
        return RunResult(status, self.run_dir.path, summary)

    def _open_folder(self, versions: dict) -> str:
        """Create (or reopen, to resume) the run folder and say that it runs; returns the
        session token that requests to this process must carry."""
        from workbench.engine.start_from import record_start

        if self.resume_dir:
            self.run_dir = RunDir.open(self.resume_dir)
            step = checkpoint_step(self.run_dir.last_checkpoint())
            # The rows after the checkpoint go before the folder says it runs again, so a
            # dashboard that attaches now never reads rows about to disappear.
            self.run_dir.truncate_metrics_after(step)
            return self.run_dir.mark_running(step)
        self.run_dir = self._given_folder() if self.given_dir else \
            RunDir.create(self.config.output.runs_dir, self.config.output.name)
        self.run_dir.write_config(self.config, versions)  # first, so even a failed run has it
        session = self.run_dir.mark_running()
        if self.start:
            record_start(self.run_dir, self.start)
        return session

    def _given_folder(self) -> RunDir:
        """`run_dir` as given: new, or what the launcher made (its config and log only)."""
        folder = RunDir(self.given_dir)
        if folder.summary() or folder.file(METRICS).exists():
            raise RunError(f"{folder.path} already holds a run; `workbench train --resume "
                           f"{folder.path}` continues it")
        folder.path.mkdir(parents=True, exist_ok=True)
        return folder

    # -- setup ---------------------------------------------------------------------------

    @property
    def continues_adapter(self) -> bool:
        """Trains an earlier run's adapter further: with it off, the model is not where
        this run starts (with `merge`, or no start_from, it is)."""
        lora = self.config.lora
        return bool(lora.start_from) and lora.start_mode == "continue"

    def _setup(self, splits, versions: dict) -> None:
        self.bundle = self.backend.load(self.config, **self._start_adapters())
        if self.resume_note:
            self.bundle.notes.append(self.resume_note)
        if self.continues_adapter:
            kept = self.bundle.model.peft_config["default"]
            self.bundle.notes.append(
                f"lora.start_mode continue: the earlier adapter trains on with its own settings "
                f"(r={kept.r}, alpha={kept.lora_alpha}); this config's lora.r, alpha, dropout, "
                "target_modules and use_rslora are not used")
        encoded = encode_splits(splits, self.bundle.tokenizer, self.config.data,
                                self.config.train.method, self.config.preference.max_prompt_length)
        self.data_stats = encoded.stats
        self.chat = is_chat_format(splits.format)
        self.loaded = LoadedRun(self.config, self.bundle, self.chat, self.run_dir.path,
                                self.bundle.backend)
        if self.config.train.method in ("dpo", "kto"):
            self._reference(encoded)
        if self.config.train.method == "grpo":
            self._check_rewards(encoded)
        if self.processes.is_main:
            self.run_dir.write_json(ENVIRONMENT, self._environment(versions))
        self.trainer = self._build_trainer(encoded)

    def _reference(self, encoded) -> None:
        """The reference log-probabilities of every preference row: computed now, before the
        first step, from the model as this run found it, and kept in the run folder so a
        resumed run uses the same ones (its model has moved since)."""
        from workbench.engine.preference import attach_reference, reference_logps

        method = self.config.train.method
        saved = self.run_dir.read_json(REFERENCE) if self.resume_dir else {}
        collator = self._collator()
        for split in ("train", "eval"):
            rows = getattr(encoded, split)
            values = saved.get(split)
            if values is None or len(values) != len(rows):
                if self.resume_dir:
                    raise RunError(f"{self.run_dir.path} has no reference log-probabilities "
                                   f"({REFERENCE}) for its {len(rows)} {split} rows, so it "
                                   "cannot be resumed as the same run; train it again")
                values = reference_logps(self.bundle.model, rows, collator,
                                         self.config.train.batch_size)
            attach_reference(rows, values, method)
            saved[split] = values
        if not self.resume_dir and self.processes.is_main:
            self.run_dir.write_json(REFERENCE, saved)

    def _check_rewards(self, encoded) -> None:
        """The reward test bench on the model as it is: a broken or constant reward stops the
        run here, before any training time is spent."""
        from workbench.engine.reward_check import check_rewards, refuse_if_unusable

        self.reward_check = check_rewards(self.bundle.model, self.bundle.tokenizer, encoded.train,
                                          self.config, self.chat, self.extra_rewards,
                                          seed=self.config.train.seed)
        refuse_if_unusable(self.reward_check)

    def _collator(self):
        from workbench.data.encoding import PaddingCollator
        from workbench.data.packing import PackedCollator
        from workbench.data.preference import PairCollator, UnpairedCollator
        from workbench.data.rollouts import PromptCollator

        pad = self.bundle.tokenizer.pad_token_id
        method = self.config.train.method
        if method == "grpo":
            return PromptCollator()
        if method == "dpo":
            return PairCollator(pad)
        if method == "kto":
            return UnpairedCollator(pad)
        return PackedCollator(pad, self.bundle.model.dtype) if self.config.data.packing \
            else PaddingCollator(pad)

    def _start_adapters(self) -> dict:
        """Which saved adapters a stacked run loads: those merged beneath (copied into its
        folder), and in `continue` mode the adapter it trains further, which on resume is
        the one in its last checkpoint."""
        kwargs = {"base_adapters": [str(p) for p in self.run_dir.base_adapter_dirs()]}
        if self.continues_adapter:
            start = self.start.adapter if self.start else self.run_dir.last_checkpoint()
            kwargs["adapter_dir"] = str(start)
        return kwargs

    def _environment(self, versions: dict) -> dict:
        import torch

        bundle = self.bundle
        return {**versions, "python": platform.python_version(), "platform": platform.platform(),
                "device": bundle.device, "gpu": torch.cuda.get_device_name(0)
                if bundle.device == "cuda" else None,
                "gpu_capability": ".".join(map(str, torch.cuda.get_device_capability(0)))
                if bundle.device == "cuda" else None, "cpu_count": os.cpu_count(),
                "torch_threads": torch.get_num_threads(), "dtype": bundle.dtype,
                "backend": bundle.backend, "backend_reason": self.backend_reason,
                "model_source": bundle.source, "seed": self.config.train.seed,
                "trust_remote_code": self.config.model.trust_remote_code,
                "notes": bundle.notes, "data": self.data_stats,
                "start_from": self.start.describe() if self.start else None,
                "distributed": {**self.processes.describe(self.config.distributed.strategy),
                                "grad_accum": self.config.train.grad_accum,
                                "examples_per_step": self.config.train.batch_size
                                * self.config.train.grad_accum * self.processes.world_size},
                "evaluation": self.evaluator.describe() if self.evaluator else None,
                "reward_check": self.reward_check.as_dict() if self.reward_check else None}

    def _build_trainer(self, encoded):
        from workbench.engine.callback import EventCallback
        from workbench.engine.trainer import WorkbenchTrainer

        cfg, bundle = self.config, self.bundle
        self.callback = EventCallback(
            emit=self.emit, control=self.control,
            started={"run_dir": str(self.run_dir.path), "config": cfg.to_dict(),
                     "train_examples": self.data_stats["train"]["examples"],
                     "eval_examples": self.data_stats.get("eval", {}).get("examples", 0),
                     "backend": bundle.backend, "device": bundle.device,
                     "data": self.data_stats},
            sample_every=cfg.sample.every, sampler=self._sample,
            sample_base_first=bool(cfg.sample.prompts) and not self.resume_dir,
            evaluator=self._evaluate if self.evaluator else None,
            evaluate_every=cfg.train.eval_every if cfg.eval.every is None else cfg.eval.every,
            evaluate_base_first=not self.resume_dir,
            evaluate_start_first=not self.resume_dir and self.continues_adapter,
            elapsed_offset=self._elapsed_before_resume() if self.resume_dir else 0.0,
            steering=self.steering, processes=self.processes)
        args = training_arguments(cfg, self.run_dir, bundle, has_eval=bool(encoded.eval))
        trainer = WorkbenchTrainer(model=bundle.model, args=args, train_dataset=encoded.train,
                                   eval_dataset=encoded.eval or None,
                                   data_collator=self._collator(),
                                   processing_class=bundle.tokenizer, callbacks=[self.callback],
                                   model_loss=bundle.model_loss, method=cfg.train.method,
                                   preference=cfg.preference, rollouts=self._rollout_options())
        self.callback.trainer = trainer
        if trainer.args.world_size != self.processes.world_size:  # e.g. no process group
            raise RunError(f"this run was launched as {self.processes.world_size} processes but "
                           f"trains in {trainer.args.world_size}; see the launch log")
        check_strategy(self.config.distributed, self.processes, trainer.accelerator)
        if self.resume_dir:  # the summary covers the whole run, not only this session
            self.callback.restore_history(self.run_dir.metrics())
            base = next((e for e in self.callback.scored if not e.adapter), None)
            if self.evaluator and base is not None:
                self.evaluator.base_general_loss = base.general_loss
        return trainer

    def _rollout_options(self):
        from workbench.engine.trainer import RolloutOptions
        from workbench.evaluation.rewards import resolve_rewards

        if self.config.train.method != "grpo":
            return None
        return RolloutOptions(self.config.grpo, resolve_rewards(self.config.grpo.rewards,
                                                                self.extra_rewards),
                              self.chat, self.config.data.system_prompt,
                              self.config.data.max_length)

    def _elapsed_before_resume(self) -> float:
        """The training seconds recorded up to the checkpoint being resumed (the rows after
        it were dropped when the run started, so it continues one clean curve)."""
        rows = [r for r in self.run_dir.metrics() if "elapsed_seconds" in r]
        return rows[-1]["elapsed_seconds"] if rows else 0.0

    # -- train ---------------------------------------------------------------------------

    def _train(self) -> str:
        checkpoint = self.run_dir.last_checkpoint() if self.resume_dir else None
        done = checkpoint_state(checkpoint) if checkpoint else None
        if done is not None and done.max_steps > 0 and done.global_step >= done.max_steps:
            # Stopped at its last step: every step is trained. Trainer.train would take one
            # more before it checks max_steps, so load the checkpoint the way it would and
            # go straight to the final evaluation and samples.
            self.trainer.restore_checkpoint(checkpoint, done)
            self.callback.on_train_begin(self.trainer.args, done, self.trainer.control)
        else:
            self.trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        step = self.trainer.state.global_step
        if self.control.stop_requested:  # the user asked to stop now, not after more work
            return "stopped"
        if self.trainer.eval_dataset is not None and not self._evaluated_at(step):
            self.trainer.evaluate()
        if self.config.sample.prompts and not (self.config.sample.every and
                                                step % self.config.sample.every == 0):
            self.callback.sample(step)
        if self.evaluator and not self.callback.scored_at(step):
            self.callback.score(step)
        return "stopped" if self.callback.stopped_by_request else "finished"

    def _evaluated_at(self, step: int) -> bool:
        return any(s == step for s, _ in self.callback.eval_losses)

    def _sample(self, base: bool):
        prompts = list(self.config.sample.prompts)
        return prompts, self.loaded.generate(prompts, base=base)

    def _evaluate(self, base: bool) -> dict:
        result = self.evaluator.evaluate(self.loaded, base=base)
        return {"scores": result.scores, "examples": len(result.answers),
                "general_loss": result.general_loss,
                "general_change": None if base else self.evaluator.general_change(
                    result.general_loss),
                "seconds": result.seconds, "tokens_per_second": result.tokens_per_second,
                "answers": tuple(result.answers)}

    # -- save ----------------------------------------------------------------------------

    def _finish(self, status: str, started: float) -> dict:
        if self.processes.several:
            save_adapter_together(self.trainer, self.run_dir.adapter_dir, self.processes)
        else:
            save_adapter(self.bundle.model, self.bundle.tokenizer, self.run_dir.adapter_dir)
        return self._summary(status, started) if self.processes.is_main else {}

    def _summary(self, status: str, started: float, error: str | None = None) -> dict:
        callback, state = self.callback, self.trainer.state if self.trainer else None
        evals = callback.eval_losses if callback else []
        best = min(evals, key=lambda item: item[1]) if evals else None
        summary = {
            "status": status, "step": state.global_step if state else 0,
            "total_steps": state.max_steps if state else None,
            "method": self.config.train.method,
            "final_loss": callback.last_loss if callback else None,
            "final_eval_loss": evals[-1][1] if evals else None,
            "final_perplexity": math.exp(min(evals[-1][1], 50)) if evals else None,
            "best_eval_loss": best[1] if best else None, "best_eval_step": best[0] if best else None,
            "tokens_seen": int(state.num_input_tokens_seen) if state else 0,
            **({"final_metrics": callback.last_metrics,
                "final_eval_metrics": callback.last_eval_metrics}
               if callback and (callback.last_metrics or callback.last_eval_metrics) else {}),
            "elapsed_seconds": round(callback.elapsed(), 2) if callback else None,
            "wall_seconds_this_session": round(time.time() - started, 2),
            "data": self.data_stats, "backend": self.bundle.backend if self.bundle else None,
            "world_size": self.processes.world_size,
            **evaluation_summary(callback.scored if callback else []),
            "adapter": str(self.run_dir.adapter_dir) if status != "failed" else None,
            "run_dir": str(self.run_dir.path), "ended": True,
        }
        if error:
            summary["error"] = error
        return summary

    def _explain_resource_fault(self, exc: BaseException):
        from workbench.engine import faults

        device = self.bundle.device if self.bundle else "machine"
        step = self.trainer.state.global_step if self.trainer else 0
        explained = faults.explain(exc, self.config, self.run_dir.path, step,
                                   self.run_dir.last_checkpoint(), device)
        if explained is not None and device == "cuda":
            import torch

            torch.cuda.empty_cache()  # give the memory back, so the notebook can go on
        return explained

    def _failure_summary(self, exc: BaseException, started: float) -> dict:
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        summary = self._summary("failed", started, error=message)
        summary["traceback"] = traceback.format_exc()
        return summary


def evaluation_summary(scored: list) -> dict:
    """The summary's scores (base and final) and forgetting check, from a run's evaluations."""
    from workbench.evaluation.general import flagged

    if not scored:
        return {}
    base = next((e for e in scored if not e.adapter), None)
    start = next((e for e in scored if e.adapter and e.step == 0), None)  # continued adapters
    final = next((e for e in reversed(scored) if e.adapter), None)
    summary = {"scores": {"base": base.scores if base else None,
                          "final": final.scores if final else None,
                          "final_step": final.step if final else None}}
    if start is not None and start is not final:
        summary["scores"]["start"] = start.scores
    if (base and base.general_loss is not None) or (final and final.general_loss is not None):
        change = final.general_change if final else None
        summary["general_text"] = {"base_loss": base.general_loss if base else None,
                                   "final_loss": final.general_loss if final else None,
                                   "change": change, "flagged": flagged(change)}
    return summary


def training_arguments(cfg: RunConfig, run_dir: RunDir, bundle, has_eval: bool):
    from transformers import TrainingArguments

    train = cfg.train
    evaluate = has_eval and train.eval_every > 0
    # grpo: train.batch_size counts answers; a batch holds its prompts, each answered
    # num_generations times (the config checked that it divides).
    prompts = train.batch_size // cfg.grpo.num_generations if train.method == "grpo" \
        else train.batch_size
    return TrainingArguments(
        output_dir=str(run_dir.checkpoints_dir), per_device_train_batch_size=prompts,
        per_device_eval_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum, learning_rate=train.learning_rate,
        num_train_epochs=train.epochs, max_steps=train.max_steps or -1,
        warmup_steps=train.warmup_steps, lr_scheduler_type=train.scheduler,
        weight_decay=train.weight_decay, max_grad_norm=train.max_grad_norm or None,
        seed=train.seed, data_seed=train.seed, logging_steps=train.log_every,
        logging_first_step=True, eval_strategy="steps" if evaluate else "no",
        eval_steps=train.eval_every if evaluate else None,
        save_strategy="steps" if train.save_every else "no",
        save_steps=train.save_every or 500, save_total_limit=train.keep_checkpoints,
        report_to="none", disable_tqdm=True, log_level="warning",
        use_cpu=bundle.device == "cpu", bf16=bundle.dtype == "bfloat16",
        fp16=bundle.dtype == "float16",
        # Unsloth set up its own (offloading) checkpointing; Trainer's would replace it.
        gradient_checkpointing=train.gradient_checkpointing and not bundle.backend_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        train_sampling_strategy="group_by_length" if cfg.data.group_by_length else "random",
        remove_unused_columns=False, label_names=["labels"], dataloader_num_workers=0,
        optim="adamw_torch",
        # LoRA under DDP: the frozen base has no gradients to wait for (with True, DDP
        # searches for them at every step; with reentrant checkpointing it fails).
        ddp_find_unused_parameters=False,
        # Several processes: keep the group distributed.start_process_group made (and its
        # device), which Trainer would otherwise set up again.
        accelerator_config={"use_configured_state": True} if distributed_run() else None)


def save_adapter_together(trainer, target: Path, processes: Processes) -> None:
    """`save_adapter` for a run in several processes: Trainer gathers the adapter (from the
    shards of FSDP or ZeRO-3) and the main process writes it, then swaps it in."""
    scratch = target.with_name(f".{target.name}.saving")
    if processes.is_main:
        shutil.rmtree(scratch, ignore_errors=True)
    wait_for_all(processes)
    trainer.save_model(str(scratch))
    wait_for_all(processes)
    if processes.is_main:
        (scratch / "training_args.bin").unlink(missing_ok=True)  # not part of an adapter
        replace_folder(scratch, target)
    wait_for_all(processes)


def distributed_run() -> bool:
    return Processes.from_environment().several


def checkpoint_state(path: Path):
    """The TrainerState saved in a checkpoint folder (step, planned steps, token count)."""
    from transformers import TrainerState

    return TrainerState.load_from_json(str(path / "trainer_state.json"))


def save_adapter(model, tokenizer, target: Path) -> None:
    """Write the adapter (PEFT format) and tokenizer under a scratch name, then swap it in."""
    scratch = target.with_name(f".{target.name}.saving")
    shutil.rmtree(scratch, ignore_errors=True)
    model.save_pretrained(str(scratch))
    tokenizer.save_pretrained(str(scratch))
    replace_folder(scratch, target)


def library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    result = {}
    for name in ("workbench", "torch", "transformers", "peft", "accelerate", "datasets"):
        try:
            result[name] = version(name)
        except PackageNotFoundError:
            result[name] = None
    for name in ("unsloth", "unsloth_zoo", "bitsandbytes"):  # optional: listed when installed
        try:
            result[name] = version(name)
        except PackageNotFoundError:
            pass
    return result
