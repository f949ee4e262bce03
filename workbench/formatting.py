"""How a value is shown in a table cell, the same in the dashboard, a sweep's results.md
and the compare notebook: a missing value is a dash, a number keeps four significant
digits, a list shows one item per line."""

from __future__ import annotations

MISSING = "–"


def format_value(value) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "\n".join(str(item) for item in value) or "[]"
    return str(value)
