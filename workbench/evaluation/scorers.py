"""Scorers: how right an answer is, as a number from 0 to 1.

A scorer is `f(prompt, answer, reference) -> float`: the user's prompt, the model's
answer, and the held-out example's own answer. `eval.scorers` names them:

    exact          the answer equals the reference (spacing at the ends ignored)
    json_equal     both parse as JSON and are equal (key order and spacing ignored)
    json_valid     the answer parses as JSON
    contains       the reference appears in the answer (case ignored)
    regex:PATTERN  the answer matches the regular expression PATTERN anywhere
    max_words:N    the answer has at most N words
    module:function  your own function, imported from an importable module

In a notebook a plain Python function works too (`Run(config, scorers=[fn])`). Every
scorer is tried on the first cases before anything trains (`check_scorers`), so one
that raises or returns something other than a number is named at once, with the
example and what it returned.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from dataclasses import dataclass
from typing import Callable

from workbench.errors import ConfigError, Problem

KEY = "eval.scorers"
CHECKED_CASES = 3  # cases each scorer is tried on before training


@dataclass(frozen=True)
class Scorer:
    name: str  # the metric is score/<name>
    function: Callable[[str, str, str], float]
    source: str  # builtin, module:function, or callable


def exact(prompt: str, answer: str, reference: str) -> float:
    return float(answer.strip() == reference.strip())


def _json(text: str):
    return json.loads(text.strip())


def json_equal(prompt: str, answer: str, reference: str) -> float:
    try:
        return float(_json(answer) == _json(reference))
    except ValueError:  # json.JSONDecodeError is a ValueError
        return 0.0


def json_valid(prompt: str, answer: str, reference: str) -> float:
    try:
        _json(answer)
    except ValueError:
        return 0.0
    return 1.0


def contains(prompt: str, answer: str, reference: str) -> float:
    return float(reference.strip().lower() in answer.lower())


BUILTINS = {"exact": exact, "json_equal": json_equal, "json_valid": json_valid,
            "contains": contains}
PARAMETRIC = ("regex:PATTERN", "max_words:N")
ALLOWED = ", ".join(list(BUILTINS) + list(PARAMETRIC) + ["module:function"])


def resolve(spec) -> Scorer:
    """A Scorer from a name in eval.scorers or a callable; ConfigError when it is unknown."""
    if callable(spec):
        return Scorer(getattr(spec, "__name__", "scorer"), spec, "callable")
    if not isinstance(spec, str) or not spec.strip():
        raise _refused(f"{spec!r} is not a scorer name; use {ALLOWED}")
    if spec in BUILTINS:
        return Scorer(spec, BUILTINS[spec], "builtin")
    kind, _, argument = spec.partition(":")
    if kind == "regex":
        return Scorer(spec, _regex(spec, argument), "builtin")
    if kind == "max_words":
        return Scorer(spec, _max_words(spec, argument), "builtin")
    if argument:
        return Scorer(argument, _imported(spec, kind, argument), spec)
    raise _refused(f"unknown scorer {spec!r}; use {ALLOWED}")


def resolve_all(specs) -> list[Scorer]:
    """Every scorer, each problem reported at once; names must be unique."""
    scorers, problems = [], []
    for spec in specs:
        try:
            scorers.append(resolve(spec))
        except ConfigError as exc:
            problems += exc.problems
    names = [s.name for s in scorers]
    problems += [Problem(f"two scorers are named {name!r}; each needs its own name (score/"
                         f"{name})", key=KEY) for name in sorted({n for n in names
                                                                 if names.count(n) > 1})]
    if problems:
        raise ConfigError(problems)
    return scorers


def _regex(spec: str, pattern: str):
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise _refused(f"{spec!r}: the pattern does not compile ({exc})") from None
    if not pattern:
        raise _refused(f"{spec!r}: give a pattern after `regex:`, e.g. regex:^\\{{")

    def matches(prompt: str, answer: str, reference: str) -> float:
        return float(compiled.search(answer) is not None)

    return matches


def _max_words(spec: str, number: str):
    if not number.isdigit() or int(number) < 1:
        raise _refused(f"{spec!r}: give a whole number of words after `max_words:`, e.g. "
                       "max_words:25")
    limit = int(number)

    def short_enough(prompt: str, answer: str, reference: str) -> float:
        return float(len(answer.split()) <= limit)

    return short_enough


def _imported(spec: str, module: str, name: str):
    try:
        found = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise _refused(f"{spec!r}: cannot import module {module!r} ({exc}); it must be "
                       "importable from the folder you run in, or installed") from None
    except AttributeError:
        raise _refused(f"{spec!r}: module {module!r} has no {name!r}") from None
    if not callable(found):
        raise _refused(f"{spec!r}: {module}.{name} is not a function")
    return found


def _refused(message: str) -> ConfigError:
    return ConfigError([Problem(message, key=KEY)])


def score_value(scorer: Scorer, prompt: str, answer: str, reference: str, where="") -> float:
    """One score, checked: a number from 0 to 1 (a bool counts). Raises ConfigError naming
    the scorer, the example and what it returned or raised."""
    label = f"scorer {scorer.name!r}" + (f" ({scorer.source})" if scorer.source != "builtin"
                                        else "")
    at = f" on {where}" if where else ""
    try:
        value = scorer.function(prompt, answer, reference)
    except Exception as exc:  # a user's function can raise anything; name it and stop
        raise ConfigError([Problem(f"{label} raised {type(exc).__name__}: {exc}{at} (answer "
                                   f"{_short(answer)}); fix the function", key=KEY)]) from None
    number = float(value) if isinstance(value, (bool, int, float)) else None
    if number is None or math.isnan(number) or not 0 <= number <= 1:
        raise ConfigError([Problem(f"{label} returned {_short(value)}{at}; a scorer returns a "
                                   "number from 0 to 1", key=KEY)])
    return number


def check_scorers(scorers: list[Scorer], cases) -> None:
    """Try every scorer on the first cases, with the reference as the answer and with an
    empty answer, before anything trains."""
    for case in list(cases)[:CHECKED_CASES]:
        for scorer in scorers:
            for answer in (case.reference, ""):
                score_value(scorer, case.prompt, answer, case.reference, case.where)


def mean_scores(scorers: list[Scorer], cases, answers: list[str]) -> tuple[dict, list[dict]]:
    """({name: mean}, per case {name: score}) for these answers."""
    per_case = [{s.name: score_value(s, c.prompt, a, c.reference, c.where) for s in scorers}
                for c, a in zip(cases, answers)]
    means = {s.name: sum(row[s.name] for row in per_case) / max(len(per_case), 1)
             for s in scorers}
    return means, per_case


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
