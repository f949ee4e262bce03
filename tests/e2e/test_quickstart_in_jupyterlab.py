"""The quickstart notebook in a real JupyterLab, driven by headless Chromium.

Unit tests press buttons with `.click()`; only a browser shows that the dashboard renders,
that clicks reach the kernel while it trains, and that the kernel stays usable. One test
walks the notebook like a person: run the cells up to the dashboard, Start, watch the
step counter and chart move, run another cell while it trains, Pause, chat, Resume, Stop,
check the run folder, run the remaining cells, then start from the notebook's own
`dash.start()` cell. Each stage leaves a screenshot under test-artifacts/e2e/<time>/.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
from pathlib import Path

import nbformat
import pytest

from conftest import require
from jupyterlab_harness import CHROMIUM, CHROMIUM_ARGS, INSTALL_HINT, LabPage, LabServer, number

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "notebooks" / "01-quickstart.ipynb"
# Enough steps that the run is still going when Pause is clicked; Stop ends it.
MAX_STEPS = 5000
KERNEL_PROMPT_SECONDS = 10  # a cell run while training must finish within this
CONTROLS = ("Start", "Pause", "Resume", "Stop", "Save checkpoint now")
WHILE_RUNNING = {"Pause", "Stop", "Save checkpoint now"}
WHILE_PAUSED = {"Resume", "Stop", "Save checkpoint now"}


@pytest.fixture(scope="session", autouse=True)
def require_browser_stack() -> None:
    """Skip without Playwright, JupyterLab or Chromium; under CI a missing piece fails.
    (Session-scoped and autouse, so it is checked before the tiny model is built.)"""
    missing = [f"the Python package {name} (pip install -e '.[dev]')"
               for name in ("playwright", "jupyterlab") if importlib.util.find_spec(name) is None]
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM}: {INSTALL_HINT}")
    require(missing, "browser tests")


@pytest.fixture
def artifacts(capsys) -> Path:
    folder = REPO / "test-artifacts" / "e2e" / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    with capsys.disabled():
        print(f"\n[e2e] screenshots and logs: {folder}")
    return folder


def prepare_notebook(root: Path, **parameters) -> str:
    """Copy the quickstart into `root` with the parameters papermill would inject."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    notebook = parameterize_notebook(load_notebook_node(str(QUICKSTART)), parameters)
    (root / "notebooks").mkdir(parents=True)
    nbformat.write(notebook, root / "notebooks" / QUICKSTART.name)
    return f"notebooks/{QUICKSTART.name}"


def kernel_environment() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("WORKBENCH_INTERACTIVE", None)  # the kernel must find out by itself
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


