"""Read dataset files into plain rows, naming the file and line of anything unreadable.

Supported: JSONL, a JSON array, CSV, Parquet, and folders written by
`datasets.Dataset.save_to_disk`. Each row comes back with a `where` label such as
`data.jsonl line 7` so every later error can point at it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import DataError

SUPPORTED = ".jsonl, .json, .csv, .parquet, or a folder saved with datasets' save_to_disk"
MAX_LISTED = 20


@dataclass(frozen=True)
class Row:
    where: str
    value: object


def read_rows(path: str | Path) -> list[Row]:
    """All rows of a dataset file or folder. Raises DataError naming every bad line."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"dataset {str(path)!r} not found; check data.path (relative paths "
                        f"start at the folder you run from: {Path.cwd()})")
    if path.is_dir():
        rows = _read_datasets_folder(path)
    else:
        reader = READERS.get(path.suffix.lower())
        if reader is None:
            raise DataError(f"{path.name}: unsupported file type {path.suffix!r}; use {SUPPORTED}")
        rows = reader(path)
    if not rows:
        raise DataError(f"{path.name} has no rows; add examples to it")
    return rows


def _text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")  # tolerate a UTF-8 byte-order mark
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path.name} line {line}: bytes that are not UTF-8 (at byte "
                        f"{exc.start}); save the file as UTF-8") from None


def _read_jsonl(path: Path) -> list[Row]:
    rows, problems = [], []
    # split on "\n" only: splitlines() would also break inside a JSON string at U+2028,
    # \x1c and friends, which JSON allows unescaped, and shift every later line number.
    for number, line in enumerate(_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append(Row(f"{path.name} line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(f"{path.name} line {number}: not valid JSON ({exc.msg} at column "
                            f"{exc.colno}); fix or delete the line")
    raise_if_problems(problems)
    return rows


def _read_json(path: Path) -> list[Row]:
    text = _text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.lineno > 1 or text.lstrip().startswith("{"):
            hint = " (one JSON object per line? name the file .jsonl)" if exc.msg.startswith(
                "Extra data") else ""
            raise DataError(f"{path.name} line {exc.lineno}: not valid JSON ({exc.msg} at "
                            f"column {exc.colno}){hint}") from None
        raise DataError(f"{path.name}: not valid JSON ({exc.msg})") from None
    if (isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list)
            and next(iter(data)) not in ("messages", "conversations")):  # a single chat example
        data = next(iter(data.values()))  # {"train": [...]} style wrappers
    elif isinstance(data, dict) and ({"messages", "conversations"} & set(data)):
        data = [data]  # a file holding one chat example
    if not isinstance(data, list):
        raise DataError(f"{path.name}: expected a JSON array of examples, got a "
                        f"{type(data).__name__}")
    return [Row(f"{path.name} item {i}", item) for i, item in enumerate(data, start=1)]


def _read_csv(path: Path) -> list[Row]:
    # newline="" lets the csv module see quoted newlines inside cells itself.
    reader = csv.DictReader(io.StringIO(_text(path), newline=""))
    rows, problems = [], []
    for row in reader:
        where = f"{path.name} line {reader.line_num}"  # the file line where the row ends
        if None in row:  # DictReader files surplus cells under the key None
            problems.append(f"{where}: {len(reader.fieldnames) + len(row[None])} cells but the "
                            f"header names {len(reader.fieldnames)} columns; quote cells that "
                            "contain commas")
            continue
        rows.append(Row(where, dict(row)))
    raise_if_problems(problems)
    return rows


def _read_parquet(path: Path) -> list[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise DataError(f"{path.name}: not a readable Parquet file ({exc})") from None
    return [Row(f"{path.name} row {i}", row) for i, row in enumerate(table.to_pylist(), 1)]


def _read_datasets_folder(path: Path) -> list[Row]:
    if not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists():
        raise DataError(f"{path} is a folder but not a saved `datasets` dataset; use {SUPPORTED}")
    from datasets import load_from_disk

    data = load_from_disk(str(path))
    if hasattr(data, "keys"):  # a DatasetDict: take its train split
        if "train" not in data:
            raise DataError(f"{path}: a DatasetDict without a 'train' split (has "
                            f"{', '.join(data.keys())}); save the split you want to train on")
        data = data["train"]
    return [Row(f"{path.name} row {i}", row) for i, row in enumerate(data, start=1)]


READERS = {".jsonl": _read_jsonl, ".ndjson": _read_jsonl, ".json": _read_json,
           ".csv": _read_csv, ".parquet": _read_parquet}


def raise_if_problems(problems: list[str]) -> None:
    if not problems:
        return
    shown = problems[:MAX_LISTED]
    more = len(problems) - len(shown)
    tail = [f"... and {more} more"] if more else []
    raise DataError("\n".join([f"{len(problems)} problem(s) in the dataset:"]
                              + [f"  - {p}" for p in shown] + tail))
