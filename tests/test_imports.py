"""Heavy libraries load lazily, and the layers only import to their left."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import require

REPO = Path(__file__).resolve().parent.parent


def test_import_workbench_does_not_import_torch():
    code = ("import sys, workbench, workbench.config, workbench.cli, workbench.export.exporter; "
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'matplotlib', 'llama_cpp', "
            "'gguf') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def lint_imports() -> str | None:
    """The import-linter command next to this Python (LINT_IMPORTS overrides where to look)."""
    return os.environ.get("LINT_IMPORTS") or shutil.which(
        "lint-imports", path=str(Path(sys.executable).parent))


def test_import_layers_hold():
    command = lint_imports()
    require([] if command and os.access(command, os.X_OK) else
            ["import-linter (pip install -e '.[dev]')"], "the layer contracts")
    result = subprocess.run([command], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_missing_import_linter_fails_under_ci_and_only_skips_outside_it():
    def run(ci: str):
        env = {**os.environ, "CI": ci, "LINT_IMPORTS": "/nonexistent/lint-imports"}
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               f"{Path(__file__)}::test_import_layers_hold"], cwd=REPO, env=env,
                              capture_output=True, text=True)

    under_ci, outside = run("true"), run("")
    assert under_ci.returncode == 1 and "1 failed" in under_ci.stdout, under_ci.stdout
    assert "import-linter" in under_ci.stdout
    assert outside.returncode == 0 and "1 skipped" in outside.stdout, outside.stdout