class Quickstart:
    """The quickstart notebook open in JupyterLab: its cells and its dashboard."""

    def __init__(self, lab: LabPage):
        self.lab, self.page = lab, lab.page
        self.dashboard = self.page.locator(".workbench-dashboard")
        self.status = self.dashboard.locator(".workbench-status")
        self.chart = self.dashboard.locator("img.workbench-live-chart")

    # -- cells ---------------------------------------------------------------------------

    def cell(self, snippet: str):
        """The code cell whose source contains `snippet`."""
        editor = self.page.locator(".jp-InputArea-editor", has_text=snippet)
        return self.page.locator(".jp-Notebook .jp-CodeCell", has=editor).first

    def run(self, snippet: str, menu_item: str) -> None:
        """Select the cell, then use JupyterLab's Run menu, as a person would."""
        self.cell(snippet).locator(".jp-InputPrompt").click()
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        self.page.locator(".lm-Menu-itemLabel",
                          has_text=re.compile(f"^{re.escape(menu_item)}$")).click()

    def output(self, snippet: str) -> str:
        return self.lab.text(self.cell(snippet).locator(".jp-OutputArea"))

    def prompt(self, snippet: str) -> str:
        return self.lab.text(self.cell(snippet).locator(".jp-InputPrompt"))

    # -- dashboard -----------------------------------------------------------------------

    def button(self, label: str):
        return self.dashboard.locator("button.widget-button",
                                      has_text=re.compile(f"^{re.escape(label)}$"))

    def click(self, label: str) -> None:
        button = self.button(label)
        self.lab.wait_until(f"the {label} button enabled", button.is_enabled, timeout=60)
        button.click()

    def tab(self, title: str) -> None:
        self.dashboard.locator(".lm-TabBar-tab", has_text=re.compile(f"^{title}$")).click()

    def state(self) -> str:
        return self.lab.text(self.status.locator("span"))

    def step(self) -> int | None:
        return number(r"step (\d+) /", self.lab.text(self.status))

    def wait_state(self, state: str, timeout: float = 60) -> None:
        self.lab.wait_until(lambda: f"the dashboard state {state!r} (it shows {self.state()!r})",
                            lambda: self.state() == state, timeout)

    def wait_step_above(self, step: int, timeout: float = 60) -> int:
        return self.lab.wait_until(lambda: f"the step counter above {step} "
                                           f"(it shows {self.lab.text(self.status)!r})",
                                   lambda: (s := self.step()) is not None and s > step and s,
                                   timeout)

    def chart_src(self) -> str:
        return self.chart.get_attribute("src", timeout=1000) if self.chart.count() else ""

    def enabled_buttons(self) -> set[str]:
        return {label for label in CONTROLS if self.button(label).is_enabled()}

    def wait_buttons(self, enabled: set[str], timeout: float = 30) -> None:
        """Wait until exactly `enabled` of the run controls can be clicked."""
        self.lab.wait_until(lambda: f"the enabled buttons {sorted(enabled)} "
                                    f"(enabled now: {sorted(self.enabled_buttons())})",
                            lambda: self.enabled_buttons() == enabled, timeout)

    def show(self) -> None:
        """Scroll the dashboard's top (buttons, status line, tabs) to the top of the view."""
        self.dashboard.evaluate("node => node.scrollIntoView({block: 'start'})")

    def check_no_widget_errors(self) -> None:
        errors = self.page.get_by_text("Error displaying widget")
        if errors.count():
            self.lab.fail("JupyterLab shows 'Error displaying widget'")


def test_quickstart_dashboard_in_jupyterlab(tiny_model_dir, orders_subset, tmp_path, artifacts):
    from playwright.sync_api import sync_playwright

    root = tmp_path / "lab"
    runs = root / "runs"
    notebook = prepare_notebook(root, model=tiny_model_dir, dataset=str(orders_subset),
                                max_steps=MAX_STEPS, batch_size=4, max_length=128, lora_r=8,
                                runs_dir=str(runs))
    server = LabServer(root, tmp_path / "jupyter", artifacts / "jupyter-server.log",
                       env=kernel_environment())
    with server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        lab = LabPage(browser.new_page(viewport={"width": 1400, "height": 1200}), artifacts)
        try:
            nb = Quickstart(lab)
            open_dashboard(nb, server.notebook_url(notebook))
            start_and_watch(nb)
            run_a_cell_while_training(nb)
            pause_and_chat(nb)
            resume_stop_and_compare(nb, runs)
            rate_three_prompts(nb, runs)
            run_the_report_cells(nb)
            start_from_the_notebook_cell(nb, runs)
            teach_and_train_on_feedback(nb, runs)
        finally:
            (artifacts / "browser-console.log").write_text("\n".join(lab.console) + "\n")
            browser.close()


def open_dashboard(nb: Quickstart, url: str) -> None:
    """Run the cells up to the dashboard; it renders with all its controls."""
    lab = nb.lab
    nb.page.goto(url)
    kernel = nb.page.locator(".jp-StatusBar-TextItem", has_text="Python 3")
    lab.wait_until("the notebook with an idle kernel", lambda: "| Idle" in lab.text(kernel),
                   timeout=120)
    lab.screenshot("notebook-open")
    nb.run("dash.start()", "Run All Above Selected Cell")
    lab.wait_until("the dashboard's Start button",
                   lambda: nb.button("Start").is_visible() and nb.state() == "idle", timeout=180)
    for label in CONTROLS:
        assert nb.button(label).is_visible(), f"no {label} button"
    for title in ("Setup", "Training", "Chat", "Rate", "Teach", "History"):
        assert nb.dashboard.locator(".lm-TabBar-tab", has_text=title).is_visible(), title
    assert nb.enabled_buttons() == {"Start"}
    nb.check_no_widget_errors()
    nb.show()
    lab.screenshot("dashboard")


