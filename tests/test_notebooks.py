"""Every notebook in notebooks/ is committed clean, has a `parameters` cell with the shared
parameters, and runs top to bottom headless (`workbench notebook run`, i.e. papermill)
on a tiny model; the quickstart and the rewards notebook also run on the real demo model
(slow)."""

import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
QUICKSTART = REPO / "notebooks" / "01-quickstart.ipynb"
SHARED_PARAMETERS = ("model", "dataset", "max_steps", "runs_dir")  # the brief's convention
SHARED_DEFAULTS = {"model": "demo", "dataset": "", "runs_dir": "runs"}
TINY_STEPS = 2


def run_notebook_cli(notebook: Path, cwd: Path, *parameters, threads: str | None = "1"):
    """`workbench notebook run` in a subprocess, as a user types it."""
    command = [sys.executable, "-m", "workbench", "notebook", "run", str(notebook)]
    for name, value in parameters:
        command += ["-p", name, str(value)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if threads:  # a tiny model: one thread spares OpenMP's hand-offs on a busy 2-core machine
        env["OMP_NUM_THREADS"] = threads
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def executed_paths(result) -> list[Path]:
    return [Path(line.split(": ", 1)[1]) for line in result.stdout.splitlines()
            if line.startswith("executed notebook: ")]


def outputs_of(notebook, mime: str) -> list:
    return [o["data"][mime] for cell in notebook.cells if cell.cell_type == "code"
            for o in cell.get("outputs", []) if mime in o.get("data", {})]


def printed(notebook) -> str:
    return "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))


def run_folders(runs_dir: Path) -> list[Path]:
    return sorted(p for p in runs_dir.iterdir() if (p / "config.yaml").is_file())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean_with_a_parameters_cell(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    dirty = [i for i, c in enumerate(code, 1) if c.outputs or c.execution_count is not None]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs; clear them before committing"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged `parameters`; want 1"
    assigned = {target.id: node.value for node in ast.parse(tagged[0].source).body
                if isinstance(node, ast.Assign) for target in node.targets
                if isinstance(target, ast.Name)}
    missing = [name for name in SHARED_PARAMETERS if name not in assigned]
    assert not missing, f"{path.name}: the parameters cell does not define {missing}"
    # the same defaults everywhere: the demo model on its bundled data, runs in runs/
    defaults = {name: ast.literal_eval(assigned[name]) for name in SHARED_PARAMETERS}
    assert defaults == {**SHARED_DEFAULTS, "max_steps": defaults["max_steps"]}, path.name
    assert isinstance(defaults["max_steps"], int) and defaults["max_steps"] > 0, path.name
    assert any(c.cell_type == "markdown" for c in notebook.cells)


def check_quickstart(notebook, runs: list[Path]) -> None:
    pngs = outputs_of(notebook, "image/png")
    tables = [h for h in outputs_of(notebook, "text/html") if "workbench-samples" in h]
    assert len(pngs) == 1 and len(tables) == 1
    assert "base model" in tables[0] and f"step {TINY_STEPS}" in tables[0]
    assert len(runs) == 1 and (runs[0] / "adapter" / "adapter_config.json").exists()


def check_compare_runs(notebook, runs: list[Path]) -> None:
    assert len(runs) == 2  # it trained two to compare, at two learning rates
    html = "".join(outputs_of(notebook, "text/html"))
    row = re.search(r"<tr style=\"background:[^\"]+\"><th[^>]*>train\.learning_rate</th>"
                    r"<td[^>]*>0\.001</td><td[^>]*>0\.0002</td>", html)
    assert row, "the learning-rate row is not highlighted as differing"
    assert "workbench-samples-compare" in html and "workbench-runs-compare" in html
    assert len(outputs_of(notebook, "image/png")) == 1


def check_workshop(notebook, runs: list[Path]) -> None:
    assert len(runs) == 1 and runs[0].name.startswith("workshop-")
    assert re.search(r"held-out success: base \d+%  ->  tuned \d+%", printed(notebook))
    config = (runs[0] / "config.yaml").read_text()
    assert "gradient_checkpointing: true" in config and "grad_accum: 2" in config


def check_evaluate(notebook, runs: list[Path]) -> None:
    assert len(runs) == 1 and runs[0].name.startswith("evaluate-")  # trained one to score
    text = printed(notebook)
    assert re.search(rf"json_equal\s+[\d.]+\s+[\d.]+", text), text  # run and base columns
    assert "general text loss" in text and "the rating widget needs a person" in text
    (saved,) = runs[0].glob("eval-*.json")
    assert json.loads(saved.read_text())["models"] == [runs[0].name, "base"]
    assert len(outputs_of(notebook, "image/png")) == 1  # scores and the forgetting check


def check_rewards(notebook, runs: list[Path]) -> None:
    text = printed(notebook)
    assert "reward check: 16 answers (4 prompts x 4)" in text, text
    # a tiny random model answers gibberish: every reward is 0, and the notebook says so
    # instead of training; on the demo model it trains and reports the reward's rise
    refused = "not training:" in text and "every reward is constant" in text
    assert refused or re.search(r"mean reward: first half [\d.]+ -> second half", text), text
    names = sorted(r.name.split("-2")[0] for r in runs)  # <name>-<timestamp>
    assert names == ["demo-grpo"] * (not refused) + ["demo-grpo-start"], names


CHECKS = {"01-quickstart": check_quickstart, "05-compare-runs": check_compare_runs,
          "06-evaluate": check_evaluate, "08-rewards": check_rewards,
          "workshop": check_workshop}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless_on_a_tiny_model(path, tiny_model_dir, orders_subset, tmp_path):
    """Tiny values for the shared parameters; a notebook that does not declare one gets
    papermill's warning, not a failure. The executed copy lands in each run folder."""
    runs_dir = tmp_path / "runs"
    result = run_notebook_cli(path, tmp_path, ("model", tiny_model_dir),
                              ("dataset", orders_subset), ("max_steps", TINY_STEPS),
                              ("runs_dir", runs_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    executed = executed_paths(result)
    assert executed and all(p.exists() for p in executed)
    runs = run_folders(runs_dir) if runs_dir.is_dir() else []
    assert sorted(p.parent for p in executed if p.name == "notebook.ipynb") == runs
    notebook = nbformat.read(executed[0], as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "a cell did not run"
    assert notebook.metadata.papermill.parameters["max_steps"] == TINY_STEPS
    CHECKS.get(path.stem, lambda *_: None)(notebook, runs)


@pytest.mark.slow
def test_quickstart_headless_on_the_demo_model(tmp_path):
    """The command from the README: papermill ... -p max_steps 5, on the real demo model."""
    out = tmp_path / "out.ipynb"
    command = [sys.executable, "-m", "papermill", str(QUICKSTART), str(out), "-k", "python3",
               "--cwd", str(tmp_path), "-p", "runs_dir", str(tmp_path / "runs"),
               "-p", "max_steps", "5"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    notebook = nbformat.read(out, as_version=4)
    assert len(outputs_of(notebook, "image/png")) == 1
    table = [h for h in outputs_of(notebook, "text/html") if "workbench-samples" in h][0]
    assert "Cusco" in table  # a held-out demo prompt, answered by base and tuned models
    assert "run finished at step 5" in printed(notebook) and "tuned:" in printed(notebook)
    assert json.loads(out.read_text())["metadata"]["papermill"]["parameters"]["max_steps"] == 5


@pytest.mark.slow
def test_the_rewards_notebook_on_the_demo_model_meets_its_target(tmp_path):
    """notebooks/08-rewards at its defaults (4 supervised steps, then 30 GRPO steps): the
    reward rises and held-out json_equal ends clearly above the base model and the start."""
    runs_dir = tmp_path / "runs"
    began = time.monotonic()
    result = run_notebook_cli(REPO / "notebooks" / "08-rewards.ipynb", tmp_path,
                              ("runs_dir", runs_dir), threads=None)
    minutes = (time.monotonic() - began) / 60
    assert result.returncode == 0, result.stderr[-3000:]
    assert minutes < 10, minutes  # the target: 10 minutes on 2 cores
    (run,) = [r for r in run_folders(runs_dir) if not r.name.startswith("demo-grpo-start")]
    notebook = nbformat.read(run / "notebook.ipynb", as_version=4)
    early, late = map(float, re.search(r"mean reward: first half ([\d.]+) -> second half "
                                       r"([\d.]+)", printed(notebook)).groups())
    assert late - early >= 0.3, (early, late)  # of 4: json_valid, json_equal=2, keys_right
    scores = json.loads((run / "summary.json").read_text())["scores"]
    base, start, final = (scores[k]["json_equal"] for k in ("base", "start", "final"))
    # measured 2026-12-02: 0% -> 35% -> 70% (the CLI demo, without keys_right: 85%)
    assert base <= 0.30 and start <= 0.45 and final >= 0.5 and final - start >= 0.2, scores
    assert "held-out json_equal: base model" in printed(notebook)
