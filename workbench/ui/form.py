"""The config form, generated from the config's own field metadata.

Names, help text (as tooltips), choices and bounds all come from `workbench.config`,
so the form, the YAML file and `--set` overrides cannot drift apart. Values typed
into text boxes are read the way `--set` reads them (YAML scalars), and every
problem is shown next to its field as soon as it is typed.
"""

from __future__ import annotations

import dataclasses
import html

import ipywidgets as widgets

from workbench.config import SECTIONS, RunConfig, field_types
from workbench.errors import ConfigError, Problem

MODEL_CHOICES = ["demo"]  # plus whatever the user types: a folder, a .gguf file, a hub id
# What a newcomer changes first; every other field is folded under "Advanced".
FIRST_FIELDS = ("model.name", "data.path", "train.max_steps", "train.learning_rate", "lora.r",
                "sample.prompts")
LABEL_WIDTH = "13em"
# List boxes hold one entry per line; entries that span lines (a prompt with a blank line
# in it) are separated by a line holding only this instead.
SEPARATOR = "---"


class ConfigForm(widgets.VBox):
    """Every config field as a widget; `config()` returns the validated RunConfig."""

    def __init__(self, config: RunConfig | None = None, **kwargs):
        super().__init__(**kwargs)
        self.inputs: dict[str, widgets.Widget] = {}
        self.errors: dict[str, widgets.HTML] = {}
        self._fields: dict[str, dataclasses.Field] = {}
        self.general_errors = widgets.HTML()
        self._listeners = []
        fields = {f"{section}.{f.name}": f for section, cls in SECTIONS.items()
                  for f in dataclasses.fields(cls)}
        first = [self._row(key, fields[key], label=key) for key in FIRST_FIELDS]
        advanced = []
        for section in SECTIONS:
            rest = [key for key in fields if key.startswith(f"{section}.")
                    and key not in FIRST_FIELDS]
            advanced.append(widgets.HTML(f"<b>{section}</b>"))
            advanced += [self._row(key, fields[key]) for key in rest]
        self.advanced = widgets.Accordion(children=[widgets.VBox(advanced)],
                                          titles=("Advanced: every other setting",),
                                          selected_index=None)
        self.advanced.add_class("workbench-advanced")
        self.children = [self.general_errors, *first, self.advanced]
        self.set_config(config or RunConfig())
        for control in self.inputs.values():
            control.observe(self._changed, names="value")
        self._show_problems()

    # -- building ------------------------------------------------------------------------

    def _row(self, key: str, f: dataclasses.Field, label: str | None = None) -> widgets.HBox:
        help_text = f.metadata["help"].replace("`", "")
        control = _input_for(key, f)
        control.tooltip = help_text
        label = widgets.Label(label or key.split(".", 1)[1], tooltip=help_text,
                              layout=widgets.Layout(width=LABEL_WIDTH))
        error = widgets.HTML(layout=widgets.Layout(margin="0 0 0 8px"))
        self.inputs[key], self.errors[key], self._fields[key] = control, error, f
        return widgets.HBox([label, control, error])

    # -- values --------------------------------------------------------------------------

    def set_config(self, config: RunConfig) -> None:
        raw = config.to_dict()
        for key, control in self.inputs.items():
            section, name = key.split(".", 1)
            control.value = _to_widget(self._fields[key], control, raw[section][name])

    def set_values(self, raw: dict) -> None:
        """Set the fields named in a (possibly partial) nested config dict."""
        unknown = []
        for section, values in (raw or {}).items():
            for name, value in (values or {}).items():
                key = f"{section}.{name}"
                if key in self.inputs:
                    self.set_value(key, value)
                else:
                    unknown.append(Problem("unknown field", key=key))
        if unknown:
            raise ConfigError(unknown)

    def set_value(self, key: str, value) -> None:
        """Set one field from a Python value, as if typed (`form.set_value("train.max_steps", 5)`)."""
        if key not in self.inputs:
            raise ConfigError([Problem(f"unknown field; fields are {', '.join(self.inputs)}",
                                       key=key)])
        self.inputs[key].value = _to_widget(self._fields[key], self.inputs[key], value)

    def values(self) -> dict:
        """The form as a nested config dict (not yet validated)."""
        raw: dict = {section: {} for section in SECTIONS}
        for key, control in self.inputs.items():
            section, name = key.split(".", 1)
            raw[section][name] = _from_widget(self._fields[key], control)
        return raw

    def problems(self) -> list[Problem]:
        try:
            RunConfig.from_dict(self.values())
        except ConfigError as exc:
            return exc.problems
        return []

    def config(self) -> RunConfig:
        """The validated config; raises ConfigError listing every problem."""
        return RunConfig.from_dict(self.values())

    def on_change(self, callback) -> None:
        """Call `callback(problems)` whenever a field changes."""
        self._listeners.append(callback)

    def set_disabled(self, disabled: bool) -> None:
        for control in self.inputs.values():
            control.disabled = disabled

    # -- feedback ------------------------------------------------------------------------

    def _changed(self, change) -> None:
        problems = self._show_problems()
        for callback in self._listeners:
            callback(problems)

    def _show_problems(self) -> list[Problem]:
        """Each problem beside the field its key names; the rest (an unknown section) on top.
        A problem in a folded field opens the Advanced section, so it cannot hide there."""
        problems = self.problems()
        for key, error in self.errors.items():
            error.value = "".join(f'<span style="color:#de2d26">{html.escape(p.text)}</span><br>'
                                  for p in problems if p.key == key)
        self.general_errors.value = "".join(
            f'<div style="color:#de2d26">{html.escape(str(p))}</div>' for p in problems
            if p.key not in self.inputs)
        if any(p.key in self.inputs and p.key not in FIRST_FIELDS for p in problems):
            self.advanced.selected_index = 0
        return problems


