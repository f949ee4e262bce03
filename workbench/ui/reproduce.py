"""The commands that rerun a dashboard's setup headless: a YAML config for `workbench
train`, and the notebook run with the form's values as papermill parameters.

The YAML fixes every field. A notebook takes only some fields as parameters and sets
the rest itself (the quickstart derives lora.alpha, warm-up, sample prompts...), so
its command reproduces the setup as far as those parameters reach; both are shown.
"""

from __future__ import annotations

import html
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from workbench.config import RunConfig, config_to_yaml
from workbench.notebooks.parameters import (QUICKSTART, QUICKSTART_PARAMETERS,  # noqa: F401
                                            notebook_parameters)

CONFIG_FILE = "config.yaml"


@dataclass(frozen=True)
class Reproduction:
    yaml: str
    train_command: str
    notebook_command: str | None = None
    papermill_command: str | None = None
    parameters: tuple[tuple[str, object], ...] = ()


def reproduction(config: RunConfig, notebook: str | None = QUICKSTART,
                 parameters: dict[str, str] | None = None) -> Reproduction:
    """The YAML and commands for `config`; `parameters` maps the notebook's parameter
    names to config fields (the quickstart's by default)."""
    yaml = config_to_yaml(config, "# made by the workbench dashboard's Reproduce button\n")
    train = f"workbench train {CONFIG_FILE}"
    if not notebook:
        return Reproduction(yaml, train)
    mapping = QUICKSTART_PARAMETERS if parameters is None else parameters
    chosen = [(name, _portable(value) if mapping[name].endswith("path") else value)
              for name, value in notebook_parameters(config, mapping).items()]
    flags = "".join(f" -p {name} {shlex.quote(str(value))}" for name, value in chosen)
    out = Path(notebook).with_suffix("").name + "-executed.ipynb"
    return Reproduction(yaml, train, f"workbench notebook run {shlex.quote(notebook)}{flags}",
                        f"papermill {shlex.quote(notebook)} {out} -k python3{flags}", tuple(chosen))


def _portable(path: str) -> str:
    """A path under the working directory, written relative to it (it travels with the
    project to a bigger machine); anything else as given."""
    absolute = Path(path).resolve()
    try:
        return os.path.relpath(absolute) if absolute.is_relative_to(Path.cwd()) else path
    except ValueError:  # another drive on Windows
        return path


def reproduce_html(made: Reproduction) -> str:
    parts = [f"<p><b>Exactly this setup</b>: save the YAML below as <code>{CONFIG_FILE}</code>, "
             f"then run</p><pre>{html.escape(made.train_command)}</pre>",
             f'<pre class="workbench-reproduce-yaml" style="max-height:20em;overflow:auto;'
             f'border:1px solid #d9d9d9;padding:4px">{html.escape(made.yaml)}</pre>']
    if made.notebook_command:
        parts.append("<p><b>The notebook, headless</b>, with the values it takes as parameters "
                      "(it sets the other fields itself, as in its code; the YAML above fixes "
                      f"every field):</p><pre>{html.escape(made.notebook_command)}\n"
                      f"{html.escape(made.papermill_command)}</pre>")
    return '<div class="workbench-reproduce">' + "".join(parts) + "</div>"
