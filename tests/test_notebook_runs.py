"""Headless notebook runs and sweeps: a failing cell is named, secrets stay out of the
executed copy, a 2x2 sweep on a tiny model yields a 4-row comparison, a failed grid
point does not stop the others, and the compare helpers read the sweep's runs."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from workbench.errors import WorkbenchError
from workbench.notebooks.runner import NotebookFailed, parse_value, run_notebook
from workbench.notebooks.sweep import grid_points, parse_grid, sweep

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "notebooks" / "01-quickstart.ipynb"
FAKE_TOKEN = "hf_" + "abcdefghijklmnopqrstuvwxyz0123456789"  # token-shaped, not a real one


def workbench_cli(*args, cwd, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture
def small_notebook(tmp_path) -> Path:
    """No model: a parameter `x`, a cell printing an environment secret, and a cell that
    raises when x == 2 (cell 5 of the notebook as written)."""
    notebook = new_notebook(cells=[
        new_markdown_cell("# A small notebook"),
        new_code_cell('x = 1\nnote = ""\nruns_dir = "runs"', metadata={"tags": ["parameters"]}),
        new_code_cell("import os\nprint('token is', os.environ.get('WORKBENCH_TEST_TOKEN'))"),
        new_markdown_cell("Now the part that can fail."),
        new_code_cell("result = 10 / (2 - x)  # fails for x == 2\nprint('result', result)"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}})
    path = tmp_path / "small.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.mark.parametrize("text, expected", [
    ("5", 5), ("-3", -3), ("1e-4", 1e-4), ("0.5", 0.5), ("True", True), ("False", False),
    ("None", None), ("demo", "demo"), ("runs/x", "runs/x"), ("true", "true"),
])
def test_values_are_typed_as_papermill_types_them(text, expected):
    value = parse_value(text)
    assert value == expected and type(value) is type(expected)


def test_comma_lists_are_swept_and_single_values_fixed():
    fixed, swept = parse_grid([("learning_rate", "1e-4,3e-4"), ("lora_r", "8, 16"),
                               ("max_steps", "30"), ("model", "demo")])
    assert fixed == {"max_steps": 30, "model": "demo"}
    assert swept == {"learning_rate": [1e-4, 3e-4], "lora_r": [8, 16]}
    assert grid_points(swept) == [
        {"learning_rate": 1e-4, "lora_r": 8}, {"learning_rate": 1e-4, "lora_r": 16},
        {"learning_rate": 3e-4, "lora_r": 8}, {"learning_rate": 3e-4, "lora_r": 16}]
    for bad, words in ([("lora_r", "8,,16")], "empty item"), ([("x", "1"), ("x", "2")], "twice"):
        with pytest.raises(WorkbenchError, match=words):
            parse_grid(bad)


def test_a_failing_cell_is_named_and_the_executed_copy_is_kept_redacted(small_notebook, tmp_path):
    result = workbench_cli("notebook", "run", small_notebook, "-p", "x", 2, "-p", "note",
                           FAKE_TOKEN, cwd=tmp_path,
                           env_extra={"WORKBENCH_TEST_TOKEN": "s3cret-value-42"})
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: {small_notebook} failed in cell 5 (In [")
    assert "`result = 10 / (2 - x)  # fails for x == 2`: ZeroDivisionError: division by zero" in error
    executed = [Path(line.split(": ", 1)[1]) for line in result.stdout.splitlines()
                if line.startswith("executed notebook: ")]
    assert len(executed) == 1 and executed[0].parent == tmp_path / "runs"  # no run folder made
    text = executed[0].read_text()
    assert "ZeroDivisionError" in text and "An Exception was encountered" in text
    assert "s3cret-value-42" not in text and FAKE_TOKEN not in text and "[redacted]" in text


def test_the_python_api_raises_naming_the_cell_and_takes_undeclared_parameters(small_notebook, tmp_path):
    with pytest.raises(NotebookFailed) as caught:
        run_notebook(small_notebook, {"x": 2, "runs_dir": str(tmp_path / "out")}, cwd=tmp_path)
    assert caught.value.failure["cell"] == 5 and "ZeroDivisionError" in str(caught.value)
    # a parameter the notebook does not declare: papermill warns and injects it anyway
    ok = run_notebook(small_notebook, {"x": 1, "runs_dir": str(tmp_path / "out"),
                                       "max_steps": 3}, cwd=tmp_path)
    assert ok.ok and ok.run_dirs == [] and "result 10.0" in ok.executed[0].read_text()
    assert "max_steps = 3" in ok.executed[0].read_text()


def test_a_dead_kernel_is_reported_with_its_cell(tmp_path):
    notebook = new_notebook(cells=[
        new_code_cell('runs_dir = "runs"', metadata={"tags": ["parameters"]}),
        new_code_cell("import os\nos._exit(1)  # as the out-of-memory killer would")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}})
    path = tmp_path / "dies.ipynb"
    nbformat.write(notebook, path)
    # the kernel can die before it reports the cell's execution count, so "(In [2])" is optional
    with pytest.raises(NotebookFailed,
                       match=r"cell 2( \(In \[2\]\))? `import os`: DeadKernelError.*out of memory"):
        run_notebook(path, cwd=tmp_path)


def test_a_missing_notebook_and_an_unknown_sweep_parameter_are_refused(tmp_path, capsys,
                                                                       monkeypatch):
    from workbench.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["notebook", "run", "nope.ipynb"]) == 2
    assert "notebook 'nope.ipynb' not found" in capsys.readouterr().err
    assert main(["sweep", str(QUICKSTART), "-p", "lerning_rate", "1e-4,3e-4"]) == 2
    assert "has no parameter lerning_rate (did you mean learning_rate?)" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before anything ran


def test_a_failed_grid_point_does_not_stop_the_others(small_notebook, tmp_path):
    lines = []
    result = sweep(small_notebook, {"x": [1, 2, 3]}, {"runs_dir": str(tmp_path / "runs")},
                   progress=lines.append)  # one after another, the default
    assert [r["status"] for r in result.rows] == ["no run", "failed", "no run"]
    failed = result.rows[1]
    assert failed["x"] == 2 and "cell 5" in failed["error"] and "ZeroDivisionError" in failed["error"]
    assert "result -10.0" in (result.folder / result.rows[2]["run"]).read_text()
    rows = list(csv.DictReader(result.csv.open()))
    assert [r["status"] for r in rows] == ["no run", "failed", "no run"]
    assert "ZeroDivisionError" in rows[1]["error"]
    assert any(line.startswith("[3/3] x=3: ran") for line in lines)  # after the failure


@pytest.fixture(scope="module")
def sweep_2x2(tiny_model_dir, tmp_path_factory):
    """`workbench sweep` over the quickstart: learning_rate x lora_r on the tiny model,
    two points at a time (each kernel on one thread)."""
    from conftest import ORDERS

    root = tmp_path_factory.mktemp("sweep")
    data = root / "orders.jsonl"
    data.write_text("\n".join(ORDERS.read_text().splitlines()[:48]) + "\n")
    result = workbench_cli("sweep", QUICKSTART, "-p", "learning_rate", "1e-3,3e-3",
                           "-p", "lora_r", "4,8", "-p", "model", tiny_model_dir,
                           "-p", "dataset", data, "-p", "max_steps", 2,
                           "-p", "runs_dir", root / "runs", "--jobs", 2, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    folders = list((root / "runs").glob("sweep-*"))
    assert len(folders) == 1
    return folders[0], result.stdout


def test_a_2x2_sweep_writes_a_table_of_four_runs_with_their_metrics(sweep_2x2):
    folder, printed = sweep_2x2
    rows = list(csv.DictReader((folder / "results.csv").open()))
    assert len(rows) == 4
    assert [(float(r["learning_rate"]), int(r["lora_r"])) for r in rows] == [
        (1e-3, 4), (1e-3, 8), (3e-3, 4), (3e-3, 8)]
    for row in rows:
        assert row["status"] == "finished" and row["step"] == "2" and row["error"] == ""
        assert float(row["final_loss"]) > 0 and float(row["final_eval_loss"]) > 0
        assert float(row["wall_seconds"]) > 0
        run = folder / row["run"]
        config = (run / "config.yaml").read_text()  # the grid values reached the run
        assert f"r: {row['lora_r']}\n" in config
        assert f"learning_rate: {float(row['learning_rate'])}\n" in config
        assert (run / "notebook.ipynb").exists()
    markdown = (folder / "results.md").read_text()
    assert markdown.count("| finished |") == 4 and "Lowest final eval loss: point" in markdown
    assert markdown in printed  # the CLI prints the table
    assert (folder / "loss-overlay.png").read_bytes()[:4] == b"\x89PNG"


def test_the_compare_helpers_read_a_sweep_folder(sweep_2x2):
    from workbench.notebooks.compare import (config_table_html, differing_keys, load_runs,
                                             overlay_png, runs_samples_html)

    folder, _ = sweep_2x2
    runs = load_runs(folder)
    assert len(runs) == 4 and all("/" in run.name for run in runs)  # point/run
    differ = differing_keys(runs)
    assert {"train.learning_rate", "lora.r", "lora.alpha"} <= set(differ)
    assert "model.name" not in differ and "train.max_steps" not in differ
    only = config_table_html(runs, only_differences=True)
    assert "lora.r" in only and "model.name" not in only
    assert "base model" in runs_samples_html(runs)
    assert overlay_png(runs)[:4] == b"\x89PNG"
    with pytest.raises(WorkbenchError, match="no run named nope"):
        load_runs(folder, ["nope"])
