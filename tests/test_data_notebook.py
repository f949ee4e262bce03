"""notebooks/02-your-own-data.ipynb runs headless: check, report, clean, then train."""

import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "02-your-own-data.ipynb"


def test_own_data_notebook_runs_on_a_tiny_model(tiny_model_dir, tmp_path):
    out = tmp_path / "out.ipynb"
    command = [sys.executable, "-m", "papermill", str(NOTEBOOK), str(out), "-k", "python3",
               "--cwd", str(tmp_path), "-p", "model", tiny_model_dir, "-p", "max_steps", "2",
               "-p", "runs_dir", str(tmp_path / "runs")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    notebook = nbformat.read(out, as_version=4)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    printed = "".join(o.get("text", "") for o in outputs)
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    # the planted problems, named by line (240 demo rows, then the planted ones)
    for words in ("4 problem(s)", "messy-orders.jsonl line 243: no assistant turn",
                  "messy-orders.jsonl line 244: message 0 has role 'User'",
                  "messy-orders.jsonl line 245: not valid JSON",
                  "messy-orders.jsonl line 246: message 0 'content' must be a string",
                  "tokens per example:", "longer than max_length 256 (cut at the end): 1 ",
                  "nothing left to train after the cut", "exact_duplicate",
                  "messy-orders.jsonl line 247: too_long", "run finished at step 2"):
        assert words in printed, words
    assert '<span style="background:#c7e9c0">' in html  # the highlighted example
    assert "line-through\">" in html and "the box was wet" in html  # the longest, cut
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # histogram, loss
    clean = tmp_path / "clean-data"
    assert {p.name for p in clean.iterdir()} == {"train.jsonl", "eval.jsonl", "dropped.jsonl",
                                                  "clean.json"}
    (run,) = list((tmp_path / "runs").iterdir())
    assert (run / "adapter" / "adapter_config.json").exists()
    assert "clean-data/train.jsonl" in (run / "config.yaml").read_text()
