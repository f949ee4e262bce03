"""Run a notebook headless with papermill and file the executed copy with its runs.

    run = run_notebook("notebooks/01-quickstart.ipynb", {"max_steps": 20})
    run.run_dirs      # the run folders the notebook made, each now holding notebook.ipynb

The kernel is told it is headless (WORKBENCH_INTERACTIVE=0): a dashboard's `start()`
then blocks until training ends, instead of returning at once and being shut down
with the kernel (a kernel started by `workbench notebook run` has no "papermill" in
its parent's command line, so the dashboard could not guess).

Run folders are the new folders under the notebook's `runs_dir` (the parameter given,
else the notebook's own default, else `runs`), relative to the kernel's working
directory. Another process writing runs into the same folder at the same moment would
be counted too, which is why a sweep gives every grid point a folder of its own.

A failing cell raises `NotebookFailed` naming the cell (its place in the notebook, its
first line) and the error; the executed copy, with papermill's error banner at the
top, is filed all the same. Executed copies are redacted (`workbench.secrets`) before
they are written anywhere.
"""

from __future__ import annotations

import ast
import json
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import NotebookError, WorkbenchError
from workbench.secrets import redact

EXECUTED_NAME = "notebook.ipynb"
KERNEL = "python3"
RUN_MARKER = "config.yaml"  # every run folder has one from its first moment
BINARY_MIMES = ("image/png", "image/jpeg", "image/gif", "image/webp")  # base64, no text


class NotebookFailed(NotebookError):
    """A cell raised while the notebook ran headless."""

    def __init__(self, notebook: str, failure: dict, executed: list[str] = ()):
        self.notebook, self.failure, self.executed = notebook, failure, list(executed)
        where = f"; executed copy: {self.executed[0]}" if self.executed else ""
        super().__init__(f"{notebook} failed in {describe_failure(failure)}{where}")


def describe_failure(failure: dict) -> str:
    """`cell 7 (In [5]) `dash.start()`: ValueError: ...` from a failure record."""
    count = f" (In [{failure['exec_count']}])" if failure.get("exec_count") else ""
    line = f" `{failure['first_line']}`" if failure.get("first_line") else ""
    return f"cell {failure['cell']}{count}{line}: {failure['error']}"


@dataclass
class NotebookRun:
    """What one headless execution did. `failure` is None, or a dict with the cell number
    (1-based, in the notebook as written), its execution count, first line and error."""

    notebook: Path
    parameters: dict
    runs_dir: Path
    run_dirs: list[Path] = field(default_factory=list)
    executed: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    failure: dict | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def raise_for_failure(self) -> "NotebookRun":
        if self.failure is not None:
            raise NotebookFailed(str(self.notebook), self.failure, [str(p) for p in self.executed])
        return self


def run_notebook(notebook: str | Path, parameters: dict | None = None, **options) -> NotebookRun:
    """Execute a notebook headless; raise NotebookFailed naming the failing cell.
    Options are those of `execute`."""
    return execute(notebook, parameters, **options).raise_for_failure()


def execute(notebook: str | Path, parameters: dict | None = None, *, cwd: str | Path | None = None,
            output: str | Path | None = None, kernel: str = KERNEL, stdout=None, stderr=None,
            timeout: float | None = None) -> NotebookRun:
    """Execute a notebook headless with papermill and file the executed copy.

    The copy goes into every run folder the notebook made (as notebook.ipynb), to
    `output` when given, and to `<runs_dir>/<notebook>-<time>.ipynb` when the notebook
    made no run. A failing cell is recorded in the result, not raised. `stdout` and
    `stderr` (open files) receive the cells' printed output as it comes; `timeout` caps
    each cell in seconds."""
    path = check_notebook(notebook)
    parameters = dict(parameters or {})
    workdir = Path(cwd) if cwd is not None else Path.cwd()
    runs_dir = workdir / str(parameters.get("runs_dir") or notebook_defaults(path).get("runs_dir")
                             or "runs")
    before = existing_folders(runs_dir)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="workbench-notebook-") as scratch:
        executed = Path(scratch) / path.name
        failure = _papermill(path, executed, parameters, workdir, kernel, stdout, stderr, timeout)
        seconds = time.perf_counter() - began
        run_dirs = new_run_folders(runs_dir, before)
        targets = [run_dir / EXECUTED_NAME for run_dir in run_dirs]
        if output is not None:
            targets.append(Path(output))
        if not targets:
            targets.append(runs_dir / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}.ipynb")
        text = redacted_notebook(executed) if executed.exists() else None
        written = []
        for target in targets:
            if text is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
                written.append(target)
    return NotebookRun(path, parameters, runs_dir, run_dirs, written, round(seconds, 2), failure)


def check_notebook(notebook: str | Path) -> Path:
    path = Path(notebook)
    if not path.is_file():
        raise NotebookError(f"notebook {str(path)!r} not found; give the path of an .ipynb file, "
                            "e.g. notebooks/01-quickstart.ipynb")
    if path.suffix != ".ipynb":
        raise NotebookError(f"{path} is not a notebook (.ipynb); papermill runs Jupyter "
                            "notebooks only")
    return path


