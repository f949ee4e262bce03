"""Details the browser test showed: list fields in the dashboard form (sample.prompts) hold
one entry per line, or entries that span lines separated by a `---` line (the demo prompts
span lines, and the form once split each into an instruction-only and a message-only
prompt); an empty model answer is shown as such, not as a blank; a second run does not
inherit the first run's chart axes."""

import pytest

from workbench.ui.form import ConfigForm
from workbench.ui.render import chat_html, samples_table_html

PROMPT_LISTS = [
    ["one line"],
    ["first prompt", "second prompt"],
    ["Extract the order as JSON.\n\nHi, this is Olu from Cusco. Please send 5 blankets."],
    ["Extract the order as JSON.\n\nhey its Greta in Austin", "a one-liner", "two\nlines"],
]


@pytest.mark.parametrize("prompts", PROMPT_LISTS)
def test_prompts_round_trip_through_the_form(prompts):
    form = ConfigForm()
    form.set_values({"data": {"path": "x.jsonl"}, "sample": {"prompts": prompts}})
    assert form.config().sample.prompts == prompts


@pytest.mark.parametrize("typed,prompts", [
    ("first\n\n  second  \n", ["first", "second"]),
    ("Extract this.\n\nHi from Lima\n---\nand this\n---\n", ["Extract this.\n\nHi from Lima",
                                                           "and this"]),
    ("  ---  \nonly one\nprompt", ["only one\nprompt"]),
])
def test_typed_prompts(typed, prompts):
    form = ConfigForm()
    form.set_values({"data": {"path": "x.jsonl"}})
    form.inputs["sample.prompts"].value = typed
    assert form.config().sample.prompts == prompts


def test_an_empty_answer_is_labelled_not_blank():
    transcript = chat_html([("you", "hi"), ("tuned", ""), ("base", "hello")])
    assert transcript.count("(empty answer)") == 1 and "hello" in transcript
    table = samples_table_html({"p": ""}, {5: {"p": "x"}}, ["p", "q"])
    assert table.count("(empty answer)") == 1 and "<i>…</i>" in table  # q: not answered yet


def test_a_new_run_starts_with_a_fresh_chart():
    from workbench.ui.live import LiveView

    fresh = LiveView()
    fresh.redraw()
    view = LiveView()
    view.history.update(step=[1, 2, 3], loss=[10.8, 10.7, 10.6], learning_rate=[1e-3] * 3,
                        grad_norm=[0.6, 0.7, 0.6])
    view.redraw()
    assert view.chart.value != fresh.chart.value
    view.reset()  # what Start does before the next run
    view.redraw()
    assert view.chart.value == fresh.chart.value  # not the last run's axis ranges


def test_the_setup_form_shows_the_newcomer_fields_first_and_folds_the_rest():
    from workbench.ui.form import FIRST_FIELDS

    form = ConfigForm()
    rows = [child for child in form.children if hasattr(child, "children")][:len(FIRST_FIELDS)]
    assert [row.children[0].value for row in rows] == list(FIRST_FIELDS)
    assert form.advanced.selected_index is None  # folded
    folded = {row.children[1] for row in form.advanced.children[0].children
              if hasattr(row, "children")}
    assert form.inputs["train.warmup_steps"] in folded
    assert form.inputs["train.max_steps"] not in folded
    form.set_values({"data": {"path": "x.jsonl"}})
    assert form.advanced.selected_index is None
    form.inputs["train.warmup_steps"].value = "-3"  # a problem in a folded field ...
    assert form.advanced.selected_index == 0  # ... opens the fold, so it is seen
    assert "must be &gt;= 0" in form.errors["train.warmup_steps"].value


def test_charts_without_data_say_so_instead_of_drawing_empty_axes(tmp_path):
    from workbench.plots.live import LiveChart
    from workbench.plots.loss import overlay_figure, render_loss_png
    from workbench.ui.live import empty_history

    chart = LiveChart()
    chart.png(empty_history())
    assert all(note.get_visible() for note in chart.waiting)
    assert not any(axes.xaxis.get_visible() or axes.yaxis.get_visible() for axes in chart.axes)
    history = {**empty_history(), "step": [1, 2], "loss": [2.0, 1.5],
               "learning_rate": [1e-3, 1e-3], "grad_norm": [1.0, 0.9]}
    chart.png(history)
    shown = [note.get_visible() for note in chart.waiting]
    # held-out loss, scores and the forgetting check are still waiting
    assert shown == [False, True, True, True, False, False]
    assert chart.axes[0].xaxis.get_visible() and not chart.axes[1].xaxis.get_visible()
    history.update(scores={"exact": ([2], [0.5])}, base_scores={"exact": 0.1},
                   general_step=[2], general_change=[0.04])
    chart.png(history)
    assert not any(note.get_visible() for note in chart.waiting[2:4])
    line, base = chart.score_lines["exact"]
    assert list(line.get_ydata()) == [0.5] and list(base.get_ydata()) == [0.1, 0.1]
    empty = overlay_figure({}, "select runs to compare")
    (axes,) = empty.axes
    assert [t.get_text() for t in axes.texts] == ["select runs to compare"]
    assert not axes.xaxis.get_visible()
    render_loss_png([], [], [], [], tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
