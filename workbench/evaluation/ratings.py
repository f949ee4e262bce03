"""Blind A/B ratings: one JSON line per judgement in a run folder's `ratings.jsonl`, and win
rates with 95% intervals.

    {"time": "2026-12-01T21:30:05", "prompt": "Two lattes to Lyon",
     "a": {"model": "tuned", "answer": "..."}, "b": {"model": "base", "answer": "..."},
     "choice": "a", "winner": "tuned", "loser": "base"}

`choice` is what the person pressed: `a`, `b`, `tie` or `both_bad`; which model stood
behind A is recorded beside it, since the order is drawn at random per prompt. A row with
a winner is a preference pair (prompt, chosen = the winner's answer, rejected = the
loser's); `preference_pairs` reads them so, for DPO. Rows are appended and flushed one by
one, so closing the tab loses nothing.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import Problem, Where, raise_if_problems
from workbench.secrets import redact

RATINGS = "ratings.jsonl"
CHOICES = ("a", "b", "tie", "both_bad")
Z95 = 1.959963984540054  # the normal quantile for a two-sided 95% interval


def rating_row(prompt: str, a: tuple[str, str], b: tuple[str, str], choice: str) -> dict:
    """The row for one judgement; a and b are (model label, answer)."""
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {', '.join(CHOICES)}, got {choice!r}")
    winner = {"a": a[0], "b": b[0]}.get(choice)
    loser = {"a": b[0], "b": a[0]}.get(choice)
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "prompt": prompt,
            "a": {"model": a[0], "answer": a[1]}, "b": {"model": b[0], "answer": b[1]},
            "choice": choice, "winner": winner, "loser": loser}


def append_rating(path: Path, row: dict) -> None:
    """Append one row and flush it to disk at once."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(redact(json.dumps(row, ensure_ascii=False)) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_ratings(path: Path) -> list[dict]:
    """The rows of a ratings file; a bad line is named by file and line."""
    path = Path(path)
    if not path.exists():
        return []
    rows, problems = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        where = Where(path.name, "line", number)
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(f"not valid JSON ({exc.msg} at column {exc.colno})", where))
            continue
        if not isinstance(row, dict) or row.get("choice") not in CHOICES or not all(
                isinstance(row.get(side), dict) for side in ("a", "b")):
            problems.append(Problem(f"not a rating row (needs prompt, a, b and a choice of "
                                    f"{', '.join(CHOICES)})", where))
            continue
        rows.append({**row, "where": where})
    raise_if_problems(problems)
    return rows


@dataclass(frozen=True)
class Tally:
    """How `model` did against `other` over the rated prompts."""

    model: str
    other: str
    wins: int = 0
    losses: int = 0
    ties: int = 0
    both_bad: int = 0

    @property
    def count(self) -> int:
        return self.wins + self.losses + self.ties + self.both_bad

    @property
    def decided(self) -> int:
        return self.wins + self.losses

    @property
    def win_rate(self) -> float | None:
        """Wins among the decided comparisons (ties and both-bad left out); None before any."""
        return self.wins / self.decided if self.decided else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.wins, self.decided)

    def describe(self) -> str:
        if not self.decided:
            return (f"{self.model} vs {self.other}: {self.count} rated, none decided yet "
                    f"({self.ties} ties, {self.both_bad} both bad)")
        low, high = self.interval
        return (f"{self.model} preferred {self.win_rate:.0%} of the time (95% interval "
                f"{low:.0%}-{high:.0%}) over {self.other}: {self.wins} wins, {self.losses} "
                f"losses, {self.ties} ties, {self.both_bad} both bad")


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval for a proportion (good at small counts, unlike p +- 2 SE)."""
    if trials <= 0:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def tally(rows: list[dict], model: str, other: str) -> Tally:
    """Count `model` against `other` in rows that compared exactly these two."""
    wins = losses = ties = both_bad = 0
    for row in rows:
        if {row["a"]["model"], row["b"]["model"]} != {model, other}:
            continue
        if row["choice"] == "tie":
            ties += 1
        elif row["choice"] == "both_bad":
            both_bad += 1
        elif row["winner"] == model:
            wins += 1
        else:
            losses += 1
    return Tally(model, other, wins, losses, ties, both_bad)


def preference_pairs(rows: list[dict]) -> list[dict]:
    """{prompt, chosen, rejected} from the rows with a winner (ties and both-bad skipped)."""
    pairs = []
    for row in rows:
        if row["choice"] in ("a", "b"):
            chosen, rejected = (row["a"], row["b"]) if row["choice"] == "a" else (row["b"],
                                                                                  row["a"])
            pairs.append({"prompt": row["prompt"], "chosen": chosen["answer"],
                          "rejected": rejected["answer"]})
    return pairs
