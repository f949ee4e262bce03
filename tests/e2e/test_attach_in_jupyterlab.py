"""A dashboard in a real JupyterLab attached to a run started from the command line (in 2
processes): it follows the run's folder, and its Pause, Resume and Stop reach the run
through that folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest
import yaml
from conftest import ORDERS
from jupyterlab_harness import CHROMIUM, CHROMIUM_ARGS, LabPage, LabServer
from test_quickstart_in_jupyterlab import (WHILE_PAUSED, WHILE_RUNNING, Quickstart,  # noqa: F401
                                           artifacts, kernel_environment,
                                           require_browser_stack)

pytestmark = pytest.mark.e2e


def start_cli_run(root, model_dir):
    """`workbench train config.yaml --nproc 2` in its own process, as a terminal would."""
    lines = ORDERS.read_text(encoding="utf-8").splitlines()[:48]
    (root / "orders.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {"model": {"name": model_dir}, "lora": {"r": 4},
              "data": {"path": str(root / "orders.jsonl"), "max_length": 128,
                       "eval_fraction": 0},
              "train": {"max_steps": 5000, "batch_size": 2, "log_every": 1, "save_every": 0},
              "output": {"runs_dir": str(root / "runs"), "name": "terminal"}}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    log = open(root / "terminal.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "workbench", "train",
                                str(root / "config.yaml"), "--nproc", "2", "--quiet"],
                               stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return process, log


def attach_notebook(root, run_dir) -> str:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                       "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(
        "from workbench.ui.dashboard import Dashboard\n"
        f"dash = Dashboard().attach({str(run_dir)!r})\n"
        "dash")]
    nbformat.write(notebook, root / "attach.ipynb")
    return "attach.ipynb"


def test_a_dashboard_in_jupyterlab_follows_and_steers_a_run_from_the_terminal(
        tiny_model_dir, tmp_path, artifacts):
    from playwright.sync_api import sync_playwright

    root = tmp_path / "lab"
    root.mkdir()
    process, log = start_cli_run(root, tiny_model_dir)
    try:
        summary_path = None
        began = time.monotonic()
        while summary_path is None and time.monotonic() - began < 180:
            found = [p for p in (root / "runs").glob("terminal-*/summary.json")
                     if json.loads(p.read_text() or "{}").get("status") == "running"]
            summary_path = found[0] if found else None
            time.sleep(0.2)
        assert summary_path is not None, (root / "terminal.log").read_text()
        run_dir = summary_path.parent
        server = LabServer(root, tmp_path / "jupyter", artifacts / "jupyter-server.log",
                           env=kernel_environment())
        with server, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            lab = LabPage(browser.new_page(viewport={"width": 1400, "height": 1200}),
                          artifacts)
            try:
                nb = Quickstart(lab)
                nb.page.goto(server.notebook_url(attach_notebook(root, run_dir)))
                kernel = nb.page.locator(".jp-StatusBar-TextItem", has_text="Python 3")
                lab.wait_until("the notebook with an idle kernel",
                               lambda: "| Idle" in lab.text(kernel), timeout=120)
                nb.run("Dashboard().attach(", "Run Selected Cell")
                nb.wait_state("running", timeout=120)
                first = nb.wait_step_above(0)
                chart = nb.chart_src()
                nb.wait_step_above(first)  # it follows the run as metrics.jsonl grows
                lab.wait_until("the loss chart redrawn as the run goes on",
                               lambda: nb.chart_src() not in ("", chart), timeout=60)
                nb.wait_buttons(WHILE_RUNNING)
                nb.check_no_widget_errors()
                nb.show()
                lab.screenshot("attached")

                nb.click("Pause")
                nb.wait_state("paused")
                lab.wait_until("summary.json saying paused", lambda: json.loads(
                    summary_path.read_text()).get("paused") is True, timeout=60)
                nb.wait_buttons(WHILE_PAUSED)
                paused_at = nb.step()
                nb.page.wait_for_timeout(1500)
                assert nb.step() == paused_at, "the step counter moved while paused"
                lab.screenshot("paused")

                nb.click("Resume")
                nb.wait_state("running")
                nb.wait_step_above(paused_at + 1)
                nb.click("Stop")
                nb.wait_state("stopped", timeout=120)
                lab.screenshot("stopped")
            finally:
                (artifacts / "browser-console.log").write_text("\n".join(lab.console) + "\n")
                browser.close()
        assert process.wait(timeout=120) == 0, (root / "terminal.log").read_text()
        summary = json.loads(summary_path.read_text())
        assert summary["status"] == "stopped" and summary["world_size"] == 2
        assert summary["step"] > paused_at
    finally:
        if process.poll() is None:  # its processes are in their own session
            process.send_signal(signal.SIGKILL)
            subprocess.run(["pkill", "-f", str(root / "runs")])
        log.close()
