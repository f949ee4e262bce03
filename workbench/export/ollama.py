"""An Ollama `Modelfile` beside a GGUF file: the chat template restated in Ollama's Go
template syntax, the default system prompt, and the stop tokens.

    ollama create my-model -f out/ollama/Modelfile
    ollama run my-model

Ollama falls back on guessing a template from the GGUF metadata when a Modelfile has none,
and a missing `PARAMETER stop` is the usual cause of answers that never end, so both are
written out. The template is derived from the tokenizer's own (`templates.turn_format`) and
checked against it in `templates.round_trip`.
"""

from __future__ import annotations

from workbench.errors import ExportError
from workbench.export.templates import TurnFormat

ROLES = ("system", "user", "assistant")


def stop_strings(tokenizer, turns: TurnFormat) -> list[str]:
    """The end-of-turn token, and EOS when it is another token."""
    return [s for s in dict.fromkeys([turns.end_of_turn, tokenizer.eos_token]) if s]


def go_template(turns: TurnFormat) -> str:
    """The TurnFormat as an Ollama template over `.Messages`. Plain `{{ }}` only: the
    trimming form `{{-` would eat the newlines many templates put between turns."""
    branches = []
    for role in ROLES:
        if role in turns.prefix:
            branches.append(f'{"if" if not branches else "else if"} eq .Role "{role}" }}}}'
                            f'{turns.prefix[role]}{{{{ .Content }}}}{turns.suffix[role]}')
    body = "{{ " + "{{ ".join(branches) + "{{ end }}"
    return f"{turns.preamble}{{{{ range .Messages }}}}{body}{{{{ end }}}}{turns.generation}"


def modelfile(gguf_name: str, turns: TurnFormat, stops: list[str]) -> str:
    """The Modelfile text for `gguf_name` (a file in the same folder)."""
    pieces = [turns.preamble, turns.generation, turns.default_system or ""]
    pieces += list(turns.prefix.values()) + list(turns.suffix.values())
    if any('"""' in p or "{{" in p or "}}" in p for p in pieces):
        raise ExportError('the chat template contains """ or {{ }} in its fixed text, which an '
                          "Ollama Modelfile cannot quote; use the GGUF file without a Modelfile")
    lines = [f"FROM ./{gguf_name}", "", f'TEMPLATE """{go_template(turns)}"""']
    if turns.default_system is not None:
        lines.append(f'SYSTEM """{turns.default_system}"""')
    lines.append("")
    lines += [f"PARAMETER stop {_quoted(stop)}" for stop in stops]
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