def start_and_watch(nb: Quickstart) -> None:
    """Start: the step counter advances and the loss chart is redrawn at least twice."""
    lab = nb.lab
    nb.click("Start")
    nb.wait_state("running", timeout=120)
    nb.wait_buttons(WHILE_RUNNING)
    charts = []

    def chart_changed_twice():
        src = nb.chart_src()
        if src and (not charts or charts[-1] != src):
            charts.append(src)
        return len(charts) >= 3

    first = nb.wait_step_above(0)
    lab.wait_until(lambda: f"the loss chart redrawn twice (seen {len(charts)} images)",
                   chart_changed_twice, timeout=60)
    nb.wait_step_above(first)
    # The base model answered the notebook's three sample prompts (each spans lines).
    rows = nb.dashboard.locator("table.workbench-samples tbody tr")
    lab.wait_until("the samples grid", lambda: rows.count() > 0, timeout=60)
    assert rows.count() == 3, [lab.text(row.locator("th")) for row in rows.all()]
    nb.check_no_widget_errors()
    nb.show()
    lab.screenshot("training")


def run_a_cell_while_training(nb: Quickstart) -> None:
    """The kernel answers another cell promptly while the run goes on."""
    before = nb.step()
    began = time.monotonic()
    nb.run("dash.chat(", "Run Selected Cell")
    nb.lab.wait_until("the chat cell's answer while training",
                      lambda: "The run is running" in nb.output("dash.chat("),
                      timeout=KERNEL_PROMPT_SECONDS)
    print(f"[e2e] a cell run during training answered in {time.monotonic() - began:.1f}s")
    nb.wait_step_above(before)  # training went on meanwhile
    nb.lab.screenshot("kernel-responsive")


def pause_and_chat(nb: Quickstart) -> None:
    """Pause: the state changes and the step counter holds still; the Chat tab answers."""
    lab = nb.lab
    nb.click("Pause")
    nb.wait_state("paused")
    nb.wait_buttons(WHILE_PAUSED)
    paused_at = nb.step()
    nb.page.wait_for_timeout(1500)
    assert nb.step() == paused_at, "the step counter moved while paused"
    nb.show()
    lab.screenshot("paused")
    nb.tab("Chat")
    box = nb.dashboard.get_by_placeholder("Ask the model something and press Enter")
    box.fill("I want two lattes in Lisbon")
    box.press("Enter")
    transcript = nb.dashboard.locator(".widget-html-content", has_text="you:")
    lab.wait_until("the tuned model's answer in the Chat tab",
                   lambda: "tuned:" in lab.text(transcript), timeout=60)
    print(f"[e2e] chat transcript: {lab.text(transcript)!r}")
    nb.show()
    lab.screenshot("chat")
    nb.tab("Training")


def resume_stop_and_compare(nb: Quickstart, runs: Path) -> None:
    """Resume, then Stop; the dashboard and the run folder's summary.json agree."""
    lab = nb.lab
    paused_at = nb.step()
    nb.click("Resume")
    nb.wait_state("running")
    nb.wait_buttons(WHILE_RUNNING)
    nb.wait_step_above(paused_at)
    nb.show()
    lab.screenshot("resumed")
    nb.click("Stop")
    nb.wait_state("stopped", timeout=120)
    nb.wait_buttons({"Start"})  # the worker thread has ended: the run folder is complete
    nb.check_no_widget_errors()
    nb.show()
    lab.screenshot("stopped")
    run_dirs = sorted(runs.glob("quickstart-*"))
    assert len(run_dirs) == 1, run_dirs
    summary = json.loads((run_dirs[0] / "summary.json").read_text())
    assert (summary["status"], summary["step"]) == (nb.state(), nb.step()), summary
    assert summary["status"] == "stopped" and str(run_dirs[0]) in lab.text(nb.status)


def rate_three_prompts(nb: Quickstart, runs: Path) -> None:
    """The Rate tab: tuned vs base, blind; each click lands in the run's ratings.jsonl."""
    lab = nb.lab
    nb.tab("Rate")
    nb.click("Rate tuned vs base")
    heading = nb.dashboard.locator(".workbench-rate .widget-html-content", has_text="Prompt 1 of")
    lab.wait_until("the first prompt to rate", lambda: heading.count() > 0, timeout=120)
    lab.screenshot("rate")
    (run_dir,) = sorted(runs.glob("quickstart-*"))
    ratings = run_dir / "ratings.jsonl"
    for count, label in enumerate(("A better", "B better", "Tie"), start=1):
        nb.click(label)
        lab.wait_until(f"rating {count} in {ratings}",
                       lambda: ratings.exists() and
                       len(ratings.read_text().splitlines()) == count, timeout=30)
    rows = [json.loads(line) for line in ratings.read_text().splitlines()]
    assert [row["choice"] for row in rows] == ["a", "b", "tie"]
    assert all({row["a"]["model"], row["b"]["model"]} == {"tuned", "base"} for row in rows)
    saved = nb.dashboard.locator(".workbench-rate .widget-html-content", has_text="saved:")
    lab.wait_until("the reveal of who was A and B", lambda: "A was" in lab.text(saved), timeout=30)
    nb.show()
    lab.screenshot("rated")
    nb.tab("Training")


