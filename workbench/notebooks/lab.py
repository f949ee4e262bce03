"""`workbench lab`: JupyterLab on the workbench's notebooks, the quickstart open.

    workbench lab                    # the quickstart
    workbench lab 02                 # 02-your-own-data.ipynb (a prefix or a name is enough)
    workbench lab --no-browser --port 8890

In a clone of the repository the notebooks are its `notebooks/` folder, used in place.
Installed without the repository, the package carries copies (`workbench.notebook_files`),
which go into a working folder first (`./workbench-notebooks`, never overwriting a file
already there, so your edits survive). JupyterLab then runs in this process
(`exec`), printing its URL and token itself; Ctrl-C stops it as it stops `jupyter lab`.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib import resources
from pathlib import Path

from workbench.errors import NotebookError

DEFAULT_NOTEBOOK = "01-quickstart.ipynb"
WORKING_FOLDER = "workbench-notebooks"


def repository_notebooks() -> Path | None:
    """The clone's notebooks/ folder, when the package runs from a clone (an editable install)."""
    folder = Path(__file__).resolve().parents[2] / "notebooks"
    return folder if (folder / DEFAULT_NOTEBOOK).is_file() else None


def bundled_notebooks() -> list[Path]:
    """The notebooks shipped inside the installed package."""
    try:
        files = resources.files("workbench.notebook_files")
    except ModuleNotFoundError:
        return []
    return sorted(Path(str(f)) for f in files.iterdir() if f.name.endswith(".ipynb"))


def notebook_folder(working: Path | None = None) -> Path:
    """Where JupyterLab opens: the clone's notebooks, else a working copy of the bundled ones."""
    found = repository_notebooks()
    if found is not None:
        return found
    bundled = bundled_notebooks()
    if not bundled:
        raise NotebookError("this installation carries no notebooks; reinstall workbench, or "
                            "clone the repository and run `workbench lab` from there")
    target = working or Path.cwd() / WORKING_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    for notebook in bundled:
        if not (target / notebook.name).exists():  # keep the user's edited copy
            shutil.copyfile(notebook, target / notebook.name)
    return target


def pick_notebook(folder: Path, wanted: str | None) -> Path:
    """The notebook `wanted` names: a file name, a prefix (`02`, `02-your`), or a path."""
    if not wanted:
        return folder / DEFAULT_NOTEBOOK
    path = Path(wanted)
    if path.suffix == ".ipynb" and path.is_file():
        return path.resolve()
    names = sorted(p.name for p in folder.glob("*.ipynb"))
    matches = [n for n in names if n == wanted or n.startswith(wanted)]
    if len(matches) != 1:
        found = "several match: " + ", ".join(matches) if matches else "none matches"
        raise NotebookError(f"{wanted!r}: {found}; the notebooks are {', '.join(names)}")
    return folder / matches[0]


def lab_command(notebook: Path, root: Path, extra: list[str]) -> list[str]:
    """`python -m jupyterlab` with the notebook open (an absolute path: jupyter resolves it
    from the working directory) and `root` as the file browser's root."""
    notebook = notebook.resolve()
    root_dir = root if notebook.is_relative_to(root.resolve()) else notebook.parent
    # As root (containers, cloud notebooks) Jupyter refuses to start without --allow-root.
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root_dir}", *as_root,
            *extra, str(notebook)]


def launch(wanted: str | None = None, extra: list[str] = ()) -> None:
    """Replace this process with JupyterLab (it never returns)."""
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        try:
            import jupyterlab  # noqa: F401
        except ImportError:
            raise NotebookError("JupyterLab is not installed here; pip install jupyterlab "
                                "(the workbench's own install includes it)") from None
    root = notebook_folder()
    command = lab_command(pick_notebook(root, wanted), root, list(extra))
    print(f"workbench lab: opening {Path(command[-1]).name} in {root}", flush=True)
    os.execv(command[0], command)
