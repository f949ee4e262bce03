"""Held-out examples as cases to answer and score: the conversation up to the last answer
(or the raw prompt) and that answer as the reference.

    cases = cases_from(examples, limit=32)
    cases[0].prompt, cases[0].reference, cases[0].messages
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.data.formats import Example
from workbench.errors import Where


@dataclass(frozen=True)
class Case:
    where: Where
    prompt: str  # the last user turn (chat) or the raw prompt
    reference: str  # the example's own answer
    messages: tuple[dict, ...] | None = None  # chat: the turns before the answer


def case_of(example: Example) -> Case | None:
    """The case of one example; None when it has no answer to compare with (text rows, and
    answers marked bad). A preference pair's reference is its chosen answer."""
    if example.is_prompt_only:  # a prompts row: its `answer` column is the reference
        reference = (example.columns or {}).get("answer")
        if not isinstance(reference, str):
            return None
        user = next((m["content"] for m in reversed(example.messages) if m["role"] == "user"), "")
        return Case(example.where, user, reference, tuple(example.messages))
    if example.is_preference:
        reference = example.chosen if example.chosen is not None else (
            example.completion if example.label else None)
        if reference is None or example.choice in ("tie", "both_bad"):
            return None
        user = next((m["content"] for m in reversed(example.messages) if m["role"] == "user"), "")
        return Case(example.where, user, reference, tuple(example.messages))
    if example.messages is not None:
        turns = list(example.messages)
        last = max((i for i, m in enumerate(turns) if m["role"] == "assistant"), default=None)
        if last is None:
            return None
        before = tuple(turns[:last])
        user = next((m["content"] for m in reversed(before) if m["role"] == "user"), "")
        return Case(example.where, user, turns[last]["content"], before)
    if not example.prompt:
        return None
    return Case(example.where, example.prompt, example.completion)


def cases_from(examples: list[Example], limit: int | None = None) -> list[Case]:
    found = [case for case in map(case_of, examples) if case is not None]
    return found[:limit] if limit else found