def teach_and_train_on_feedback(nb: Quickstart, runs: Path) -> None:
    """The Teach tab: pick the better draft for two prompts, Train on my feedback, and the
    new DPO run's reward accuracy shows in the status line and the chart."""
    lab = nb.lab
    nb.tab("Teach")
    nb.click("Draft answers")
    better = nb.dashboard.locator(".workbench-feedback button.workbench-feedback-best")
    lab.wait_until("the drafted answers", lambda: better.count() >= 4, timeout=120)
    lab.screenshot("teach")
    judged = sorted(runs.glob("quickstart-*"))[-1]  # the run the dashboard holds now
    pairs = judged / "feedback" / "pairs.jsonl"
    better.nth(1).click()  # the first prompt's second answer
    lab.wait_until("the first pair on disk", lambda: pairs.exists() and
                   len(pairs.read_text().splitlines()) >= 1, timeout=30)
    third = nb.dashboard.locator(".workbench-feedback button.workbench-feedback-best")
    third.nth(2).click()  # the second prompt's first answer
    lab.wait_until("the second pair on disk",
                   lambda: len(pairs.read_text().splitlines()) >= 2, timeout=30)
    nb.click("Train on my feedback")
    lab.wait_until("the feedback run's folder", lambda: list(runs.glob("feedback-dpo-*")),
                   timeout=60)
    nb.wait_state("finished", timeout=240)
    lab.wait_until("the reward accuracy in the status line",
                   lambda: "reward accuracy" in lab.text(nb.status), timeout=30)
    nb.tab("Training")
    nb.show()
    lab.screenshot("feedback-run")
    (feedback,) = runs.glob("feedback-dpo-*")
    summary = json.loads((feedback / "summary.json").read_text())
    assert summary["method"] == "dpo" and "reward_accuracy" in summary["final_metrics"]
    nb.tab("Teach")
    nb.click("Answer again")
    table = nb.dashboard.locator("table.workbench-feedback-compare")
    lab.wait_until("before and after, side by side", lambda: table.count() == 1, timeout=60)
    lab.screenshot("before-after")


def run_the_report_cells(nb: Quickstart) -> None:
    """The rest of the notebook: chat from code (both models) and the run summary."""
    nb.run("dash.chat(", "Run Selected Cell and All Below")
    nb.lab.wait_until("the summary cell's output",
                      lambda: "'status': 'stopped'" in nb.output("dash.result.run_dir"),
                      timeout=60)
    assert "tuned:" in nb.output("dash.chat(") and "base:" in nb.output("dash.chat(")
    nb.cell("dash.result.run_dir").scroll_into_view_if_needed()
    nb.lab.screenshot("report-cells")


def start_from_the_notebook_cell(nb: Quickstart, runs: Path) -> None:
    """The notebook's own `dash.start()` cell returns at once; the run goes on behind it.
    (A kernel taken for headless would block that cell until the run ends.)"""
    nb.run("dash.start()", "Run Selected Cell")
    nb.lab.wait_until("the dash.start() cell finished while its run goes on",
                      lambda: re.search(r"\[\d+\]", nb.prompt("dash.start()"))
                      and nb.state() == "running", timeout=KERNEL_PROMPT_SECONDS + 60)
    nb.wait_step_above(0)
    nb.cell("dash.start()").scroll_into_view_if_needed()
    nb.lab.screenshot("started-from-cell")
    nb.show()
    nb.lab.screenshot("second-run")
    nb.click("Stop")
    nb.wait_state("stopped", timeout=120)
    nb.wait_buttons({"Start"})
    nb.check_no_widget_errors()
    assert len(list(runs.glob("quickstart-*"))) == 2
