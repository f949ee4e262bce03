"""Check a dataset without a model: every problem at once, and a one-screen summary.

    result = check("my.jsonl")
    result.ok              # False when any row cannot be used
    print(result.summary())
    result.raise_if_problems()

Problems make the file unusable (training refuses it): unreadable bytes, bad JSON,
unknown keys, unknown roles, content that is not a string, conversations without an
answer. Warnings do not (duplicates, empty answers, a trailing user turn) but are worth
a look; `workbench data clean` removes duplicates.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from workbench.data.dedup import example_text, exact_groups
from workbench.data.formats import (FORMAT_KEYS, Example, Row, choose_format, convert_rows,
                                    row_format)
from workbench.data.loading import scan_rows
from workbench.errors import DataError, Problem, Where, in_file_order, raise_if_problems

SHORT_ANSWER = 3  # characters: answers shorter than this are listed as very short
LISTED = 5  # warnings of one kind shown in the summary


@dataclass
class CheckResult:
    path: str
    format: str | None = None
    format_source: str = ""  # "detected from line 1" or "set by data.format"
    rows_read: int = 0  # rows that parsed, good or bad
    row_formats: dict = field(default_factory=dict)  # rows per format by their keys
    valid: list[tuple[Row, Example]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    ignored_keys: list[str] = field(default_factory=list)
    read: list[Row] = field(default_factory=list)  # every row that parsed, good or bad

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def examples(self) -> list[Example]:
        return [example for _, example in self.valid]

    @property
    def rows(self) -> list[Row]:
        return [row for row, _ in self.valid]

    def raise_if_problems(self) -> "CheckResult":
        raise_if_problems(self.problems)
        return self

    def dataset(self):
        """The usable rows as a `datasets.Dataset`, in the file's own columns."""
        from workbench.data.tables import rows_to_dataset

        return rows_to_dataset([row.value for row in self.rows])

    def summary(self, listed: int | None = LISTED) -> str:
        """A screenful: verdict, counts, lengths, then the problems and warnings (at most
        `listed` of each; None: all)."""
        name = Path(self.path).name
        if self.format is None:
            return "\n".join([f"{name}: not usable"] + _listed("problem", self.problems, listed))
        verdict = "usable" if self.ok else "NOT usable"
        lines = [f"{name}: {verdict}. {len(self.valid)} good rows of {self.rows_read} read; "
                 f"format {self.format} ({self.format_source})"]
        if len(self.row_formats) > 1:
            lines.append("  rows by their keys: " + ", ".join(
                f"{fmt} {count}" for fmt, count in sorted(self.row_formats.items())))
        lines += _shape_lines(self.examples)
        if self.ignored_keys:
            lines.append(f"  keys not used for training: {', '.join(self.ignored_keys)}")
        if self.problems:
            lines += _listed("problem", self.problems, listed)
        lines += _listed("warning", self.warnings, listed)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython shows the summary
        printer.text(self.summary())


def check(path: str | Path, fmt: str = "auto", system_prompt: str | None = None) -> CheckResult:
    """Read and check every row of a dataset; never raises for a bad row, only collects.

    A file that cannot be read at all (missing, unsupported type, a JSON document that
    does not parse, empty) comes back with that one problem."""
    if fmt != "auto" and fmt not in FORMAT_KEYS:
        raise DataError(f"unknown format {fmt!r}; use auto, {', '.join(FORMAT_KEYS)}")
    result = CheckResult(str(path))
    try:
        rows, result.problems = scan_rows(path)
    except DataError as exc:  # nothing readable: the one problem, placed at the file
        result.problems = [p if p.where else Problem(p.message, Where(Path(path).name), hint=p.hint)
                           for p in exc.problems]
        return result
    result.rows_read, result.read = len(rows), rows
    result.row_formats = dict(Counter(row_format(row.value) or "unknown" for row in rows))
    if not rows:
        return result
    choice = choose_format(rows, fmt)
    result.format, result.format_source = choice.format, choice.source
    if choice.problem is not None:
        result.problems.append(choice.problem)
        return result
    result.valid, bad = convert_rows(rows, result.format, system_prompt, result.format_source)
    result.problems = in_file_order(result.problems + bad)
    result.warnings = _warnings(result.valid)
    result.ignored_keys = _ignored_keys(result.rows, result.format)
    return result


