"""Read dataset files into plain rows, naming the file and line of anything unreadable.

Supported: JSONL, a JSON array, CSV, Parquet, and folders written by
`datasets.Dataset.save_to_disk`. Each row comes back with a `where` label such as
`Where` (`data.jsonl line 7`) so every later error can point at it.

`scan_rows` keeps going past bad lines and returns every problem with the rows it could
read (what `workbench data check` lists). A problem that leaves nothing to read (missing
file, unsupported type, a JSON document that does not parse) is raised at once.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import DataError, Problem, Where, in_file_order

SUPPORTED = ".jsonl, .json, .csv, .parquet, or a folder saved with datasets' save_to_disk"


@dataclass(frozen=True)
class Row:
    where: Where
    value: object


def scan_rows(path: str | Path) -> tuple[list[Row], list[Problem]]:
    """The rows that could be read and a problem for each line that could not.

    Raises DataError only when nothing at all can be read."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"dataset {str(path)!r} not found; check data.path (relative paths "
                        f"start at the folder you run from: {Path.cwd()})")
    if path.is_dir():
        rows, problems = _read_datasets_folder(path)
    else:
        reader = READERS.get(path.suffix.lower())
        if reader is None:
            raise DataError(f"unsupported file type {path.suffix!r}; use {SUPPORTED}",
                            Where(path.name))
        rows, problems = reader(path)
    if not rows and not problems:
        raise DataError("the file has no rows; add examples to it", Where(path.name))
    return rows, problems


def _decode(path: Path) -> tuple[str, list[Problem], set[int]]:
    """The file's text, a problem for every line holding bytes that are not UTF-8 (decoded
    as U+FFFD so the rest can still be checked), and those line numbers."""
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError("the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it "
                        "as UTF-8", Where(path.name))
    if not raw.removeprefix(b"\xef\xbb\xbf").strip():
        raise DataError("the file has no rows (it is empty); add examples to it", Where(path.name))
    try:
        return raw.decode("utf-8-sig"), [], set()  # tolerate a UTF-8 byte-order mark
    except UnicodeDecodeError:
        pass
    problems, bad = [], set()
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.add(number)
            problems.append(Problem(
                f"bytes that are not UTF-8 ({line[exc.start:exc.start + 4]!r} at column "
                f"{exc.start + 1}); save the file as UTF-8 (it may be Latin-1 or Windows-1252)",
                Where(path.name, "line", number)))
    return raw.decode("utf-8-sig", errors="replace"), problems, bad


def _read_jsonl(path: Path) -> tuple[list[Row], list[Problem]]:
    text, problems, bad_lines = _decode(path)
    rows = []
    # split on "\n" only: splitlines() would also break inside a JSON string at U+2028,
    # \x1c and friends, which JSON allows unescaped, and shift every later line number.
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip() or number in bad_lines:
            continue
        try:
            rows.append(Row(Where(path.name, "line", number), json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(Problem(f"not valid JSON ({exc.msg} at column {exc.colno}); fix "
                                    "or delete the line", Where(path.name, "line", number)))
    if not rows and text.lstrip().startswith("["):  # a JSON array in a .jsonl file
        return [], [Problem("holds a JSON array, not one JSON object per line; rename it to "
                            f"{path.stem}.json", Where(path.name))]
    return rows, in_file_order(problems)


def _read_json(path: Path) -> tuple[list[Row], list[Problem]]:
    text, problems, _ = _decode(path)
    if problems:  # where items begin is unknown until the text parses: report the bytes
        return [], problems
    located = _array_items(path.name, text)
    if located is not None:
        return located, []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (one JSON object per line? name the file .jsonl)" if exc.msg.startswith(
            "Extra data") else ""
        raise DataError(f"not valid JSON ({exc.msg} at column {exc.colno}){hint}",
                        Where(path.name, "line", exc.lineno)) from None
    if (isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list)
            and next(iter(data)) not in ("messages", "conversations")):  # a single chat example
        data = next(iter(data.values()))  # {"train": [...]} style wrappers
    elif isinstance(data, dict) and ({"messages", "conversations"} & set(data)):
        data = [data]  # a file holding one chat example
    if not isinstance(data, list):
        raise DataError(f"expected a JSON array of examples, got {json_type(data)}",
                        Where(path.name))
    return [Row(Where(path.name, "item", i), item) for i, item in enumerate(data, start=1)], []


