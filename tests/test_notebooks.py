"""The quickstart notebook runs headless with papermill and leaves a readable report."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "notebooks" / "01-quickstart.ipynb"


def run_papermill(tmp_path, *parameters) -> nbformat.NotebookNode:
    out = tmp_path / "out.ipynb"
    command = [sys.executable, "-m", "papermill", str(QUICKSTART), str(out), "-k", "python3",
               "--cwd", str(tmp_path), "-p", "runs_dir", str(tmp_path / "runs")]
    for name, value in parameters:
        command += ["-p", name, str(value)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return nbformat.read(out, as_version=4)


def outputs_of(notebook, mime: str) -> list:
    return [o["data"][mime] for cell in notebook.cells if cell.cell_type == "code"
            for o in cell.get("outputs", []) if mime in o.get("data", {})]


def test_quickstart_is_committed_clean_with_a_parameters_cell():
    notebook = nbformat.read(QUICKSTART, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "max_steps" in tagged[0].source


def test_quickstart_headless_on_a_tiny_model(tiny_model_dir, orders_subset, tmp_path):
    notebook = run_papermill(tmp_path, ("model", tiny_model_dir), ("dataset", orders_subset),
                             ("max_steps", 5))
    pngs = outputs_of(notebook, "image/png")
    tables = [h for h in outputs_of(notebook, "text/html") if "workbench-samples" in h]
    assert len(pngs) == 1 and len(tables) == 1
    assert "base model" in tables[0] and "step 5" in tables[0]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "adapter" / "adapter_config.json").exists()


@pytest.mark.slow
def test_quickstart_headless_on_the_demo_model(tmp_path):
    """The command from the issue: papermill ... -p max_steps 5, on the real demo model."""
    notebook = run_papermill(tmp_path, ("max_steps", 5))
    assert len(outputs_of(notebook, "image/png")) == 1
    table = [h for h in outputs_of(notebook, "text/html") if "workbench-samples" in h][0]
    assert "Cusco" in table  # a held-out demo prompt, answered by base and tuned models
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "run finished at step 5" in printed and "tuned:" in printed