def to_dataset(source, fmt: str = "auto"):
    """A `datasets.Dataset` from a dataset file (checked first), a check result or a list
    of row dicts. Columns are the union of the rows' keys; a row without a key gets None."""
    from workbench.data.tables import rows_to_dataset

    if isinstance(source, (str, Path)):
        source = check(source, fmt).raise_if_problems()
    if isinstance(source, CheckResult):
        return source.dataset()
    return rows_to_dataset(list(source))


def _warnings(valid: list[tuple[Row, Example]]) -> list[Problem]:
    examples = [example for _, example in valid]
    warnings = []
    for group in exact_groups([example_text(e) for e in examples]):
        first = examples[group[0]].where
        for index in group[1:]:
            warnings.append(Problem(f"exact duplicate of {first} (`workbench data clean` "
                                    "drops it)", examples[index].where))
    for example in examples:
        shortest = short_answer(example)
        if shortest is not None:
            kind = f"a very short answer ({shortest!r})" if shortest else "an empty answer"
            warnings.append(Problem(f"{kind}; the model learns to answer like this",
                                    example.where))
        if example.messages and example.messages[-1]["role"] == "user" and \
                not example.is_preference:  # a preference prompt ends with the user's turn
            warnings.append(Problem("ends with a user turn that has no answer; nothing is "
                                    "trained on it", example.where))
    return in_file_order(warnings)


def short_answer(example: Example, limit: int = SHORT_ANSWER) -> str | None:
    """The example's shortest answer (stripped) when it has fewer than `limit` characters."""
    answers = [answer.strip() for answer in _answers(example)]
    shortest = min(answers, key=len, default=None)
    return shortest if shortest is not None and len(shortest) < limit else None


def _answers(example: Example) -> list[str]:
    if example.chosen is not None:
        return [example.chosen, example.rejected]
    if example.label is not None:
        return [example.completion]
    if example.messages is None:
        return [example.completion] if example.prompt else []  # text rows have no answer
    return [m["content"] for m in example.messages if m["role"] == "assistant"]


def _ignored_keys(rows: list[Row], fmt: str) -> list[str]:
    used = set().union(*FORMAT_KEYS[fmt]) | ({"input"} if fmt == "alpaca" else set())
    seen = Counter(key for row in rows if isinstance(row.value, dict) for key in row.value)
    return sorted(str(key) for key in seen if key not in used)


def _shape_lines(examples: list[Example]) -> list[str]:
    if not examples:
        return []
    sizes = sorted(len(example_text(e)) for e in examples)
    lines = [f"  characters per example: min {sizes[0]}, median {int(statistics.median(sizes))}, "
             f"max {sizes[-1]} (token counts: `workbench data report FILE --model M`)"]
    chats = [e.messages for e in examples if e.messages is not None]
    if chats:
        roles = Counter(m["role"] for turns in chats for m in turns)
        turns = Counter(len(turns) for turns in chats)
        common = ", ".join(f"{n} turns: {c}" for n, c in sorted(turns.items())[:4])
        lines.append(f"  turns: {roles['system']} system, {roles['user']} user, "
                     f"{roles['assistant']} assistant ({common}"
                     f"{', ...' if len(turns) > 4 else ''})")
    return lines


def _listed(kind: str, items: list[Problem], limit: int | None = LISTED) -> list[str]:
    if not items:
        return [f"  no {kind}s"]
    shown = items if limit is None else items[:limit]
    more = [f"  ... and {len(items) - len(shown)} more"] if len(items) > len(shown) else []
    return [f"  {len(items)} {kind}(s):"] + [f"  - {item}" for item in shown] + more
