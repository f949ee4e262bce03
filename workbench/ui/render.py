"""Pure renderers for the dashboard: HTML strings from plain data (its charts are in
`workbench.plots`).

Model and dataset text is untrusted: every renderer escapes it (`html.escape`) before it
becomes HTML, as do the other widgets that build HTML (stack, chat, reproduce, compare).
"""

from __future__ import annotations

import html

from workbench.formatting import format_value

MAX_SAMPLE_COLUMNS = 6  # the base column plus the latest steps

STATE_COLOURS = {"idle": "#636363", "starting": "#3182bd", "running": "#3182bd",
                 "paused": "#e6550d", "stopping": "#e6550d", "finished": "#31a354",
                 "stopped": "#756bb1", "failed": "#de2d26"}


def status_html(state: str, detail: str = "") -> str:
    colour = STATE_COLOURS.get(state, "#636363")
    badge = (f'<span style="background:{colour};color:white;padding:1px 8px;'
             f'border-radius:8px;font-weight:bold">{html.escape(state)}</span>')
    return f'<div class="workbench-status">{badge} {html.escape(detail)}</div>'


def samples_table_html(base: dict[str, str], by_step: dict[int, dict[str, str]],
                       prompts: list[str]) -> str:
    """Prompts as rows; the base model's answer first, then the latest training steps."""
    if not prompts:
        return "<p><i>No sample prompts: add some under sample.prompts to watch answers " \
               "change as the model trains.</i></p>"
    steps = sorted(by_step)[-(MAX_SAMPLE_COLUMNS - 1):]
    head = "".join(f"<th>step {s}</th>" for s in steps)
    cell = 'style="vertical-align:top;text-align:left;white-space:pre-wrap;max-width:22em"'
    rows = []
    for prompt in prompts:
        answers = "".join(f"<td {cell}>{_text(by_step[s].get(prompt))}</td>" for s in steps)
        rows.append(f"<tr><th {cell}>{_text(prompt)}</th><td {cell}>{_text(base.get(prompt))}"
                    f"</td>{answers}</tr>")
    return ('<table class="workbench-samples"><thead><tr><th>prompt</th><th>base model</th>'
            f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


# A model can end its turn at once (an untrained model often does): say so, rather than
# show a blank that looks like a display fault.
EMPTY_ANSWER = '<i style="color:#969696">(empty answer)</i>'


def _text(value: str | None) -> str:
    if value is None:
        return "<i>…</i>"
    return html.escape(value) if value else EMPTY_ANSWER


PREVIEW_STYLES = {"trained": "background:#c7e9c0", "context": "color:#525252",
                  "cut": "color:#bdbdbd;text-decoration:line-through"}


def preview_html(examples: list[tuple[str, list[tuple[str, str]]]], note: str = "") -> str:
    """Rendered examples with trained text highlighted; examples are (where, segments)."""
    legend = ('<p><span style="background:#c7e9c0">green: trained</span> · grey: context the '
              'model reads but is not trained on · <span style="color:#bdbdbd;'
              'text-decoration:line-through">struck: cut at max_length</span></p>')
    blocks = []
    for where, segments in examples:
        body = "".join(f'<span style="{PREVIEW_STYLES[kind]}">{html.escape(text)}</span>'
                       for text, kind in segments)
        blocks.append(f"<div><b>{html.escape(str(where))}</b><pre style=\"white-space:pre-wrap;"
                      f"border:1px solid #d9d9d9;padding:4px\">{body}</pre></div>")
    extra = f"<p>{html.escape(note)}</p>" if note else ""
    return legend + extra + "".join(blocks)


def rollout_html(event) -> str:
    """Reward tuning's latest sampled answers, grouped by prompt, each with its reward."""
    rows, last = [], None
    for prompt, completion, reward in zip(event.prompts, event.completions, event.rewards):
        head = f"<th {_CELL}>{_text(prompt)}</th>" if prompt != last else f"<th {_CELL}></th>"
        last = prompt
        shown = "–" if reward != reward else f"{reward:.2f}"  # NaN: no function scored it
        rows.append(f"<tr>{head}<td {_CELL}>{_text(completion)}</td><td>{shown}</td></tr>")
    return (f"<p><b>Sampled at step {event.step}</b> (each prompt answered several times; "
            "rewards decide which answers it learns from)</p>"
            '<table class="workbench-rollouts"><thead><tr><th>prompt</th><th>answer</th>'
            f"<th>reward</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


_CELL = 'style="vertical-align:top;text-align:left;white-space:pre-wrap;max-width:30em"'


def runs_table_html(runs: list[dict]) -> str:
    if not runs:
        return "<p><i>No runs yet in this folder.</i></p>"
    columns = ("run", "status", "step", "final_loss", "best_eval_loss")
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(format_value(r.get(c)))}</td>"
                                 for c in columns)
                   + "</tr>" for r in runs)
    return f'<table class="workbench-runs"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def chat_html(turns: list[tuple[str, str]]) -> str:
    """A transcript; turns are (speaker, text) with speaker `you`, `tuned` or `base`."""
    colours = {"you": "#f0f0f0", "tuned": "#deebf7", "base": "#fee6ce"}
    parts = [f'<div style="background:{colours.get(who, "#ffffff")};padding:4px 8px;'
             f'margin:2px 0;border-radius:6px;white-space:pre-wrap"><b>{html.escape(who)}:</b> '
             f"{_text(text)}</div>" for who, text in turns]
    return "".join(parts) or "<p><i>Say something to the model.</i></p>"
