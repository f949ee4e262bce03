"""Preference losses (DPO, IPO, KTO) on log-probabilities computed only where answers are.

    logps = sequence_logps(model, batch)                  # one sum per row of the batch
    loss, metrics = dpo_loss(logps, batch["ref_logps"], beta=0.1)

The formulas are TRL 1.9.2's (`DPOTrainer._compute_loss` with loss_type sigmoid or ipo,
`KTOTrainer` with loss_type kto), and tests/test_preference.py checks them against TRL on
the same batches. What differs is how the log-probabilities are computed: the decoder's
hidden states are gathered at the answer's positions and only those go through the output
head, in chunks (as the SFT loss does), instead of full-vocabulary logits for every token;
and the reference model's log-probabilities are computed once, before training, from the
model as this run found it (`reference_logps`): the base for a fresh adapter or one
stacked with `merge`, the earlier adapter for `lora.start_mode: continue`. So a step costs
the policy's forward and backward only, and no second copy of the model is loaded.
"""

from __future__ import annotations

from workbench.data.encoding import IGNORE


def sequence_logps(model, batch: dict):
    """Per row: the sum of log p(token) over the trained (answer) tokens, and their count."""
    import torch

    from workbench.engine.trainer import decoder_states, output_head, token_logps

    hidden = decoder_states(model, input_ids=batch["input_ids"],
                            attention_mask=batch["attention_mask"])
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    rows = torch.arange(targets.shape[0], device=targets.device).unsqueeze(1).expand_as(targets)
    values = token_logps(output_head(model), hidden[:, :-1][keep], targets[keep])
    sums = hidden.new_zeros(targets.shape[0], dtype=torch.float32)
    return sums.index_add(0, rows[keep], values), keep.sum(dim=1)


def dpo_loss(logps, ref_logps, lengths, beta: float, loss: str = "sigmoid",
             sft_weight: float = 0.0):
    """DPO (`sigmoid`) or IPO (`ipo`) on a batch whose first half are the chosen rows and
    second half the rejected ones, plus `sft_weight` x the chosen answers' mean token
    cross-entropy (TRL's loss_type ["sigmoid", "sft"] with those weights). Returns
    (loss, metrics)."""
    import torch.nn.functional as F

    chosen, rejected = logps.chunk(2)
    ref_chosen, ref_rejected = ref_logps.to(logps.dtype).chunk(2)
    chosen_ratio, rejected_ratio = chosen - ref_chosen, rejected - ref_rejected
    if loss == "ipo":
        # TRL's IPO divides each answer's log-ratio by its token count (the IPO authors'
        # normalised form), so beta means the same whatever the answers' lengths.
        chosen_len, rejected_len = lengths.chunk(2)
        delta = chosen_ratio / chosen_len.clamp(min=1) - rejected_ratio / rejected_len.clamp(min=1)
        per_pair = (delta - 1 / (2 * beta)) ** 2
    else:
        per_pair = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))
    total = per_pair.mean()
    if sft_weight:
        chosen_len = lengths.chunk(2)[0]
        total = total + sft_weight * (-chosen.sum() / chosen_len.sum().clamp(min=1))
    chosen_reward, rejected_reward = beta * chosen_ratio.detach(), beta * rejected_ratio.detach()
    metrics = {"reward_accuracy": (chosen_reward > rejected_reward).float().mean(),
               "reward_margin": (chosen_reward - rejected_reward).mean(),
               "reward_chosen": chosen_reward.mean(), "reward_rejected": rejected_reward.mean(),
               "logp_chosen": chosen.detach().mean(), "logp_rejected": rejected.detach().mean()}
    return total, metrics


def kto_loss(logps, ref_logps, desirable, beta: float, desirable_weight: float = 1.0,
             undesirable_weight: float = 1.0):
    """KTO on a batch whose first half are the rows' answers and second half their mismatched
    (KL) sequences; `desirable` says which answers are good. Returns (loss, metrics)."""
    import torch

    answers, mismatched = logps.chunk(2)
    ref_answers, ref_mismatched = ref_logps.to(logps.dtype).chunk(2)
    # The KL estimate is a baseline, not something to optimise: no gradient (as in TRL).
    kl = (mismatched - ref_mismatched).mean().detach().clamp(min=0)
    ratio = answers - ref_answers
    good, bad = desirable, ~desirable
    losses = torch.cat([desirable_weight * (1 - torch.sigmoid(beta * (ratio[good] - kl))),
                        undesirable_weight * (1 - torch.sigmoid(beta * (kl - ratio[bad])))])
    rewards = beta * ratio.detach()
    metrics = {"kl": kl, "logp_chosen": _mean(answers.detach()[good]),
               "logp_rejected": _mean(answers.detach()[bad]),
               "reward_chosen": _mean(rewards[good]), "reward_rejected": _mean(rewards[bad])}
    if good.any() and bad.any():
        metrics["reward_margin"] = metrics["reward_chosen"] - metrics["reward_rejected"]
        # the share of (good, bad) pairs in the batch whose rewards are in the right order
        metrics["reward_accuracy"] = (rewards[good].unsqueeze(1) >
                                      rewards[bad].unsqueeze(0)).float().mean()
    return losses.mean(), metrics


def _mean(values):
    return values.mean() if values.numel() else None


def reference_logps(model, rows: list[dict], collator, batch_size: int = 8) -> list[float]:
    """The model's log-probabilities of every row's sequences as it is now (before any
    training step), in the order the collator lays them out per batch, flattened per row:
    DPO rows give (chosen, rejected), KTO rows (answer, mismatched)."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    found: list[list[float]] = []
    try:
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                part = rows[start:start + batch_size]
                batch = {k: v.to(device) for k, v in collator(part).items()
                         if k in ("input_ids", "attention_mask", "labels")}
                logps, _ = sequence_logps(model, batch)
                first, second = logps.double().cpu().chunk(2)
                found += [[a.item(), b.item()] for a, b in zip(first, second)]
    finally:
        if was_training:
            model.train()
    return found


def attach_reference(rows: list[dict], values: list[list[float]], method: str) -> None:
    """Store each row's reference log-probabilities in it, for the collator."""
    names = ("ref_chosen_logp", "ref_rejected_logp") if method == "dpo" else ("ref_logp",
                                                                             "ref_kl_logp")
    for row, (first, second) in zip(rows, values):
        row[names[0]], row[names[1]] = first, second
