"""Rows as a `datasets.Dataset`, so a notebook cell can keep filtering and mapping them."""

from __future__ import annotations

from workbench.errors import DataError


def rows_to_dataset(rows: list[dict]):
    """A `datasets.Dataset` from row dicts. Columns are the union of the rows' keys; a row
    without a key gets None."""
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
