"""Clean a dataset: drop unusable rows, rows outside length bounds, exact and near
duplicates; log every drop with its reason; split train / eval with a seed.

    result = clean("my.jsonl", "my-clean/", tokenizer=tok, max_tokens=512)
    result.train, result.eval        # datasets.Dataset
    # my-clean/train.jsonl, eval.jsonl, dropped.jsonl (where, reason, detail, row), clean.json

Rows keep their own columns, so the cleaned files load exactly as the original did.
Order of the filters: validity, then length, then duplicates (a duplicate of a row that
was dropped for its length is kept), then the split, so no near duplicate of a training
row can end up in the held-out part.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from workbench.data.checking import CheckResult, check
from workbench.data.dedup import NEAR_THRESHOLD, example_text, find_duplicates
from workbench.data.encoding import measure_many
from workbench.data.formats import Example, Row
from workbench.data.splits import split
from workbench.errors import DataError, Where, in_file_order

OUTPUT_FILES = ("train.jsonl", "eval.jsonl", "dropped.jsonl", "clean.json")


@dataclass(frozen=True)
class Dropped:
    where: Where
    reason: str  # invalid, template_refused, too_short, too_long, exact_duplicate, near_duplicate
    detail: str
    row: object = None  # the row as read (None for a line that did not parse)

    def as_dict(self) -> dict:
        return {"where": str(self.where), "reason": self.reason, "detail": self.detail,
                "row": self.row}


@dataclass
class CleanResult:
    path: str
    format: str
    train_rows: list[dict]
    eval_rows: list[dict]
    dropped: list[Dropped]
    settings: dict
    out: Path | None = None
    _datasets: dict = field(default_factory=dict, repr=False)

    @property
    def train(self):
        """The training rows as a `datasets.Dataset`."""
        return self._dataset("train", self.train_rows)

    @property
    def eval(self):
        """The held-out rows as a `datasets.Dataset` (empty with eval_fraction 0)."""
        return self._dataset("eval", self.eval_rows)

    def _dataset(self, name: str, rows: list[dict]):
        from workbench.data.tables import rows_to_dataset

        if name not in self._datasets:
            self._datasets[name] = rows_to_dataset(rows)
        return self._datasets[name]

    def counts(self) -> dict:
        return dict(Counter(d.reason for d in self.dropped))

    def summary(self) -> str:
        kept = len(self.train_rows) + len(self.eval_rows)
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(self.counts().items()))
        lines = [f"{Path(self.path).name}: kept {kept}, dropped {len(self.dropped)}"
                 f"{' (' + reasons + ')' if reasons else ''}; train {len(self.train_rows)}, "
                 f"eval {len(self.eval_rows)} (seed {self.settings['seed']})"]
        if self.out is not None:
            eval_path = self.out / "eval.jsonl"
            lines.append(f"  wrote {self.out}/: train.jsonl, "
                         f"{'eval.jsonl, ' if self.eval_rows else ''}dropped.jsonl (every drop "
                         "and why), clean.json")
            lines.append(f"  train on it: --set data.train_path={self.out / 'train.jsonl'}"
                         + (f" --set data.eval_path={eval_path}" if self.eval_rows else ""))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(self.summary())


def clean(source, out: str | Path | None = None, *, fmt: str = "auto",
          system_prompt: str | None = None, tokenizer=None, train_on: str = "responses",
          min_tokens: int | None = None, max_tokens: int | None = None,
          min_chars: int | None = None, max_chars: int | None = None,
          near_threshold: float | None = NEAR_THRESHOLD, eval_fraction: float = 0.1,
          seed: int = 42) -> CleanResult:
    """Filter a dataset (a path or a `check` result) and split it; write the files to
    `out` when given. Token bounds need a tokenizer (lengths as the model reads them,
    chat template included); character bounds count the text of the user and assistant
    turns. near_threshold None keeps near duplicates (exact ones are always dropped)."""
    if (min_tokens is not None or max_tokens is not None) and tokenizer is None:
        raise DataError("min_tokens / max_tokens count tokens: give a tokenizer (--model on "
                        "the command line), or use min_chars / max_chars")
    if not 0 <= eval_fraction < 1:
        raise DataError(f"eval_fraction must be >= 0 and < 1, got {eval_fraction}")
    checked = source if isinstance(source, CheckResult) else check(source, fmt, system_prompt)
    if checked.format is None or not checked.valid:
        raise DataError("nothing to clean: no usable row\n" + "\n".join(
            f"  - {p}" for p in checked.problems[:10]))
    dropped = _invalid(checked)
    kept = list(checked.valid)
    if tokenizer is not None:
        kept = _by_tokens(kept, tokenizer, train_on, min_tokens, max_tokens, dropped)
    kept = _by_chars(kept, min_chars, max_chars, dropped)
    kept = _deduplicated(kept, near_threshold, dropped)
    train, held_out = split([row for row, _ in kept], eval_fraction, seed)
    settings = {"format": checked.format, "tokenizer": getattr(tokenizer, "name_or_path", None),
                "train_on": train_on, "min_tokens": min_tokens, "max_tokens": max_tokens,
                "min_chars": min_chars, "max_chars": max_chars,
                "near_threshold": near_threshold, "eval_fraction": eval_fraction, "seed": seed}
    result = CleanResult(checked.path, checked.format, [r.value for r in train],
                         [r.value for r in held_out], in_file_order(dropped), settings)
    if out is not None:
        write(result, Path(out))
    if not kept:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(result.counts().items()))
        log = f" (each drop is in {Path(out) / 'dropped.jsonl'})" if out is not None else ""
        raise DataError(f"{Path(checked.path).name}: every row was dropped ({reasons}){log}; "
                        "loosen the length bounds or the near-duplicate threshold")
    return result


def _invalid(checked: CheckResult) -> list[Dropped]:
    rows = {row.where: row.value for row in checked.read}
    return [Dropped(p.where, "invalid", p.text, rows.get(p.where)) for p in checked.problems]


def _by_tokens(kept, tokenizer, train_on, low, high, dropped) -> list[tuple[Row, Example]]:
    result = []
    measured = measure_many([e for _, e in kept], tokenizer, max_length=10**9,
                            train_on=train_on)
    for (row, example), item in zip(kept, measured):
        if isinstance(item, DataError):
            dropped.append(Dropped(row.where, "template_refused", item.message, row.value))
        elif low is not None and item[0] < low:
            dropped.append(Dropped(row.where, "too_short", f"{item[0]} tokens < {low}",
                                   row.value))
        elif high is not None and item[0] > high:
            dropped.append(Dropped(row.where, "too_long", f"{item[0]} tokens > {high}",
                                   row.value))
        else:
            result.append((row, example))
    return result


def _by_chars(kept, low, high, dropped) -> list[tuple[Row, Example]]:
    result = []
    for row, example in kept:
        size = len(example_text(example))
        if low is not None and size < low:
            dropped.append(Dropped(row.where, "too_short", f"{size} characters < {low}",
                                   row.value))
        elif high is not None and size > high:
            dropped.append(Dropped(row.where, "too_long", f"{size} characters > {high}",
                                   row.value))
        else:
            result.append((row, example))
    return result


def _deduplicated(kept, threshold, dropped) -> list[tuple[Row, Example]]:
    found = find_duplicates([example_text(e) for _, e in kept], threshold)
    for index, (kind, of, similarity) in sorted(found.drop.items()):
        row, original = kept[index][0], kept[of][0]
        detail = (f"same text as {original.where}" if kind == "exact" else
                  f"Jaccard {similarity:.2f} with {original.where}")
        dropped.append(Dropped(row.where, f"{kind}_duplicate", detail, row.value))
    return [item for index, item in enumerate(kept) if index not in found.drop]


def write(result: CleanResult, out: Path) -> None:
    """train.jsonl, eval.jsonl (when any), dropped.jsonl and clean.json into `out`."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file; give a folder for the cleaned data")
    out.mkdir(parents=True, exist_ok=True)
    _jsonl(out / "train.jsonl", result.train_rows)
    if result.eval_rows:
        _jsonl(out / "eval.jsonl", result.eval_rows)
    else:
        (out / "eval.jsonl").unlink(missing_ok=True)  # never leave a stale split behind
    _jsonl(out / "dropped.jsonl", [d.as_dict() for d in result.dropped])
    summary = {"source": str(result.path), "train": len(result.train_rows),
               "eval": len(result.eval_rows), "dropped": result.counts(),
               "settings": result.settings}
    (out / "clean.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    result.out = out


def _jsonl(path: Path, rows: list) -> None:
    # default=str: Parquet rows can hold dates and other values JSON has no type for
    text = "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8")