def _input_for(key: str, f: dataclasses.Field) -> widgets.Widget:
    kinds = field_types(f)
    wide = widgets.Layout(width="28em")
    if f.metadata.get("choices"):
        return widgets.Dropdown(options=list(f.metadata["choices"]), layout=wide)
    if kinds == (bool,):
        return widgets.Checkbox(indent=False)
    if key == "model.name":
        return widgets.Combobox(options=MODEL_CHOICES, ensure_option=False, layout=wide,
                                placeholder="demo, a folder, a .gguf file or a hub id")
    if _is_text_list(kinds):
        return widgets.Textarea(placeholder=f"one per line; or a line of {SEPARATOR} between "
                                "entries that span lines", rows=3, layout=wide)
    return widgets.Text(layout=wide, continuous_update=True)


def _is_text_list(kinds: tuple) -> bool:
    return len(kinds) == 1 and getattr(kinds[0], "__origin__", None) is list


def _to_widget(f: dataclasses.Field, control, value):
    if isinstance(control, (widgets.Checkbox, widgets.Dropdown)):
        return value
    if isinstance(control, widgets.Textarea):
        if any("\n" in item for item in value or []):
            return "\n".join(f"{item}\n{SEPARATOR}" for item in value)
        return "\n".join(value or [])
    if value is None:
        return ""
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    return str(value)


def _list_entries(text: str) -> list[str]:
    lines = text.splitlines()
    if SEPARATOR not in (line.strip() for line in lines):
        return [line.strip() for line in lines if line.strip()]
    entries, current = [], []
    for line in lines + [SEPARATOR]:
        if line.strip() == SEPARATOR:
            entries.append("\n".join(current).strip())
            current = []
        else:
            current.append(line)
    return [entry for entry in entries if entry]


def _from_widget(f: dataclasses.Field, control):
    import yaml

    if isinstance(control, (widgets.Checkbox, widgets.Dropdown)):
        return control.value
    if isinstance(control, widgets.Textarea):
        return _list_entries(control.value)
    text = control.value.strip()
    kinds = field_types(f)
    if not text and type(None) in kinds:
        return None
    takes_list = any(_is_text_list((kind,)) for kind in kinds)
    if str in kinds and not (takes_list and text.startswith("[")):
        return text  # paths, names, prompts: never reinterpreted as YAML
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text
