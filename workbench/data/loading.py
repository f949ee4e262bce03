"""Read dataset files into plain rows, naming the file and line of anything unreadable.

Supported: JSONL, a JSON array, CSV, Parquet, and folders written by
`datasets.Dataset.save_to_disk`. Each row comes back with a `where` label such as
`data.jsonl line 7` so every later error can point at it.

`scan_rows` keeps going past bad lines and returns every problem with the rows it could
read (what `workbench data check` lists); `read_rows` raises on the first file with any.
A problem that leaves nothing to read (missing file, unsupported type, a JSON document
that does not parse) is raised at once either way.
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


@dataclass(frozen=True)
class Problem:
    """Something wrong with one line or row (or the whole file): where, what, what to do."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def read_rows(path: str | Path) -> list[Row]:
    """All rows of a dataset file or folder. Raises DataError naming every bad line."""
    rows, problems = scan_rows(path)
    raise_if_problems(problems)
    return rows


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
            raise DataError(f"{path.name}: unsupported file type {path.suffix!r}; use {SUPPORTED}")
        rows, problems = reader(path)
    if not rows and not problems:
        raise DataError(f"{path.name}: the file has no rows; add examples to it")
    return rows, problems


def _decode(path: Path) -> tuple[str, list[Problem], set[int]]:
    """The file's text, a problem for every line holding bytes that are not UTF-8 (decoded
    as U+FFFD so the rest can still be checked), and those line numbers."""
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path.name}: the file is UTF-16 (it starts with a UTF-16 byte-order "
                        "mark); save it as UTF-8")
    if not raw.removeprefix(b"\xef\xbb\xbf").strip():
        raise DataError(f"{path.name}: the file has no rows (it is empty); add examples to it")
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
                f"{path.name} line {number}",
                f"bytes that are not UTF-8 ({line[exc.start:exc.start + 4]!r} at column "
                f"{exc.start + 1}); save the file as UTF-8 (it may be Latin-1 or Windows-1252)"))
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
            rows.append(Row(f"{path.name} line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(Problem(f"{path.name} line {number}",
                                    f"not valid JSON ({exc.msg} at column {exc.colno}); fix "
                                    "or delete the line"))
    if not rows and text.lstrip().startswith("["):  # a JSON array in a .jsonl file
        return [], [Problem(path.name, "holds a JSON array, not one JSON object per line; "
                                       f"rename it to {path.stem}.json")]
    return rows, sorted(problems, key=_line_order)


def _line_order(problem: Problem) -> int:
    return int(problem.where.rsplit(" ", 1)[-1])


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
        raise DataError(f"{path.name} line {exc.lineno}: not valid JSON ({exc.msg} at "
                        f"column {exc.colno}){hint}") from None
    if (isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list)
            and next(iter(data)) not in ("messages", "conversations")):  # a single chat example
        data = next(iter(data.values()))  # {"train": [...]} style wrappers
    elif isinstance(data, dict) and ({"messages", "conversations"} & set(data)):
        data = [data]  # a file holding one chat example
    if not isinstance(data, list):
        raise DataError(f"{path.name}: expected a JSON array of examples, got "
                        f"{json_type(data)}")
    return [Row(f"{path.name} item {i}", item) for i, item in enumerate(data, start=1)], []


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
            rows.append(Row(f"{name} line {line} (item {len(rows) + 1})", value))
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
        where = f"{path.name} line {reader.line_num}"  # the file line where the row ends
        lines, first = set(range(first, reader.line_num + 1)), reader.line_num + 1
        if lines & bad_lines:
            continue  # already named as bytes that are not UTF-8
        if None in row:  # DictReader files surplus cells under the key None
            problems.append(Problem(where, f"{len(reader.fieldnames) + len(row[None])} cells "
                                           f"but the header names {len(reader.fieldnames)} "
                                           "columns; quote cells that contain commas"))
            continue
        if None in row.values():  # and fills missing cells with None
            cells = sum(value is not None for value in row.values())
            problems.append(Problem(where, f"only {cells} of the {len(reader.fieldnames)} "
                                           "cells the header names; a quote may be missing or "
                                           "misplaced"))
            continue
        rows.append(Row(where, dict(row)))
    return rows, sorted(problems, key=_line_order)


def _read_parquet(path: Path) -> tuple[list[Row], list[Problem]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise DataError(f"{path.name}: not a readable Parquet file ({exc})") from None
    return [Row(f"{path.name} row {i}", row) for i, row in enumerate(table.to_pylist(), 1)], []


def _read_datasets_folder(path: Path) -> tuple[list[Row], list[Problem]]:
    if not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists():
        raise DataError(f"{path.name}: a folder, but not one saved by `datasets` (no "
                        f"dataset_info.json); use {SUPPORTED}")
    from datasets import load_from_disk

    data = load_from_disk(str(path))
    if hasattr(data, "keys"):  # a DatasetDict: take its train split
        if "train" not in data:
            raise DataError(f"{path}: a DatasetDict without a 'train' split (has "
                            f"{', '.join(data.keys())}); save the split you want to train on")
        data = data["train"]
    return [Row(f"{path.name} row {i}", row) for i, row in enumerate(data, start=1)], []


READERS = {".jsonl": _read_jsonl, ".ndjson": _read_jsonl, ".json": _read_json,
           ".csv": _read_csv, ".parquet": _read_parquet}


def raise_if_problems(problems: list) -> None:
    """Raise one DataError listing the problems (strings or Problems), if there are any."""
    if not problems:
        return
    shown = problems[:MAX_LISTED]
    more = len(problems) - len(shown)
    tail = [f"... and {more} more (`workbench data check FILE` lists them all)"] if more else []
    raise DataError("\n".join([f"{len(problems)} problem(s) in the dataset:"]
                              + [f"  - {p}" for p in shown] + tail))


JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "true/false",
              int: "a number", float: "a number", type(None): "null"}


def json_type(value) -> str:
    """How a JSON user would name the value's type (`an object`, `null`, ...)."""
    return JSON_TYPES.get(type(value), type(value).__name__)
