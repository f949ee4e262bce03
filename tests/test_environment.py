"""Telling a notebook someone watches from a headless run, by the kernel's launcher."""

import pytest

from workbench.ui.environment import HEADLESS_RUNNERS, program_name

CASES = [  # (the parent's command line, program, headless)
    ("/venv/bin/python -m pytest tests/test_x.py", "pytest", True),
    ("/venv/bin/pytest -q", "pytest", True),
    ("/venv/bin/python3.11 /venv/bin/papermill in.ipynb out.ipynb", "papermill", True),
    ("python -m papermill in.ipynb out.ipynb -p max_steps 5", "papermill", True),
    ("/usr/bin/python3 /venv/bin/jupyter-nbconvert --execute x.ipynb", "jupyter-nbconvert", True),
    ("python -X frozen_modules=off -m nbclient x.ipynb", "nbclient", True),
    # JupyterLab and Notebook: interactive, whatever folders their arguments name
    ("/venv/bin/python /venv/bin/jupyter-lab", "jupyter-lab", False),
    ("/venv/bin/python -m jupyterlab --ServerApp.root_dir=/tmp/pytest-of-me/pytest-3/lab",
     "jupyterlab", False),
    ("/venv/bin/python3 /venv/bin/jupyter-notebook --notebook-dir=~/papermill-demos",
     "jupyter-notebook", False),
    ("", "", False),
]


@pytest.mark.parametrize("command,program,headless", CASES)
def test_only_the_launching_program_decides(command, program, headless):
    name = program_name(command.split())
    assert name == program
    assert any(runner in name for runner in HEADLESS_RUNNERS) == headless
