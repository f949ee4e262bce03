"""Rows as a `datasets.Dataset`, so a notebook cell can keep filtering and mapping them."""

from __future__ import annotations

from pathlib import Path

from workbench.errors import DataError


def to_dataset(source, fmt: str = "auto"):
    """A `datasets.Dataset` from a dataset file (checked first), a check result or a list
    of row dicts. Columns are the union of the rows' keys; a row without a key gets None."""
    from workbench.data.checking import CheckResult, check

    if isinstance(source, (str, Path)):
        source = check(source, fmt).raise_if_problems()
    if isinstance(source, CheckResult):
        source = [row.value for row in source.rows]
    return _from_rows(list(source))


def _from_rows(rows: list[dict]):
    from datasets import Dataset

    columns: dict[str, list] = {}
    for row in rows:
        for key in row:
            columns.setdefault(str(key), [])
    for key, values in columns.items():
        values.extend(row.get(key) for row in rows)
    try:
        return Dataset.from_dict(columns)
    except Exception as exc:  # pyarrow refuses a column mixing types, e.g. 1 and "a"
        raise DataError(f"these rows cannot form one table ({type(exc).__name__}: {exc}); "
                        "give every row the same type in each column") from None
