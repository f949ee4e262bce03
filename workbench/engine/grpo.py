"""Reward tuning (GRPO): sample several answers per prompt, reward them with code, and push
the model towards the answers that scored above their group's mean.

    rollout = sample_rollout(model, tokenizer, batch, settings, rewards, chat=True)
    loss, metrics = grpo_loss(model, rollout, settings)

One optimizer step: the prompts of the batch are each answered `num_generations` times,
sampled in one batched `generate` call with the KV cache; every reward function scores
every answer; an answer's advantage is its weighted total reward minus its group's mean,
over the group's standard deviation (TRL's `scale_rewards="group"`). The loss is TRL
1.9.2's for `loss_type` grpo, bnpo or dr_grpo with one pass over each rollout (so the
probability ratio is 1 and clipping never binds): minus the advantage times the answer's
log-probability, averaged as the loss type says, plus `beta` times the k3 estimate of the
KL divergence to the model with its adapter off. Log-probabilities are computed from the
logits divided by the sampling temperature, only at the answers' tokens, in chunks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from workbench.data.encoding import render_chat
from workbench.evaluation.rewards import Reward, call_reward

STD_EPSILON = 1e-4  # as TRL: a group whose rewards all agree gets advantage 0, not 0/0


@dataclass
class Rollout:
    prompts: list[str]  # per answer: the user's prompt
    completions: list[str]
    input_ids: object  # [answers, prompt + completion]: prompt left-padded
    attention_mask: object
    completion_mask: object  # [answers, completion]: 1 up to and including the end token
    prompt_width: int
    rewards: object  # [answers]: the weighted total (NaN where no function scored)
    per_function: dict = field(default_factory=dict)  # name -> [answers]
    advantages: object = None
    truncated: object = None  # [answers]: no end token within max_completion_length
    seconds: float = 0.0
    new_tokens: int = 0

    @property
    def groups(self) -> int:
        return len(self.rewards) // max(self.group_size, 1)

    group_size: int = 1


def render_prompts(batch: dict, tokenizer, chat: bool, system_prompt: str | None) -> list[str]:
    """The text each prompt is continued from: chat turns with the generation prompt, or the
    raw text of prompt_completion rows."""
    texts = []
    for turns, raw in zip(batch["messages"], batch["raw"]):
        if turns is None or not chat:
            texts.append(raw if raw is not None else turns[-1]["content"])
            continue
        turns = list(turns)
        if system_prompt and turns[0]["role"] != "system":
            turns.insert(0, {"role": "system", "content": system_prompt})
        texts.append(render_chat(turns, tokenizer, add_generation_prompt=True))
    return texts


def sample_rollout(model, tokenizer, batch: dict, settings, rewards: list[Reward], *, chat: bool,
                   system_prompt: str | None = None, max_prompt_length: int = 512,
                   seed: int | None = None) -> Rollout:
    """Sample `settings.num_generations` answers per prompt, reward them, and compute the
    group-relative advantages."""
    import torch
    from transformers import GenerationConfig

    n = settings.num_generations
    texts = render_prompts(batch, tokenizer, chat, system_prompt)
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    truncation, tokenizer.truncation_side = tokenizer.truncation_side, "left"
    try:
        encoded = tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                            max_length=max_prompt_length, add_special_tokens=not chat).to(device)
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = side, truncation
    prompt_ids = encoded["input_ids"].repeat_interleave(n, dim=0)
    prompt_mask = encoded["attention_mask"].repeat_interleave(n, dim=0)
    stops = end_tokens(model, tokenizer)
    config = GenerationConfig(max_new_tokens=settings.max_completion_length, do_sample=True,
                              temperature=settings.temperature, top_p=1.0, top_k=0,
                              eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
    was_training = model.training
    model.eval()
    began = time.perf_counter()
    try:
        if seed is not None:
            torch.manual_seed(seed)
        with torch.no_grad():
            output = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask,
                                    generation_config=config)
    finally:
        if was_training:
            model.train()
    seconds = time.perf_counter() - began
    width = prompt_ids.shape[1]
    completion_ids = output[:, width:]
    completion_mask, truncated = completion_masks(completion_ids, stops)
    completions = [tokenizer.decode(row[mask.bool()], skip_special_tokens=True).strip()
                   for row, mask in zip(completion_ids, completion_mask)]
    prompts = [p for p in batch["prompts"] for _ in range(n)]
    columns = {k: [v for v in values for _ in range(n)] for k, values in batch["columns"].items()}
    per_function = {r.name: torch.tensor(call_reward(r, prompts, completions, columns),
                                         dtype=torch.float32) for r in rewards}
    total = weighted_total(per_function, {r.name: r.weight for r in rewards}) if rewards \
        else torch.full((len(completions),), math.nan)
    rollout = Rollout(prompts, completions, torch.cat([prompt_ids, completion_ids], dim=1),
                      torch.cat([prompt_mask, completion_mask], dim=1), completion_mask, width,
                      total, per_function, group_advantages(total, n), truncated, seconds,
                      int(completion_mask.sum()), group_size=n)
    return rollout


def end_tokens(model, tokenizer) -> list[int]:
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    return [i for i in dict.fromkeys(ids + [tokenizer.eos_token_id]) if i is not None]


def completion_masks(completion_ids, stops: list[int]):
    """1 up to and including each row's first end token (all 1 when there is none), and
    whether the row ran out of room without one."""
    import torch

    is_end = torch.isin(completion_ids, torch.tensor(stops, device=completion_ids.device))
    has_end = is_end.any(dim=1)
    first = torch.where(has_end, is_end.float().argmax(dim=1),
                        torch.full_like(has_end, completion_ids.shape[1], dtype=torch.long))
    positions = torch.arange(completion_ids.shape[1], device=completion_ids.device)
    return (positions.unsqueeze(0) <= first.unsqueeze(1)).long(), ~has_end


def weighted_total(per_function: dict, weights: dict):
    """Sum of weight x reward over the functions, NaN-aware: an answer no function scored is
    NaN (it gets advantage 0)."""
    import torch

    stacked = torch.stack([per_function[name] * weights[name] for name in per_function], dim=1)
    total = torch.nansum(stacked, dim=1)
    total[torch.isnan(stacked).all(dim=1)] = math.nan
    return total


def group_advantages(rewards, group_size: int):
    """(reward - group mean) / (group std + 1e-4), NaN-aware, as TRL's scale_rewards="group"
    (the std with Bessel's correction); unscorable answers get 0."""
    import torch

    grouped = rewards.view(-1, group_size)
    mean = torch.nanmean(grouped, dim=1, keepdim=True)
    count = (~torch.isnan(grouped)).sum(dim=1, keepdim=True)
    variance = torch.nanmean((grouped - mean) ** 2, dim=1, keepdim=True) * count / (count - 1)
    std = torch.sqrt(torch.where(count > 1, variance, torch.full_like(variance, math.nan)))
    advantages = (grouped - mean) / (std + STD_EPSILON)
    return torch.nan_to_num(advantages.view(-1), nan=0.0)


def token_logps(model, rollout: Rollout, temperature: float):
    """Per answer token: log p(token) under the model at this temperature, as [answers,
    completion] (0 outside the mask)."""
    import torch

    from workbench.engine.trainer import decoder_states, output_head
    from workbench.engine.trainer import token_logps as head_logps

    hidden = decoder_states(model, input_ids=rollout.input_ids,
                            attention_mask=rollout.attention_mask)
    width = rollout.prompt_width
    targets = rollout.input_ids[:, width:]
    keep = rollout.completion_mask.bool()
    out = hidden.new_zeros(targets.shape, dtype=torch.float32)
    out[keep] = head_logps(output_head(model), hidden[:, width - 1:-1][keep],
                           targets[keep], temperature)
    return out


def grpo_loss(logps, rollout: Rollout, settings, ref_logps=None):
    """TRL 1.9.2's GRPO loss for one pass over the rollout. Returns (loss, kl or None)."""
    import torch

    mask = rollout.completion_mask.to(logps.dtype)
    advantages = rollout.advantages.to(logps.device).unsqueeze(1)
    ratio = torch.exp(logps - logps.detach())  # 1, with the gradient of logps
    per_token = -ratio * advantages
    kl = None
    if settings.beta:
        diff = ref_logps - logps
        per_token_kl = torch.exp(diff) - diff - 1
        per_token = per_token + settings.beta * per_token_kl
        kl = ((per_token_kl * mask).sum() / mask.sum().clamp(min=1.0)).detach()
    if settings.loss == "bnpo":
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    elif settings.loss == "dr_grpo":
        loss = (per_token * mask).sum() / (per_token.shape[0] * settings.max_completion_length)
    else:
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    return loss, kl


def rollout_metrics(rollout: Rollout) -> dict:
    """What a log line and the dashboard show of a rollout (floats, or tensors to read at
    log time)."""
    import torch

    grouped = rollout.rewards.view(-1, rollout.group_size)
    spread = torch.nan_to_num(grouped.std(dim=1), nan=0.0)
    metrics = {"reward": torch.nanmean(rollout.rewards),
               "reward_std": torch.nan_to_num(rollout.rewards.std(), nan=0.0),
               "zero_std_groups": (spread == 0).float().mean(),
               "completion_length": rollout.completion_mask.sum(dim=1).float().mean(),
               "truncated": rollout.truncated.float().mean(),
               "rollout_tokens_per_second": torch.tensor(rollout.new_tokens /
                                                         max(rollout.seconds, 1e-9))}
    for name, values in rollout.per_function.items():
        metrics[f"reward/{name}"] = torch.nanmean(values)
        metrics[f"reward/{name}/std"] = torch.nan_to_num(values.std(), nan=0.0)
    return metrics