def notebook_defaults(path: Path) -> dict:
    """The notebook's parameters and their default values (as written in its `parameters`
    cell; a default that is not a plain literal is kept as its source text)."""
    _require_papermill()
    from papermill import inspect_notebook

    try:
        found = inspect_notebook(str(path))
    except Exception as exc:  # malformed JSON, wrong nbformat: say which file
        raise NotebookError(f"{path} cannot be read as a notebook: {exc}") from None
    defaults = {}
    for name, info in found.items():
        try:
            defaults[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            defaults[name] = info["default"]
    return defaults


def existing_folders(runs_dir: Path) -> set[str]:
    return {p.name for p in runs_dir.iterdir() if p.is_dir()} if runs_dir.is_dir() else set()


def new_run_folders(runs_dir: Path, before: set[str]) -> list[Path]:
    """Run folders created since `before`, oldest first."""
    if not runs_dir.is_dir():
        return []
    made = [p for p in runs_dir.iterdir()
            if p.is_dir() and p.name not in before and (p / RUN_MARKER).is_file()]
    return sorted(made, key=lambda p: ((p / RUN_MARKER).stat().st_mtime, p.name))


def parse_value(text: str):
    """A command-line value typed the way `papermill -p` types it: True / False / None,
    then int, then float, else the string itself."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


# -- papermill ---------------------------------------------------------------------------

def _require_papermill() -> None:
    try:
        import papermill  # noqa: F401
    except ImportError:
        raise NotebookError("running notebooks headless needs papermill: "
                            "pip install papermill (the workbench's own install includes "
                            "it)") from None


def _papermill(path: Path, executed: Path, parameters: dict, cwd: Path, kernel: str, stdout,
               stderr, timeout) -> dict | None:
    """Execute; return None, or the failure record of the cell that raised."""
    _require_papermill()
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        with headless_environment():
            papermill.execute_notebook(str(path), str(executed), parameters=parameters,
                                       kernel_name=kernel, cwd=str(cwd), progress_bar=False,
                                       stdout_file=stdout, stderr_file=stderr,
                                       execution_timeout=timeout)
    except PapermillExecutionError as exc:
        return _cell_failure(executed, exc.cell_index, exc.exec_count, exc.source,
                             f"{exc.ename}: {exc.evalue}" if exc.evalue else exc.ename)
    except (KeyboardInterrupt, WorkbenchError):
        raise
    except Exception as exc:  # the kernel died (often out of memory) or a cell timed out
        index, cell = _last_started_cell(executed)
        message = f"{type(exc).__name__}: {exc}".strip()
        if "dead" in type(exc).__name__.lower() or "died" in str(exc).lower():
            message += " (the kernel process ended: running out of memory is the usual cause)"
        return _cell_failure(executed, index, (cell or {}).get("execution_count"),
                             (cell or {}).get("source", ""), message)
    return None


@contextmanager
def headless_environment():
    """The kernel inherits this process's environment: tell it nobody is watching."""
    saved = os.environ.get("WORKBENCH_INTERACTIVE")
    os.environ["WORKBENCH_INTERACTIVE"] = "0"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("WORKBENCH_INTERACTIVE", None)
        else:
            os.environ["WORKBENCH_INTERACTIVE"] = saved


def _cell_failure(executed: Path, index: int | None, exec_count, source: str, error: str) -> dict:
    """Name the failing cell by its place in the notebook as written (1-based): the
    executed copy has papermill's injected-parameters cell, and its error markers, extra."""
    cells = _cells(executed)
    position = None
    if index is not None:
        injected = [i for i, c in enumerate(cells) if "injected-parameters" in _tags(c)]
        position = index + 1 - sum(1 for i in injected if i < index)
    text = "".join(source) if isinstance(source, list) else str(source or "")
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first_line) > 80:
        first_line = first_line[:77] + "..."
    return {"cell": position if position is not None else "?", "exec_count": exec_count,
            "first_line": first_line, "error": redact(error)}


def _cells(executed: Path) -> list[dict]:
    """The executed copy's cells without papermill's error markers (which shift indices)."""
    if not executed.exists():
        return []
    cells = json.loads(executed.read_text(encoding="utf-8")).get("cells", [])
    return [c for c in cells if "papermill-error-cell-tag" not in _tags(c)]


def _tags(cell: dict) -> list:
    return cell.get("metadata", {}).get("tags", [])


def _last_started_cell(executed: Path) -> tuple[int | None, dict | None]:
    started = [(i, c) for i, c in enumerate(_cells(executed))
               if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    return started[-1] if started else (None, None)


# -- the executed copy -------------------------------------------------------------------

def redacted_notebook(path: Path) -> str:
    """The notebook's JSON with every text field redacted (images are base64: left alone)."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return json.dumps(_redact_tree(notebook), indent=1, ensure_ascii=False) + "\n"


def _redact_tree(value, key: str = ""):
    if isinstance(value, dict):
        return {k: (v if k in BINARY_MIMES else _redact_tree(v, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_tree(v, key) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value

