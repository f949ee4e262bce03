"""transformers.Trainer with a loss that only computes logits where labels are trained.

A causal LM's full-vocabulary logits (49k wide for the demo model) are most of
the activation memory on CPU. Only positions whose next token is trained need
them, so the decoder's hidden states are gathered at those positions and sent
through the output head in chunks, each recomputed in backward instead of kept.
Token counting stays on the device and is read only when a log line is written.

Every use of Trainer's private methods is in this module, behind named methods
(`save_checkpoint_now`, `restore_checkpoint`, the staged `_save_checkpoint`); they were
read from transformers 5.17, the top of the supported range (pyproject.toml), and the
engine's tests exercise each of them (pause-and-save, resume at the last step, a crash
mid-save).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from transformers import Trainer
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from workbench.data.encoding import IGNORE
from workbench.engine.rundir import prune_checkpoints, replace_folder

HEAD_CHUNK_ROWS = 1024
STAGING = ".saving"  # checkpoints are written here, then renamed into place


def head_chunks(function, head, hidden, targets, *args) -> list:
    """`function(head, hidden_rows, target_rows, *args)` over chunks of HEAD_CHUNK_ROWS rows:
    only the chunk's vocabulary logits exist at a time, and with gradients each chunk is
    recomputed in backward instead of kept (the selective loss, DPO and GRPO use this)."""
    import torch
    from torch.utils.checkpoint import checkpoint

    parts = []
    for start in range(0, targets.numel(), HEAD_CHUNK_ROWS):
        rows = slice(start, start + HEAD_CHUNK_ROWS)
        if torch.is_grad_enabled() and targets.numel() > HEAD_CHUNK_ROWS:
            parts.append(checkpoint(function, head, hidden[rows], targets[rows], *args,
                                    use_reentrant=False))
        else:
            parts.append(function(head, hidden[rows], targets[rows], *args))
    return parts


def token_logps(head, hidden, targets, temperature: float = 1.0):
    """log p(target) per row, from the logits divided by `temperature`, in chunks."""
    import torch

    parts = head_chunks(_token_logps, head, hidden, targets, temperature)
    return torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)


def _token_logps(head, hidden, targets, temperature: float):
    import torch

    logits = head(hidden).float() / temperature
    return torch.log_softmax(logits, dim=-1).gather(1, targets.unsqueeze(1)).squeeze(1)


def decoder_states(model, **inputs):
    """The decoder's last hidden states, from a forward through `model` as given: under DDP
    that is its wrapper, which syncs gradients only for a forward through it. Meanwhile
    the output head passes its input through, so no vocabulary logits are made (callers
    apply the head in chunks, where tokens train)."""
    head = output_head(model)
    head.forward = lambda states: states
    try:
        return model(**inputs, use_cache=False).logits
    finally:
        del head.forward


def output_head(model):
    """The output embeddings (LM head) of a model, inside a DDP, FSDP or DeepSpeed wrapper."""
    from accelerate.utils import extract_model_from_parallel

    return extract_model_from_parallel(model).get_output_embeddings()


def selective_head_loss(model, inputs, num_items_in_batch=None):
    """Mean cross-entropy over trained tokens, computing logits only at those positions."""
    import torch

    hidden = decoder_states(model, input_ids=inputs["input_ids"],
                            attention_mask=inputs["attention_mask"],
                            position_ids=inputs.get("position_ids"))
    targets = inputs["labels"][:, 1:]
    keep = targets != IGNORE
    head = output_head(model)
    total = sum(head_chunks(_head_loss, head, hidden[:, :-1][keep], targets[keep]),
                hidden.new_zeros((), dtype=torch.float32))
    count = num_items_in_batch if num_items_in_batch is not None else keep.sum()
    return total / torch.clamp(torch.as_tensor(count, device=total.device), min=1)


def _head_loss(head, hidden, targets):
    import torch

    logits = head(hidden).float()
    return torch.nn.functional.cross_entropy(logits, targets, reduction="sum")


class WorkbenchTrainer(Trainer):
    """Trainer with the selective loss (or the model's own, `model_loss=True`), the
    preference losses (`method` dpo or kto, with the run's `preference` settings), staged
    checkpoint writes, and a count of the tokens trained."""

    def __init__(self, *args, model_loss: bool = False, method: str = "sft", preference=None,
                 rollouts=None, **kwargs):
        """`rollouts` (grpo): a RolloutOptions with the settings, rewards and prompting."""
        super().__init__(*args, **kwargs)
        self.method, self.preference, self.rollouts = method, preference, rollouts
        self.last_rollout = None  # grpo: the latest sampled answers, for the samples grid
        self._metrics: dict[str, dict[str, list]] = {"train": {}, "eval": {}}
        for noisy in (PrinterCallback, ProgressCallback):  # our sinks report progress instead
            self.remove_callback(noisy)
        self._tokens_pending = None
        self._staging_root = None  # set while a checkpoint is being written
        # model_loss: Unsloth's models compute their loss with a fused cross-entropy that
        # builds the vocabulary logits in chunks sized to the free VRAM (the memory the
        # selective loss saves on CPU), and Unsloth's patched compute_loss attaches the fp16
        # grad scaler to that loss and passes num_items_in_batch. The selective loss calls
        # the decoder and the head separately and would go around all of it, so those
        # models keep their own loss.
        self.selective_head = not model_loss and uses_standard_head(self.model)
        if method != "sft":
            # A preference loss is a mean over the batch's pairs: Trainer divides it by the
            # accumulation steps itself.
            self.model_accepts_loss_kwargs = False
        elif self.selective_head:
            # Our loss divides by the trained-token count of the whole accumulated batch,
            # so Trainer must pass that count and not divide by grad_accum again.
            self.model_accepts_loss_kwargs = True

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.method == "grpo":
            loss = self._grpo_loss(model, inputs)
            return (loss, {}) if return_outputs else loss
        real_tokens = inputs.pop("real_tokens", None)  # packed rows: mask is 4D
        if model.training:
            seen = real_tokens.sum() if real_tokens is not None \
                else inputs["attention_mask"].sum()
            self._tokens_pending = seen if self._tokens_pending is None \
                else self._tokens_pending + seen
        if self.method != "sft":
            loss = self._preference_loss(model, inputs)
        elif not self.selective_head:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        else:
            loss = selective_head_loss(model, inputs, num_items_in_batch)
            if num_items_in_batch is not None and self.args.average_tokens_across_devices:
                # As Trainer.compute_loss does: the count is of every process's tokens, and
                # DDP averages the gradients over the processes.
                loss = loss * self.accelerator.num_processes
        return (loss, {}) if return_outputs else loss

    def _preference_loss(self, model, inputs):
        from workbench.engine.preference import dpo_loss, kto_loss, sequence_logps

        settings = self.preference
        logps, lengths = sequence_logps(model, inputs)
        if self.method == "dpo":
            loss, metrics = dpo_loss(logps, inputs["ref_logps"], lengths, settings.beta,
                                     settings.loss, settings.sft_weight)
        else:
            loss, metrics = kto_loss(logps, inputs["ref_logps"], inputs["desirable"],
                                     settings.beta, settings.desirable_weight,
                                     settings.undesirable_weight)
        bucket = self._metrics["train" if model.training else "eval"]
        for name, value in metrics.items():  # tensors: read (one sync) only when logged
            if value is not None:
                bucket.setdefault(name, []).append(value.detach())
        return loss

    def _grpo_loss(self, model, inputs):
        import torch

        from workbench.engine.grpo import grpo_loss, rollout_metrics, sample_rollout, token_logps

        options = self.rollouts
        settings = options.settings
        # Sampling and the reference pass take no gradients, so they go around a DDP
        # wrapper; the pass that trains goes through it.
        plain = self.accelerator.unwrap_model(model)
        rollout = sample_rollout(plain, self.processing_class, inputs, settings, options.rewards,
                                 chat=options.chat, system_prompt=options.system_prompt,
                                 max_prompt_length=options.max_prompt_length)
        logps = token_logps(model, rollout, settings.temperature)
        reference = None
        if settings.beta:
            with torch.no_grad(), plain.disable_adapter():
                reference = token_logps(plain, rollout, settings.temperature)
        loss, kl = grpo_loss(logps, rollout, settings, reference)
        seen = rollout.attention_mask.sum()
        self._tokens_pending = seen if self._tokens_pending is None else self._tokens_pending + seen
        metrics = rollout_metrics(rollout)
        if kl is not None:
            metrics["kl"] = kl
        bucket = self._metrics["train" if model.training else "eval"]
        for name, value in metrics.items():
            bucket.setdefault(name, []).append(value.detach() if hasattr(value, "detach")
                                               else value)
        self.last_rollout = rollout
        return loss

    def log(self, logs: dict, start_time: float | None = None) -> None:
        """Add the preference metrics, averaged since the last log (`eval_` prefixed when
        evaluating), to what Trainer logs."""
        mode = "eval" if any(key.startswith("eval_") for key in logs) else "train"
        bucket = self._metrics[mode]
        averaged = {name: float(sum(float(v) for v in values) / len(values))
                    for name, values in bucket.items() if values}
        if self.args.world_size > 1 and averaged:  # every process logs here, at once
            averaged = self._mean_over_processes(averaged)
        logs.update({(f"eval_{name}" if mode == "eval" else name): value
                     for name, value in averaged.items()})
        bucket.clear()
        super().log(logs, start_time)

    def _mean_over_processes(self, values: dict) -> dict:
        """The method's metrics averaged over every process's batches, as its loss is."""
        import torch
        import torch.distributed as dist

        names = sorted(values)
        total = torch.tensor([values[name] for name in names], dtype=torch.float64,
                             device=self.args.device)
        dist.all_reduce(total)
        return dict(zip(names, (total / self.args.world_size).tolist()))

    def take_tokens_seen(self) -> int:
        """Non-padding tokens trained since the last call, by all processes (one host sync,
        at log time, where every process logs)."""
        import torch

        pending, self._tokens_pending = self._tokens_pending, None
        if pending is None:
            pending = torch.zeros((), dtype=torch.long, device=self.args.device)
        if self.args.world_size > 1:
            import torch.distributed as dist

            pending = pending.clone()
            dist.all_reduce(pending)
        return int(pending.item())

    # -- checkpoints (Trainer's private API, transformers 5.17) --------------------------

    def save_checkpoint_now(self) -> None:
        """Write the checkpoint Trainer would write at the end of this step (model,
        optimizer, scheduler, RNG and state), e.g. while the run is paused."""
        self._save_checkpoint(self.model, trial=None)

    def restore_checkpoint(self, checkpoint: Path, state) -> None:
        """Load a checkpoint's weights and take its TrainerState, as `train(resume_from_
        checkpoint=...)` does before its first step, without taking a step."""
        self._load_from_checkpoint(str(checkpoint))
        self.state = state

    def _get_output_dir(self, trial) -> str:
        return self._staging_root or super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        """Trainer writes a checkpoint file by file; a crash mid-save would leave a
        checkpoint-N folder that looks resumable but is not. So it writes into a staging
        folder, and the finished folder is renamed into place."""
        root = Path(super()._get_output_dir(trial))
        staging = root / STAGING
        # With several processes each writes its part (the main one the adapter, optimizer
        # and state; every one its RNG state), so only the main one clears and renames,
        # and all wait for each other around it.
        main = self.args.should_save
        if main:
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self._staging_root = str(staging)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging_root = None
        self.accelerator.wait_for_everyone()
        if main:
            name = f"checkpoint-{self.state.global_step}"
            replace_folder(staging / name, root / name)
            shutil.rmtree(staging, ignore_errors=True)
            prune_checkpoints(root, self.args.save_total_limit or 0)
        self.accelerator.wait_for_everyone()  # in place before any process reads it


@dataclass(frozen=True)
class RolloutOptions:
    """What a grpo step needs to sample and reward answers."""

    settings: object  # the run's GrpoSettings
    rewards: list
    chat: bool = True
    system_prompt: str | None = None
    max_prompt_length: int = 512


def uses_standard_head(model) -> bool:
    """False for heads that scale or soft-cap logits: those use the model's own loss."""
    config = model.config
    return not any(getattr(config, name, None) for name in
                   ("final_logit_softcapping", "logit_scale", "output_multiplier_scale"))
