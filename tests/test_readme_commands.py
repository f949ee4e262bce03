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


def files_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return text[text.index("## Files\n"):]


def test_the_readme_file_map_names_every_module():
    section = files_section()
    rows = {line.split("|")[1].strip().strip("`"): line for line in section.splitlines()
            if line.startswith("| `")}
    missing = []
    for path in sorted((REPO / "workbench").rglob("*.py")):
        relative = path.relative_to(REPO)
        if relative.name == "__init__.py" and relative.parent.name != "backends":
            continue  # a package's __init__ is its row
        top = f"{relative.parts[0]}/{relative.parts[1]}"
        if len(relative.parts) == 2:
            named = str(relative) in section or f"`{relative.name}`" in rows.get("workbench/cli.py", "")
        else:
            named = f"`{relative.name}`" in rows.get(top + "/", "")
        if not named:
            missing.append(str(relative))
    assert not missing, f"README.md's file map does not name {missing}"
