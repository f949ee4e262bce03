"""Datasets: read, check, split and encode (the pipeline is in `splits`).

Curation, for a notebook or the `workbench data` command:

    from workbench.data import check, report, clean, to_dataset
    check("my.jsonl")                          # every problem, or a one-screen summary
    report("my.jsonl", tokenizer)              # token lengths, truncation, duplicates
    clean("my.jsonl", "my-clean/")             # drop bad rows and duplicates, split
"""

from __future__ import annotations

from workbench.data.checking import CheckResult, check, to_dataset
from workbench.data.cleaning import CleanResult, clean
from workbench.data.formats import Example
from workbench.data.reporting import DataReport, report
from workbench.data.splits import (EncodedSplits, Splits, encode_splits, load_examples,
                                   load_splits, split)

__all__ = ["CheckResult", "CleanResult", "DataReport", "EncodedSplits", "Example", "Splits",
           "check", "clean", "encode_splits", "load_examples", "load_splits", "report",
           "split", "to_dataset"]
