"""The forgetting check's text: general paragraphs whose loss should not rise much when a
model is tuned for something else (PEFT's forgetting benchmark measures the same, on a
Wikipedia subset).

`eval.general_text: builtin` is the 30 paragraphs shipped here (CC0, see
GENERAL_TEXT_LICENSE.md); a path reads your own file of {"text": ...} rows (any format
`workbench data check` reads); null turns the check off.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUILTIN = "builtin"
FILE = "general_text.jsonl"
# A rise of the general-text loss above this share is flagged in the dashboard and summary.
FORGETTING_FLAG = 0.10


def builtin_path() -> Path:
    return Path(str(resources.files("workbench.evaluation").joinpath(FILE)))


def general_texts(source: str | None) -> list[str]:
    """The texts of the forgetting check ([] when it is off). Raises DataError naming the
    file and line of a bad row."""
    from workbench.data.splits import load_examples

    if not source:
        return []
    path = builtin_path() if source == BUILTIN else Path(source)
    _, examples = load_examples(str(path), "text")
    return [example.completion for example in examples]


def relative_change(base: float, tuned: float) -> float:
    return (tuned - base) / base if base else 0.0


def flagged(change: float | None) -> bool:
    return change is not None and change > FORGETTING_FLAG
