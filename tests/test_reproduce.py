"""The dashboard's Reproduce button, driven without a browser: the YAML it shows loads
back as the form's exact config, and its notebook command sets the quickstart's own
parameters to the form's values."""

import html
import re
import shlex
from pathlib import Path

import nbformat
from papermill import inspect_notebook
from papermill.cli import papermill as papermill_cli

from workbench.config import load_config
from workbench.ui.dashboard import Dashboard
from workbench.ui.reproduce import QUICKSTART, QUICKSTART_PARAMETERS

REPO = Path(__file__).resolve().parent.parent


def shown(dash) -> str:
    return html.unescape(dash.reproduce_box.get_state()["value"])


def test_reproduce_shows_the_yaml_and_the_commands_for_the_form(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # where `notebooks/01-quickstart.ipynb` is
    data = tmp_path / "my data.jsonl"
    dash = Dashboard({"model": {"name": "demo"}, "data": {"path": str(data)},
                      "train": {"max_steps": 7}}, interactive=True)
    form = dash.form
    form.inputs["lora.r"].value = "8"
    form.inputs["train.learning_rate"].value = "3e-4"
    form.inputs["train.warmup_steps"].value = "3"  # not a notebook parameter: YAML only
    form.inputs["sample.prompts"].value = "first prompt\nsecond prompt"
    assert dash.reproduce_box.value == ""
    dash.reproduce_button.click()
    text = shown(dash)

    yaml_text = re.search(r'<pre class="workbench-reproduce-yaml"[^>]*>(.*?)</pre>', text, re.S)[1]
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml_text)
    assert load_config(saved) == form.config()  # every field, exactly
    assert "workbench train config.yaml" in text

    run_line = next(line for line in text.splitlines() if "workbench notebook run" in line)
    argv = shlex.split(run_line[run_line.index("workbench"):])
    assert argv[:4] == ["workbench", "notebook", "run", QUICKSTART]
    pairs = dict(zip(argv[5::3], argv[6::3]))
    assert argv[4::3] == ["-p"] * len(pairs)
    assert pairs == {"model": "demo", "dataset": str(data), "max_steps": "7",
                     "learning_rate": "0.0003", "lora_r": "8", "batch_size": "4",
                     "max_length": "512", "runs_dir": "runs"}
    papermill_line = next(line for line in text.splitlines() if line.startswith("papermill "))
    assert shlex.split(papermill_line)[1:5] == [QUICKSTART, "01-quickstart-executed.ipynb",
                                                "-k", "python3"]


def test_the_mapped_parameters_are_the_quickstarts_and_papermill_accepts_them(tmp_path):
    """Every parameter the button maps exists in the notebook, and the command's values
    arrive in the notebook typed as the config wants them (papermill --prepare-only)."""
    declared = inspect_notebook(str(REPO / QUICKSTART))
    assert set(QUICKSTART_PARAMETERS) <= set(declared)
    dash = Dashboard({"data": {"path": "orders.jsonl"}, "lora": {"r": 4},
                      "train": {"learning_rate": 0.002, "max_steps": 3}}, interactive=True)
    made = dash.reproduce()
    argv = shlex.split(made.papermill_command)
    out = tmp_path / "prepared.ipynb"
    papermill_cli.main([str(REPO / argv[1]), str(out), "--prepare-only"] + argv[3:],
                       standalone_mode=False)  # papermill's own command line, in-process
    injected = next(c for c in nbformat.read(out, as_version=4).cells
                    if "injected-parameters" in c.metadata.get("tags", []))
    values = {}
    exec(injected.source, {}, values)
    assert values == {"model": "demo", "dataset": "orders.jsonl", "max_steps": 3,
                      "learning_rate": 0.002, "lora_r": 4, "batch_size": 4, "max_length": 512,
                      "runs_dir": "runs"}


def test_an_invalid_form_shows_its_problems_instead(monkeypatch):
    dash = Dashboard({"data": {"path": "x.jsonl"}}, interactive=True)
    dash.form.inputs["lora.r"].value = "0"
    dash.reproduce_button.click()
    assert dash.reproduce_box.value == ""
    assert "lora.r" in dash.live.status.value and "must be &gt;= 1" in dash.live.status.value
