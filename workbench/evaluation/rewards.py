"""Reward functions for train.method grpo: TRL's signature, and the scorers as rewards.

    rewards = resolve_rewards(["json_valid", "json_equal=2", "my_rewards:short_and_right"])
    values = call_reward(rewards[0], prompts, completions, columns)   # checked, one per answer

A reward function is `f(prompts, completions, **columns) -> list[float | None]`, as TRL
calls it: the prompts (the user's last turn), the sampled answers, and the dataset's other
columns by name (an `answer` to compare with, say), one entry per answer; None means "no
score for this one". Any scorer (`json_equal`, `regex:...`, your `module:function` with
the scorer signature `f(prompt, answer, reference)`) works as a reward too: it is called
per answer, with the row's `answer` column as the reference. `name=weight` weights a
reward in the total; the weight is what follows the last `=` when it is a number.

`call_reward` checks what comes back: a function that raises, returns the wrong number of
values, or returns something other than numbers is named with the input that broke it.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Callable

from workbench.errors import ConfigError, Problem
from workbench.evaluation.scorers import Scorer, resolve

KEY = "grpo.rewards"
REFERENCE_COLUMNS = ("answer", "reference", "completion", "solution")


@dataclass(frozen=True)
class Reward:
    name: str  # the metric is reward/<name>
    function: Callable  # TRL's signature
    weight: float = 1.0
    source: str = "builtin"


def split_weight(spec: str) -> tuple[str, float]:
    """`json_equal=2` -> ("json_equal", 2.0); `regex:a=b` stays whole (b is not a number)."""
    name, sep, tail = spec.rpartition("=")
    if sep:
        try:
            return name, float(tail)
        except ValueError:
            pass
    return spec, 1.0


def resolve_rewards(specs, callables=()) -> list[Reward]:
    """The rewards named in grpo.rewards, plus Python callables; every problem at once."""
    rewards, problems = [], []
    for spec in specs:
        name, weight = split_weight(spec) if isinstance(spec, str) else (spec, 1.0)
        try:
            rewards.append(_reward(name, weight))
        except ConfigError as exc:
            problems += [Problem(p.message.replace("eval.scorers", KEY), key=KEY)
                         for p in exc.problems]
    for function in callables:
        rewards.append(_reward(function, 1.0))
    names = [r.name for r in rewards]
    problems += [Problem(f"two rewards are named {n!r}; each needs its own name (reward/{n})",
                         key=KEY) for n in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise ConfigError(problems)
    return rewards


def _reward(spec, weight: float) -> Reward:
    scorer = resolve(spec)  # built-ins, module:function and callables, as for scorers
    if _takes_batches(scorer.function):
        return Reward(scorer.name, scorer.function, weight, scorer.source)
    return Reward(scorer.name, _per_answer(scorer), weight, scorer.source)


def _takes_batches(function) -> bool:
    """TRL's signature: its first parameters are prompts and completions."""
    try:
        names = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return names[:2] == ["prompts", "completions"]


def _per_answer(scorer: Scorer):
    def reward(prompts, completions, **columns):
        references = next((columns[c] for c in REFERENCE_COLUMNS if c in columns),
                          [""] * len(completions))
        return [scorer.function(p, c, "" if r is None else str(r))
                for p, c, r in zip(prompts, completions, references)]

    return reward


class RewardError(ConfigError):
    """A reward function that broke on real answers: raised, wrong length, not numbers."""


def call_reward(reward: Reward, prompts: list[str], completions: list[str],
                columns: dict[str, list]) -> list[float]:
    """The reward's values for these answers (NaN for None), checked."""
    label = f"reward {reward.name!r}" + (f" ({reward.source})" if reward.source != "builtin"
                                        else "")
    try:
        values = reward.function(list(prompts), list(completions), **columns)
    except Exception as exc:  # a user's function can raise anything; name it with its input
        raise RewardError([Problem(f"{label} raised {type(exc).__name__}: {exc} on the prompt "
                                   f"{_short(prompts[0])} with the answer "
                                   f"{_short(completions[0])}", key=KEY)]) from None
    if not isinstance(values, (list, tuple)) or len(values) != len(completions):
        got = f"{len(values)} values" if isinstance(values, (list, tuple)) else _short(values)
        raise RewardError([Problem(f"{label} returned {got} for {len(completions)} answers; a "
                                   "reward function returns one number (or None) per answer",
                                   key=KEY)])
    checked = []
    for index, value in enumerate(values):
        if value is None:
            checked.append(math.nan)
        elif isinstance(value, (bool, int, float)) and not (isinstance(value, float)
                                                            and math.isnan(value)):
            checked.append(float(value))
        else:
            raise RewardError([Problem(
                f"{label} returned {_short(value)} for the answer {_short(completions[index])} "
                f"(prompt {_short(prompts[index])}); a reward is a number, or None for no "
                "score", key=KEY)])
    return checked


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