def _array_items(name: str, text: str) -> list[Row] | None:
    """The items of a top-level JSON array, each labelled with the line it starts on; None
    when the text is not a well-formed array (json.loads then names the error)."""
    decoder = json.JSONDecoder()
    index = _skip_space(text, 0)
    if not text.startswith("[", index):
        return None
    rows, index, line, counted = [], index + 1, 1, 0
    try:
        while True:
            start = _skip_space(text, index)
            if text.startswith("]", start) and not rows:
                return rows if not text[start + 1:].strip() else None
            value, end = decoder.raw_decode(text, start)
            line, counted = line + text.count("\n", counted, start), start
            rows.append(Row(Where(name, "line", line, item=len(rows) + 1), value))
            index = _skip_space(text, end)
            if text.startswith("]", index):
                return rows if not text[index + 1:].strip() else None
            if not text.startswith(",", index):
                return None
            index += 1
    except json.JSONDecodeError:
        return None


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _read_csv(path: Path) -> tuple[list[Row], list[Problem]]:
    text, problems, bad_lines = _decode(path)
    # newline="" lets the csv module see quoted newlines inside cells itself.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows, first = [], 2
    for row in reader:
        where = Where(path.name, "line", reader.line_num)  # the file line where the row ends
        lines, first = set(range(first, reader.line_num + 1)), reader.line_num + 1
        if lines & bad_lines:
            continue  # already named as bytes that are not UTF-8
        if None in row:  # DictReader files surplus cells under the key None
            problems.append(Problem(f"{len(reader.fieldnames) + len(row[None])} cells but the "
                                    f"header names {len(reader.fieldnames)} columns; quote "
                                    "cells that contain commas", where))
            continue
        if None in row.values():  # and fills missing cells with None
            cells = sum(value is not None for value in row.values())
            problems.append(Problem(f"only {cells} of the {len(reader.fieldnames)} cells the "
                                    "header names; a quote may be missing or misplaced", where))
            continue
        rows.append(Row(where, dict(row)))
    return rows, in_file_order(problems)


def _read_parquet(path: Path) -> tuple[list[Row], list[Problem]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise DataError(f"not a readable Parquet file ({exc})", Where(path.name)) from None
    return [Row(Where(path.name, "row", i), row) for i, row in enumerate(table.to_pylist(), 1)], []


def _read_datasets_folder(path: Path) -> tuple[list[Row], list[Problem]]:
    if not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists():
        raise DataError(f"a folder, but not one saved by `datasets` (no dataset_info.json); use "
                        f"{SUPPORTED}", Where(path.name))
    from datasets import load_from_disk

    data = load_from_disk(str(path))
    if hasattr(data, "keys"):  # a DatasetDict: take its train split
        if "train" not in data:
            raise DataError(f"a DatasetDict without a 'train' split (has "
                            f"{', '.join(data.keys())}); save the split you want to train on",
                            Where(path.name))
        data = data["train"]
    return [Row(Where(path.name, "row", i), row) for i, row in enumerate(data, start=1)], []


READERS = {".jsonl": _read_jsonl, ".ndjson": _read_jsonl, ".json": _read_json,
           ".csv": _read_csv, ".parquet": _read_parquet}


JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "true/false",
              int: "a number", float: "a number", type(None): "null"}


def json_type(value) -> str:
    """How a JSON user would name the value's type (`an object`, `null`, ...)."""
    return JSON_TYPES.get(type(value), type(value).__name__)
