"""`workbench lab`: JupyterLab starts on the notebooks with the quickstart open; installed
without the repository, the bundled notebooks are copied out first."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from workbench.errors import NotebookError
from workbench.notebooks import lab

REPO = Path(__file__).resolve().parent.parent
WORKBENCH = [sys.executable, "-m", "workbench"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_lab_help_names_the_notebook_and_the_options():
    shown = subprocess.run(WORKBENCH + ["lab", "--help"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "--no-browser" in shown.stdout and "01-quickstart" in shown.stdout


def test_lab_serves_the_quickstart_until_stopped(tmp_path):
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_DATA_DIR":
           str(tmp_path / "data")}
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(WORKBENCH + ["lab", "--no-browser", "--port", str(port),
                                               "--ServerApp.port_retries=0"],
                                  stdout=out, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)
    try:
        answered = None
        deadline = time.monotonic() + 90
        while answered is None and time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=2) as reply:
                    answered = reply.status
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        assert answered == 200, log.read_text()
        text = log.read_text()
        assert "workbench lab: opening 01-quickstart.ipynb in " + str(REPO / "notebooks") in text
        # JupyterLab itself prints where to point a browser, token included
        assert re.search(rf"http://(localhost|127\.0\.0\.1):{port}/lab\S*\?token=\w+", text), text
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server shuts down, as on Ctrl-C
        server.wait(timeout=60)
    assert server.returncode is not None


def test_the_bundled_notebooks_are_copied_out_without_overwriting_edits(tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name in ("01-quickstart.ipynb", "02-your-own-data.ipynb"):
        (shipped / name).write_text((REPO / "notebooks" / name).read_text())
    monkeypatch.setattr(lab, "repository_notebooks", lambda: None)  # as if pip-installed
    monkeypatch.setattr(lab, "bundled_notebooks", lambda: sorted(shipped.iterdir()))
    work = tmp_path / "work"
    work.mkdir()
    (work / "02-your-own-data.ipynb").write_text("my edits")
    folder = lab.notebook_folder(work)
    assert folder == work
    assert (work / "01-quickstart.ipynb").read_text() == (shipped / "01-quickstart.ipynb").read_text()
    assert (work / "02-your-own-data.ipynb").read_text() == "my edits"


def test_a_notebook_is_found_by_name_or_prefix_and_a_bad_one_is_named(tmp_path):
    folder = REPO / "notebooks"
    assert lab.pick_notebook(folder, None).name == "01-quickstart.ipynb"
    assert lab.pick_notebook(folder, "02").name == "02-your-own-data.ipynb"
    assert lab.pick_notebook(folder, "workshop.ipynb").name == "workshop.ipynb"
    with pytest.raises(NotebookError, match="none matches; the notebooks are 01-quickstart"):
        lab.pick_notebook(folder, "99")
    command = lab.lab_command(folder / "02-your-own-data.ipynb", folder, ["--no-browser"])
    assert command[1:3] == ["-m", "jupyterlab"]
    assert command[-1] == str(folder / "02-your-own-data.ipynb")
    assert f"--ServerApp.root_dir={folder}" in command and "--no-browser" in command


def test_an_installed_wheel_carries_the_notebooks_and_copies_them_out(tmp_path):
    """Installed without the repository (a wheel, not a clone), `workbench lab` still finds
    the notebooks: they travel as package data and are copied into a working folder."""
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("workbench-*.whl")
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                                "--target", str(target), str(wheel)], capture_output=True,
                               text=True)
    assert installed.returncode == 0, installed.stderr
    code = ("import pathlib, workbench.notebooks.lab as lab; "
            "assert lab.repository_notebooks() is None, 'ran from the clone'; "
            "print(lab.notebook_folder(pathlib.Path('copied')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(target)})
    assert out.returncode == 0, out.stderr
    copied = sorted(p.name for p in (tmp_path / "copied").glob("*.ipynb"))
    assert copied == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
