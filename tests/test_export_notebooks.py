"""The stacking and export notebooks run headless with papermill on the tiny model and
leave a readable report."""

import re
import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = [REPO / "notebooks" / name for name in ("03-stack-and-merge-adapters.ipynb",
                                                    "04-export.ipynb")]


def run_papermill(notebook: Path, tmp_path, *parameters) -> nbformat.NotebookNode:
    out = tmp_path / "out.ipynb"
    command = [sys.executable, "-m", "papermill", str(notebook), str(out), "-k", "python3",
               "--cwd", str(tmp_path), "-p", "runs_dir", str(tmp_path / "runs")]
    for name, value in parameters:
        command += ["-p", name, str(value)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return nbformat.read(out, as_version=4)


def printed(notebook) -> str:
    return "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))


def html_outputs(notebook) -> list[str]:
    return [o["data"]["text/html"] for c in notebook.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if "text/html" in o.get("data", {})]


def test_stack_notebook_headless_on_a_tiny_model(orders_subset, tmp_path):
    from small_vocab import small_model_dir

    model = small_model_dir(tmp_path / "small-model")
    notebook = run_papermill(NOTEBOOKS[0], tmp_path, ("model", model),
                             ("dataset", orders_subset), ("max_steps", 2),
                             ("max_new_tokens", 4))
    tables = [h for h in html_outputs(notebook) if "workbench-stack" in h]
    assert len(tables) == 4 and "cat(json" in tables[1] and "<th>combined</th>" in tables[0]
    text = printed(notebook)
    assert "json: finished at step 2" in text and "friendly: finished at step 2" in text
    assert "ExportResult(format='hf'" in text and "template check: ok" in text
    assert "['00-json-" in text  # the merged adapter copied into the stacked run
    runs = {p.name.split("-")[0] for p in (tmp_path / "runs").iterdir() if p.is_dir()}
    assert runs == {"json", "friendly", "combined"}


def test_export_notebook_headless_on_a_tiny_model(orders_subset, tmp_path):
    from small_vocab import small_model_dir

    model = small_model_dir(tmp_path / "small-model")  # a small vocabulary reads back fast
    notebook = run_papermill(NOTEBOOKS[1], tmp_path, ("model", model),
                             ("dataset", orders_subset), ("max_steps", 2), ("quant", "f16"))
    text = printed(notebook)
    assert 'PARAMETER stop "<|im_end|>"' in text and "FROM ./to-export-" in text
    assert re.search(r"tokenizer.ggml.eos_token_id +2\n", text)
    assert "problems: none" in text and "ollama " in text
    assert "f16: largest logit difference 0.00" in text
    assert re.search(r"llama.cpp check of to-export-.*\(MOSTLY_F16, 0\.\d MB\): passed", text)
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.name.startswith("to-export")]
    assert {p.name for p in (run / "export").iterdir()} >= {"hf", "ollama",
                                                             f"{run.name}-f16.gguf"}
