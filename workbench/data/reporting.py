"""What a dataset looks like to one model: token lengths with its tokenizer and chat
template, truncation at max_length, the share of tokens trained, duplicates and very
short answers. Plain data; `workbench.plots.lengths` draws the length histogram and
`workbench.ui.data_view` shows examples with the trained tokens highlighted.

    rep = report("my.jsonl", tokenizer, max_length=512)
    print(rep.summary())
    rep.table().filter(lambda row: row["truncated"])      # a datasets.Dataset
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from workbench.data.checking import SHORT_ANSWER, CheckResult, check, short_answer
from workbench.data.dedup import NEAR_THRESHOLD, Duplicates, example_text, find_duplicates
from workbench.data.encoding import measure_many
from workbench.data.formats import Example
from workbench.errors import DataError, Problem, Where

PERCENTILES = (50, 90, 95, 99)
LISTED = 5


@dataclass
class DataReport:
    path: str
    format: str
    tokenizer: str
    max_length: int
    train_on: str
    rows_read: int
    row_formats: dict
    examples: list[Example]  # the usable examples, in file order
    tokens: list[int]  # per example: its length in tokens before the cut
    trained: list[int]  # per example: tokens trained after the cut
    problems: list[Problem] = field(default_factory=list)  # rows left out, and why
    duplicates: Duplicates = field(default_factory=Duplicates)
    short_answers: list[tuple[Where, str]] = field(default_factory=list)  # (where, answer)
    short_limit: int = SHORT_ANSWER
    seconds: float = 0.0

    @property
    def truncated(self) -> list[Where]:
        """Where each example longer than max_length is (it is cut at the end)."""
        return [e.where for e, n in zip(self.examples, self.tokens) if n > self.max_length]

    @property
    def nothing_trained(self) -> list[Where]:
        """Examples with no trained token left after the cut: training drops them."""
        return [e.where for e, n in zip(self.examples, self.trained) if n == 0]

    @property
    def trained_fraction(self) -> float:
        kept = sum(min(n, self.max_length) for n in self.tokens)
        return sum(self.trained) / kept if kept else 0.0

    def percentiles(self) -> dict:
        """min, p50, p90, p95, p99, max and mean of the token lengths (before the cut)."""
        values = sorted(self.tokens)
        if not values:
            return {}
        result = {"min": values[0]}
        for q in PERCENTILES:  # nearest-rank: always a length that occurs
            result[f"p{q}"] = values[max(0, math.ceil(q / 100 * len(values)) - 1)]
        result.update(max=values[-1], mean=round(sum(values) / len(values), 1))
        return result

    def as_dict(self) -> dict:
        """Everything but the per-example lists, JSON-ready."""
        dup, place = self.duplicates, lambda i: str(self.examples[i].where)
        return {"path": self.path, "format": self.format, "tokenizer": self.tokenizer,
                "max_length": self.max_length, "train_on": self.train_on,
                "rows_read": self.rows_read, "rows_by_format": self.row_formats,
                "examples": len(self.examples), "problems": [str(p) for p in self.problems],
                "tokens": self.percentiles(), "total_tokens": sum(self.tokens),
                "truncated": [str(w) for w in self.truncated],
                "nothing_trained": [str(w) for w in self.nothing_trained],
                "trained_tokens": sum(self.trained),
                "trained_fraction": round(self.trained_fraction, 4),
                "exact_duplicates": [[place(i) for i in g] for g in dup.exact],
                "near_duplicates": [[place(i), place(j), s] for i, j, s in dup.near],
                "near_threshold": dup.threshold,
                "short_answers": [[str(w), answer] for w, answer in self.short_answers],
                "short_answer_limit": self.short_limit, "seconds": round(self.seconds, 3)}

    def table(self):
        """One row per example (where, tokens, trained_tokens, truncated, duplicate_of,
        similarity) as a `datasets.Dataset`, to sort and filter in a notebook."""
        from workbench.data.tables import rows_to_dataset

        drop = self.duplicates.drop
        return rows_to_dataset([{
            "where": str(e.where), "tokens": n, "trained_tokens": t,
            "truncated": n > self.max_length,
            "duplicate_of": str(self.examples[drop[i][1]].where) if i in drop else None,
            "similarity": drop[i][2] if i in drop else None}
            for i, (e, n, t) in enumerate(zip(self.examples, self.tokens, self.trained))])

    def summary(self) -> str:
        name = Path(self.path).name
        p = self.percentiles()
        count = len(self.examples)
        lines = [f"{name}: {count} examples of {self.rows_read} rows, format {self.format}; "
                 f"tokenizer {self.tokenizer}, max_length {self.max_length}, "
                 f"train_on {self.train_on}"]
        if self.problems:
            lines.append(f"  {len(self.problems)} row(s) left out (`workbench data check` lists "
                         f"them): {self.problems[0]}")
        if len(self.row_formats) > 1:
            lines.append("  rows by their keys: " + ", ".join(
                f"{fmt} {n}" for fmt, n in sorted(self.row_formats.items())))
        if not count:
            return "\n".join(lines)
        lines.append("  tokens per example: " + ", ".join(f"{k} {v}" for k, v in p.items()))
        cut = self.truncated
        lines.append(f"  longer than max_length {self.max_length} (cut at the end): {len(cut)} "
                     f"({100 * len(cut) / count:.1f}%){_where(cut)}")
        if self.nothing_trained:
            lines.append(f"  nothing left to train after the cut (training drops them): "
                         f"{len(self.nothing_trained)}{_where(self.nothing_trained)}")
        lines.append(f"  tokens trained: {sum(self.trained):,} of "
                     f"{sum(min(n, self.max_length) for n in self.tokens):,} "
                     f"({100 * self.trained_fraction:.1f}%)")
        dup = self.duplicates
        near = [f"{self.examples[j].where} ~ {self.examples[i].where} ({s:.2f})"
                for i, j, s in dup.near[:LISTED]]
        near_text = ("near duplicates not searched" if dup.threshold is None else
                     f"{len(dup.near)} near pairs (Jaccard >= {dup.threshold:g} on character "
                     f"5-grams){': ' + '; '.join(near) if near else ''}")
        lines.append(f"  duplicates: {sum(len(g) - 1 for g in dup.exact)} exact, {near_text}")
        shorts = [f"{where} ({answer!r})" for where, answer in self.short_answers[:LISTED]]
        lines.append(f"  empty or very short answers (< {self.short_limit} characters): "
                     f"{len(self.short_answers)}{': ' + ', '.join(shorts) if shorts else ''}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(self.summary())


def _where(items: list[Where]) -> str:
    if not items:
        return ""
    more = f", ... ({len(items) - LISTED} more)" if len(items) > LISTED else ""
    return ": " + ", ".join(map(str, items[:LISTED])) + more


def report(source, tokenizer, max_length: int = 512, train_on: str = "responses",
           fmt: str = "auto", system_prompt: str | None = None,
           near_threshold: float | None = NEAR_THRESHOLD,
           short_answer_chars: int = SHORT_ANSWER) -> DataReport:
    """Measure a dataset (a path or a `check` result) with a tokenizer. Rows `check`
    refuses, and rows the chat template refuses, are left out and listed in `problems`;
    raises DataError only when no row is usable."""
    began = time.perf_counter()
    checked = source if isinstance(source, CheckResult) else check(source, fmt, system_prompt)
    if not checked.valid:
        checked.raise_if_problems()
    problems, examples, tokens, trained = list(checked.problems), [], [], []
    for example, measured in zip(checked.examples, measure_many(checked.examples, tokenizer,
                                                                max_length, train_on)):
        if isinstance(measured, DataError):
            problems.append(Problem(measured.message, example.where))
            continue
        examples.append(example)
        tokens.append(measured[0])
        trained.append(measured[1])
    if not examples:
        raise DataError("no example could be rendered with this tokenizer's chat template:\n"
                        + "\n".join(f"  - {p}" for p in problems[:LISTED]))
    shorts = [(e.where, answer) for e in examples
              if (answer := short_answer(e, short_answer_chars)) is not None]
    name = Path(str(getattr(tokenizer, "name_or_path", "") or "tokenizer")).name
    return DataReport(
        path=checked.path, format=checked.format, tokenizer=name, max_length=max_length,
        train_on=train_on, rows_read=checked.rows_read, row_formats=checked.row_formats,
        examples=examples, tokens=tokens, trained=trained, problems=problems,
        duplicates=find_duplicates([example_text(e) for e in examples], near_threshold),
        short_answers=shorts, short_limit=short_answer_chars,
        seconds=time.perf_counter() - began)
