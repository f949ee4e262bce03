"""The training pipeline's data: read and check the configured files, hold out the
evaluation part with a seed, and encode both for the model.

`load_splits` needs no model, so bad data fails before anything heavy loads;
`encode_splits` needs the tokenizer. `split` is the one rule for a seeded held-out
part: training and `workbench data clean` both use it, so a cleaned folder's eval.jsonl
holds the same rows a run would hold out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from workbench.config import DataSettings
from workbench.data.checking import check
from workbench.data.encoding import EncodeStats, encode_all
from workbench.data.formats import Example
from workbench.data.packing import pack_rows


@dataclass
class Splits:
    format: str
    train: list[Example]
    eval: list[Example]


@dataclass
class EncodedSplits:
    train: list[dict]
    eval: list[dict]
    stats: dict = field(default_factory=dict)


def split(items: list, eval_fraction: float, seed: int) -> tuple[list, list]:
    """(train, eval), each in the original order. The same items, fraction and seed always
    give the same split; with fewer than two items nothing is held out."""
    if eval_fraction == 0 or len(items) < 2:
        return list(items), []
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    held = set(order[:max(1, round(len(items) * eval_fraction))])
    return ([item for i, item in enumerate(items) if i not in held],
            [item for i, item in enumerate(items) if i in held])


def load_examples(path: str, fmt: str = "auto", system_prompt: str | None = None
                  ) -> tuple[str, list[Example]]:
    """(format, examples) of a file; raises one DataError naming every problem in it."""
    result = check(path, fmt, system_prompt).raise_if_problems()
    return result.format, result.examples


def load_splits(data: DataSettings, seed: int) -> Splits:
    """Read and check the configured data and split off the held-out part."""
    fmt, train = load_examples(data.path or data.train_path, data.format, data.system_prompt)
    if data.eval_path:
        _, held_out = load_examples(data.eval_path, fmt, data.system_prompt)
        return Splits(fmt, train, held_out)
    return Splits(fmt, *split(train, data.eval_fraction, seed))


def encode_splits(splits: Splits, tokenizer, data: DataSettings, method: str = "sft",
                  max_prompt_length: int | None = None) -> EncodedSplits:
    """Token ids and labels for the run's method (`sft`; `dpo` pairs; `kto` labelled answers)."""
    if method == "grpo":
        from workbench.data.rollouts import prompt_rows

        # held out: prompts for eval.scorers (a rollout has no held-out loss)
        stats = {"format": splits.format, "method": method,
                 "train": {"examples": len(splits.train)}, "eval": {"examples": len(splits.eval)}}
        return EncodedSplits(prompt_rows(splits.train), [], stats)
    if method != "sft":
        return _encode_preference(splits, tokenizer, data, method, max_prompt_length)
    train, train_stats = encode_all(splits.train, tokenizer, data.max_length, data.train_on,
                                    "training")
    evaluation, eval_stats = ([], EncodeStats())
    if splits.eval:
        evaluation, eval_stats = encode_all(splits.eval, tokenizer, data.max_length,
                                            data.train_on, "evaluation")
    stats = {"format": splits.format, "train": train_stats.as_dict(),
             "eval": eval_stats.as_dict()}
    if data.packing:
        # Rows no longer than the longest example: attention cost per token grows with the
        # row length, and longer rows would not remove any more padding.
        capacity = max(len(row["input_ids"]) for row in train)
        train = pack_rows(train, capacity)
        stats["train"].update(packed_rows=len(train), pack_length=capacity)
    return EncodedSplits(train, evaluation, stats)


def _encode_preference(splits: Splits, tokenizer, data: DataSettings, method: str,
                       max_prompt_length: int | None) -> EncodedSplits:
    from workbench.data.preference import (PreferenceStats, dpo_examples, encode_pairs,
                                           encode_unpaired, kto_examples)

    select, encode = (dpo_examples, encode_pairs) if method == "dpo" else (kto_examples,
                                                                          encode_unpaired)
    stats, encoded = {"format": splits.format, "method": method}, {}
    for name, examples, label in (("train", splits.train, "training"),
                                  ("eval", splits.eval, "evaluation")):
        chosen, skipped = select(examples)
        if not chosen:
            encoded[name], stats[name] = [], PreferenceStats(skipped=skipped).as_dict()
            continue
        encoded[name], found = encode(chosen, tokenizer, data.max_length, max_prompt_length,
                                      label, skipped)
        stats[name] = found.as_dict()
    return EncodedSplits(encoded["train"], encoded["eval"], stats)
