"""The workbench's exceptions, and the problems they carry. Every error a user can cause is
a WorkbenchError.

Each message says what is wrong, the value given, what is allowed and what to do.
Edges (CLI, dashboard, notebook runner) turn these into one clear line; anything
else is a bug and keeps its traceback.

Data and config problems are data, not text: a `Problem` keeps where it is (a `Where`
in a dataset file, or a config key) apart from what is wrong, so the CLI, the
dashboard's form and a data report can each place and sort it without parsing it back.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LISTED = 20  # problems shown in one error message; `workbench data check` lists all


@dataclass(frozen=True)
class Where:
    """A place in a dataset: a file, and the line, row or item in it (none: the whole file).

    `item` is the position inside a JSON array whose items are found by the line they
    start on: `orders.json line 3 (item 2)`."""

    file: str
    unit: str | None = None  # line | row | item
    number: int | None = None
    item: int | None = None

    def __str__(self) -> str:
        return f"{self.file} {self.place}" if self.unit else self.file

    @property
    def place(self) -> str:
        """Where in the file, without its name: `line 7`, `line 3 (item 2)`, `row 4`."""
        if not self.unit:
            return ""
        return f"{self.unit} {self.number}" + (f" (item {self.item})" if self.item else "")

    @property
    def position(self) -> int:
        """For sorting in file order; the file as a whole comes first."""
        return self.number or 0


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: the message, where it is, and what to do.

    A data problem has `where`; a config problem has the `key` of the field it belongs
    to (`train.max_steps`), which the dashboard's form shows it beside. `hint` is the
    fix when it is kept apart from the message. Printed as `<where or key>: <message>;
    <hint>`; a message that already starts with its key (a rule between several fields)
    is not prefixed again."""

    message: str
    where: Where | None = None
    key: str | None = None
    hint: str | None = None

    @property
    def text(self) -> str:
        """The message and its hint, without the place."""
        return f"{self.message}; {self.hint}" if self.hint else self.message

    def __str__(self) -> str:
        if self.where is not None:
            return f"{self.where}: {self.text}"
        if self.key and not self.message.startswith(self.key):
            return f"{self.key}: {self.text}"
        return self.text


def in_file_order(problems: list) -> list:
    """Problems (or anything with a `where`) sorted by their place; stable, so the problems
    of one row keep their order."""
    return sorted(problems, key=lambda p: p.where.position if p.where else 0)


class WorkbenchError(Exception):
    """Base class for errors caused by input, environment or configuration.

    Messages often quote a library's error, which can quote a token: they are redacted."""

    def __init__(self, message: str = ""):
        from workbench.secrets import redact

        super().__init__(redact(str(message)))


class ConfigError(WorkbenchError, ValueError):
    """One or more configuration problems, all reported at once.

    `problems` are `Problem`s with a key; plain strings are accepted and kept as messages."""

    def __init__(self, problems: list):
        self.problems = [p if isinstance(p, Problem) else Problem(str(p)) for p in problems]
        count = len(self.problems)
        heading = "1 problem in the config:" if count == 1 else f"{count} problems in the config:"
        super().__init__("\n".join([heading] + [f"  - {p}" for p in self.problems]))


class DataError(WorkbenchError, ValueError):
    """A dataset that cannot be used; the message names the file and line.

    `DataError(message, where)` is one problem; `DataError.listing(problems)` is a whole
    file's, in one message. Either way `problems` holds them as data."""

    def __init__(self, message: str = "", where: Where | None = None,
                 problems: list[Problem] | None = None):
        self.problems = list(problems) if problems is not None else [Problem(message, where)]
        super().__init__(message if problems is not None else str(self.problems[0]))

    @classmethod
    def listing(cls, problems: list[Problem]) -> "DataError":
        shown = problems[:MAX_LISTED]
        more = len(problems) - len(shown)
        tail = [f"... and {more} more (`workbench data check FILE` lists them all)"] if more else []
        text = "\n".join([f"{len(problems)} problem(s) in the dataset:"]
                         + [f"  - {p}" for p in shown] + tail)
        return cls(text, problems=problems)

    @property
    def message(self) -> str:
        """The first problem's message without its place (what a row-level caller reuses)."""
        return self.problems[0].text


def raise_if_problems(problems: list[Problem]) -> None:
    """Raise one DataError listing the problems, if there are any."""
    if problems:
        raise DataError.listing(problems)


class ModelError(WorkbenchError):
    """A model that cannot be found or loaded."""


class BackendUnavailable(WorkbenchError):
    """A training backend that cannot run here; the message has the install command."""


class RunError(WorkbenchError):
    """A run folder that cannot be used (resume, generate, list)."""


class ExportError(WorkbenchError):
    """An adapter or model that cannot be exported."""


class NotebookError(WorkbenchError):
    """A notebook that cannot be run as asked (missing, not a notebook, bad parameters)."""
