"""The dashboard driven without a browser: real widgets, a real (tiny) training run,
buttons pressed with .click() and results read from widget state."""

import html
import json
import re
import threading
import time

import pytest

from conftest import tiny_config, write_jsonl
from workbench.config import SECTIONS
from workbench.engine.rundir import RunDir
from workbench.events import StepLogged
from workbench.ui.dashboard import Dashboard
from workbench.ui.render import samples_table_html


def dashboard_for(config, **kwargs) -> Dashboard:
    return Dashboard(config, interactive=kwargs.pop("interactive", True), **kwargs)


def wait_for(predicate, seconds=120.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the dashboard")
        time.sleep(0.02)


def status_of(dash) -> str:
    return dash.live.status.get_state()["value"]


def test_the_form_is_the_config_fields_with_errors_beside_them():
    import dataclasses

    dash = Dashboard(interactive=True)
    form = dash.form
    expected = {f"{s}.{f.name}": f for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
    assert set(form.inputs) == set(expected)
    for key, f in expected.items():
        assert form.inputs[key].tooltip == f.metadata["help"].replace("`", ""), key
    assert dash.start_button.disabled  # data.path is required
    assert "required" in form.general_errors.value or "required" in form.errors["data.path"].value
    form.set_value("data.path", "x.jsonl")
    form.inputs["lora.r"].value = "0"
    form.inputs["train.learning_rate"].value = "fast"
    assert "must be &gt;= 1" in form.errors["lora.r"].get_state()["value"]
    assert "got &#x27;fast&#x27;" in form.errors["train.learning_rate"].value
    assert form.errors["train.max_steps"].value == ""
    assert dash.start_button.disabled
    form.inputs["lora.r"].value = "8"
    form.inputs["train.learning_rate"].value = "2e-4"
    form.inputs["sample.prompts"].value = "first prompt\nsecond prompt"
    assert not dash.start_button.disabled
    config = form.config()
    assert (config.lora.r, config.train.learning_rate) == (8, 2e-4)
    assert config.sample.prompts == ["first prompt", "second prompt"]


def test_start_pause_chat_save_resume_stop(tiny_model_dir, orders_subset, tmp_path):
    config = tiny_config(tiny_model_dir, orders_subset, tmp_path, train={
        "max_steps": 200, "save_every": 0, "eval_every": 5},
        sample={"prompts": ["I want two <b>lattes</b>"], "every": 5, "max_new_tokens": 6})
    stop_requested_at, armed = [], threading.Event()

    def press_stop_at_next_step(event):  # press Stop from inside the loop: a known step
        if armed.is_set() and isinstance(event, StepLogged) and not stop_requested_at:
            stop_requested_at.append(event.step)
            dash.stop_button.click()

    dash = dashboard_for(config, redraw_seconds=0.0, sinks=[press_stop_at_next_step])
    dash.start_button.click()
    wait_for(lambda: dash.live.step >= 3)
    assert dash.start_button.disabled and not dash.pause_button.disabled
    assert "running" in status_of(dash) and "/ 200" in status_of(dash)
    assert dash.live.chart.get_state()["value"][:4] == b"\x89PNG"

    dash.pause_button.click()
    wait_for(lambda: dash.state == "paused")
    paused_at = dash.live.step
    time.sleep(0.5)
    assert dash.live.step == paused_at  # the worker really holds
    answers = dash.chat("I want two <i>lattes</i>", model="both")
    assert set(answers) == {"tuned", "base"}
    transcript = dash.chat_panel.transcript.value
    assert "&lt;i&gt;lattes&lt;/i&gt;" in transcript and "<i>lattes" not in transcript
    dash.save_button.click()
    wait_for(lambda: RunDir(dash.run.run_dir.path).last_checkpoint() is not None, 60)
    assert RunDir(dash.run.run_dir.path).last_checkpoint().name == f"checkpoint-{paused_at}"

    dash.resume_button.click()
    wait_for(lambda: dash.live.step >= paused_at + 3)
    armed.set()
    result = dash.wait(120)
    assert result.status == "stopped"
    assert result.summary["step"] == stop_requested_at[0] + 1  # honoured within one step
    assert "stopped" in status_of(dash) and dash.start_button.disabled is False
    samples = dash.live.samples.value
    assert "&lt;b&gt;lattes&lt;/b&gt;" in samples and "base model" in samples
    assert "step 5" in samples
    assert dash.chat("cancel my order")["tuned"] is not None  # chat after the run ends


def test_requests_through_the_run_folder_steer_a_dashboard_run_and_its_buttons(
        tiny_model_dir, orders_subset, tmp_path):
    from workbench.engine.steering import send_request

    config = tiny_config(tiny_model_dir, orders_subset, tmp_path, train={
        "max_steps": 2000, "save_every": 0})
    dash = dashboard_for(config, redraw_seconds=0.0)
    dash.start_button.click()
    wait_for(lambda: dash.live.step >= 2)
    run_dir = dash.run.run_dir.path

    send_request(run_dir, "pause")  # as `workbench pause RUN_DIR` in a terminal does
    wait_for(lambda: dash.state == "paused")
    assert not dash.resume_button.disabled and dash.pause_button.disabled
    paused_at = dash.live.step
    time.sleep(0.5)
    assert dash.live.step == paused_at

    send_request(run_dir, "resume")
    wait_for(lambda: dash.live.step >= paused_at + 2)
    assert dash.resume_button.disabled and not dash.pause_button.disabled

    send_request(run_dir, "stop")
    result = dash.wait(120)
    assert result.status == "stopped" and paused_at + 2 <= result.summary["step"] < 2000
    assert "stopped" in status_of(dash) and not dash.start_button.disabled


def test_a_bad_dataset_line_turns_the_status_red_and_names_it(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": broken\n', encoding="utf-8")
    dash = dashboard_for(tiny_config(tiny_model_dir, bad, tmp_path))
    dash.start_button.click()
    dash.wait(60)
    assert dash.state == "failed"
    assert "bad.jsonl line 2: not valid JSON" in status_of(dash)
    assert dash.error_pane.layout.display == "none"  # a user error needs no traceback
    assert not dash.start_button.disabled  # fix the file and start again


def test_a_crash_shows_the_traceback_and_keeps_the_run_folder(tiny_model_dir, orders_subset,
                                                              tmp_path, monkeypatch):
    import workbench.engine.run as run_module

    def a_bug(*args, **kwargs):
        raise ValueError("unexpected adapter layout")

    monkeypatch.setattr(run_module, "save_adapter", a_bug)  # fails after training
    dash = dashboard_for(tiny_config(tiny_model_dir, orders_subset, tmp_path,
                                     train={"max_steps": 4}))
    dash.start_button.click()
    dash.wait(120)
    assert dash.state == "failed" and "unexpected adapter layout" in status_of(dash)
    assert dash.error_pane.layout.display is None
    assert "Traceback" in dash.error_text.value and "a_bug" in dash.error_text.value
    folder = RunDir(dash.run.run_dir.path)
    assert folder.summary()["status"] == "failed"
    assert [r["step"] for r in folder.metrics() if "loss" in r] == [1, 2, 3, 4]  # kept


def test_headless_start_blocks_and_leaves_a_report(tiny_model_dir, orders_subset, tmp_path):
    config = tiny_config(tiny_model_dir, orders_subset, tmp_path, train={"max_steps": 6},
                         sample={"prompts": ["cancel my order"], "every": 3, "max_new_tokens": 4})
    dash = dashboard_for(config, interactive=False, redraw_seconds=3600)
    result = dash.start()  # no thread: returns when the run is over
    assert result.status == "finished" and dash._thread is None
    # Throttled: drawn when the run starts and when it ends, not on each of the 6 steps.
    assert dash.live.redraws == 2
    assert dash.live.chart.value[:4] == b"\x89PNG"
    table = dash.live.samples.value
    assert "base model" in table and "step 3" in table and "step 6" in table
    assert result.run_dir.name in dash.history.table.value


def test_unthrottled_view_redraws_on_every_step(tiny_model_dir, orders_subset, tmp_path):
    dash = dashboard_for(tiny_config(tiny_model_dir, orders_subset, tmp_path,
                                     train={"max_steps": 5}), interactive=False, redraw_seconds=0)
    dash.start()
    # start, each logged step, the final eval, the forgetting check (base, final), end
    assert dash.live.redraws == 1 + 5 + 1 + 2 + 1


def test_history_overlays_selected_runs(tiny_model_dir, orders_subset, tmp_path):
    for seed in (1, 2):
        Dashboard(tiny_config(tiny_model_dir, orders_subset, tmp_path,
                              train={"max_steps": 3, "seed": seed}), interactive=False).start()
    dash = Dashboard(tiny_config(tiny_model_dir, orders_subset, tmp_path), interactive=True)
    names = dash.history.select.options
    assert len(names) == 2 and "finished" in dash.history.table.value
    empty = dash.history.chart.value
    dash.history.select.value = tuple(names)
    assert dash.history.chart.value[:4] == b"\x89PNG" and dash.history.chart.value != empty


def test_preview_highlights_exactly_the_trained_text(tiny_model_dir, orders_subset, tmp_path):
    dash = dashboard_for(tiny_config(tiny_model_dir, orders_subset, tmp_path))
    dash.preview_button.click()
    preview = dash.preview.value
    first = json.loads(orders_subset.read_text(encoding="utf-8").splitlines()[0])
    answer = [m for m in first["messages"] if m["role"] == "assistant"][0]["content"]
    question = [m for m in first["messages"] if m["role"] == "user"][0]["content"]
    first_block = preview.split("<pre")[1]
    trained = "".join(re.findall(r'<span style="background:#c7e9c0">(.*?)</span>', first_block,
                                 re.S))
    assert trained.startswith(html.escape(answer)) and html.escape(question) not in trained
    assert html.escape(question) in first_block
    assert "48 examples, format messages" in preview


def test_model_text_is_escaped_in_the_samples_grid():
    table = samples_table_html({"<p>": "<script>alert(1)</script>"},
                               {5: {"<p>": "</td><b>x"}}, ["<p>"])
    assert "<script>" not in table and "&lt;script&gt;" in table
    assert "</td><b>" not in table and "&lt;/td&gt;&lt;b&gt;x" in table
