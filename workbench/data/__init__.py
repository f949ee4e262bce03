"""Datasets: read, check, split and encode. `load_splits` needs no model, so bad data
fails before anything heavy loads; `encode_splits` needs the tokenizer.

Curation, for a notebook or the `workbench data` command:

    from workbench.data import check, report, clean, to_dataset
    check("my.jsonl")                          # every problem, or a one-screen summary
    report("my.jsonl", tokenizer)              # token lengths, truncation, duplicates
    clean("my.jsonl", "my-clean/")             # drop bad rows and duplicates, split
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from workbench.config import DataSettings
from workbench.data.checking import CheckResult, check
from workbench.data.cleaning import CleanResult, clean
from workbench.data.encoding import EncodeStats, encode_all
from workbench.data.formats import Example
from workbench.data.packing import pack_rows
from workbench.data.reporting import DataReport, report
from workbench.data.tables import to_dataset


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
    if data.eval_fraction == 0 or len(train) < 2:
        return Splits(fmt, train, [])
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    count = max(1, round(len(train) * data.eval_fraction))
    held = set(order[:count])
    return Splits(fmt, [e for i, e in enumerate(train) if i not in held],
                  [e for i, e in enumerate(train) if i in held])


def encode_splits(splits: Splits, tokenizer, data: DataSettings) -> EncodedSplits:
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
