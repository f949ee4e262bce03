"""CI runs exactly the README's test command, so a fresh clone is tested the documented way."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    command = readme[readme.index("# 2. set everything up and run the tests") + 1]
    ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command in ci_lines
    assert "export CI=true" in ci_lines  # a missing test tool fails instead of skipping
    assert "scripts/ensure-chromium" in command  # the browser tests need Chromium
