"""The reward test bench: before reward tuning, sample answers from the model as it is and
run every reward function on them, so a reward that always returns 0, never varies within
a group, or breaks on real answers is found before any training time is spent.

    report = check_rewards(model, tokenizer, rows, config)      # RewardReport
    print(report.summary())

`workbench rewards check CONFIG` prints it; a grpo run runs the same check first and
refuses to start when a reward function breaks, or when every reward is constant within
every group (then every advantage is 0 and nothing would be learned).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from workbench.config import RunConfig
from workbench.errors import ConfigError, Problem
from workbench.evaluation.rewards import KEY, RewardError, call_reward, resolve_rewards

CHECKED_PROMPTS = 4


@dataclass
class FunctionReport:
    name: str
    source: str
    weight: float
    values: list[float] = field(default_factory=list)
    error: str | None = None
    zero_variance_groups: float = 0.0  # share of groups where every answer scored the same

    @property
    def mean(self) -> float | None:
        scored = [v for v in self.values if not math.isnan(v)]
        return sum(scored) / len(scored) if scored else None

    @property
    def std(self) -> float | None:
        scored = [v for v in self.values if not math.isnan(v)]
        if len(scored) < 2:
            return None
        mean = sum(scored) / len(scored)
        return math.sqrt(sum((v - mean) ** 2 for v in scored) / (len(scored) - 1))

    @property
    def constant(self) -> bool:
        return self.error is None and self.zero_variance_groups == 1.0


@dataclass
class RewardReport:
    functions: list[FunctionReport]
    answers: list[dict]  # prompt, completion, rewards {name: value}
    group_size: int
    seconds: float = 0.0

    @property
    def errors(self) -> list[str]:
        return [f.error for f in self.functions if f.error]

    @property
    def all_constant(self) -> bool:
        return bool(self.functions) and all(f.constant for f in self.functions)

    def problems(self) -> list[Problem]:
        """Why training should not start: a broken function, or no learning signal at all."""
        found = [Problem(error, key=KEY) for error in self.errors]
        if not found and self.all_constant:
            values = ", ".join(f"{f.name} = {f.mean:g}" if f.mean is not None else
                               f"{f.name} = None" for f in self.functions)
            found.append(Problem(
                f"every reward is constant within every group of {self.group_size} sampled "
                f"answers ({values}), so every advantage is 0 and nothing would be learned; "
                "check the functions with `workbench rewards check`, raise grpo.temperature, "
                "or start from an adapter that already half does the task (lora.start_from)",
                key=KEY))
        return found

    def summary(self, answers: int = 6) -> str:
        lines = [f"reward check: {len(self.answers)} answers ({len(self.answers) // max(self.group_size, 1)}"
                 f" prompts x {self.group_size}), {self.seconds:.0f} s"]
        for f in self.functions:
            if f.error:
                lines.append(f"  {f.name} ({f.source}): ERROR {f.error}")
                continue
            mean = "None" if f.mean is None else f"{f.mean:.3f}"
            std = "-" if f.std is None else f"{f.std:.3f}"
            flag = "  <- constant: no learning signal" if f.constant else ""
            lines.append(f"  {f.name} (weight {f.weight:g}): mean {mean}, spread {std}, "
                         f"groups with zero variance {f.zero_variance_groups:.0%}{flag}")
        for row in self.answers[:answers]:
            scores = ", ".join(f"{k} {v:g}" for k, v in row["rewards"].items()
                               if not math.isnan(v))
            lines.append(f"  > {_short(row['prompt'])}\n    {_short(row['completion'], 100)}"
                         f"  [{scores}]")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"group_size": self.group_size, "seconds": round(self.seconds, 2),
                "functions": [{"name": f.name, "source": f.source, "weight": f.weight,
                               "mean": f.mean, "std": f.std, "error": f.error,
                               "zero_variance_groups": f.zero_variance_groups}
                              for f in self.functions]}


def check_rewards(model, tokenizer, rows: list[dict], config: RunConfig, chat: bool = True,
                  callables=(), prompts: int = CHECKED_PROMPTS, seed: int = 0) -> RewardReport:
    """Sample `num_generations` answers for the first `prompts` rows and score them with
    every reward function (each separately, so one that breaks does not hide the others)."""
    import torch

    from workbench.data.rollouts import PromptCollator
    from workbench.engine.grpo import sample_rollout

    settings = config.grpo
    rewards = resolve_rewards(settings.rewards, callables)
    batch = PromptCollator()(rows[:prompts])
    rollout = sample_rollout(model, tokenizer, batch, settings, [], chat=chat,
                             system_prompt=config.data.system_prompt,
                             max_prompt_length=config.data.max_length, seed=seed)
    columns = {k: [v for v in values for _ in range(settings.num_generations)]
               for k, values in batch["columns"].items()}
    reports = []
    for reward in rewards:
        report = FunctionReport(reward.name, reward.source, reward.weight)
        try:
            report.values = call_reward(reward, rollout.prompts, rollout.completions, columns)
        except RewardError as exc:
            report.error = exc.problems[0].message
        else:
            grouped = torch.tensor(report.values).view(-1, settings.num_generations)
            same = [len({v for v in group.tolist() if not math.isnan(v)}) <= 1
                    for group in grouped]
            report.zero_variance_groups = sum(same) / len(same)
        reports.append(report)
    answers = [{"prompt": p, "completion": c,
                "rewards": {r.name: (r.values[i] if r.values else math.nan) for r in reports}}
               for i, (p, c) in enumerate(zip(rollout.prompts, rollout.completions))]
    return RewardReport(reports, answers, settings.num_generations, rollout.seconds)


def refuse_if_unusable(report: RewardReport) -> None:
    problems = report.problems()
    if problems:
        raise ConfigError(problems)


def _short(text: str, limit: int = 80) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def check_config(config: RunConfig, prompts: int = CHECKED_PROMPTS) -> RewardReport:
    """`workbench rewards check`: the model as a run of this config would start (with its
    lora.start_from adapters), answering the first prompts of its data."""
    from workbench.backends.hf import HFBackend
    from workbench.data.formats import is_chat_format
    from workbench.data.preference import check_method
    from workbench.data.rollouts import prompt_rows
    from workbench.data.splits import load_splits
    from workbench.engine.start_from import resolve_start

    splits = load_splits(config.data, config.train.seed)
    check_method("grpo", splits.format, splits.train, config.data.path or config.data.train_path)
    resolve_rewards(config.grpo.rewards)  # a bad name fails before the model loads
    start = resolve_start(config)
    kwargs = {"base_adapters": [str(p) for p in start.merged]} if start else {}
    if start and start.mode == "continue":
        kwargs["adapter_dir"] = str(start.adapter)
    bundle = HFBackend().load(config, trainable=False, **kwargs)
    return check_rewards(bundle.model, bundle.tokenizer, prompt_rows(splits.train), config,
                         is_chat_format(splits.format), prompts=prompts,
                         seed=config.train.seed)
