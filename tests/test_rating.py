"""Blind A/B rating, driven without a browser: every click is in ratings.jsonl at once, the
A/B order is drawn per prompt and recorded, keys work as buttons, and the dashboard's Rate
tab compares its run's tuned and base models."""

import json

import pytest

from conftest import tiny_config
from workbench.engine.run import Run
from workbench.evaluation.ratings import read_ratings
from workbench.ui.dashboard import Dashboard
from workbench.ui.rate import RatingPanel

PROMPTS = ["Two lattes to Lyon", "Ana in Lisbon wants 3 lamps", "cancel my order",
           "Olu from Cusco: 5 blankets", "hello there", "Greta in Austin, one kettle"]


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, tmp_path_factory):
    from conftest import ORDERS

    root = tmp_path_factory.mktemp("rate")
    config = tiny_config(tiny_model_dir, ORDERS, root / "runs",
                         train={"max_steps": 4, "save_every": 2},
                         sample={"prompts": PROMPTS[:2], "max_new_tokens": 8},
                         eval={"general_text": None})
    return Run(config).execute().run_dir


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_each_click_is_saved_at_once_with_who_was_a_and_b(finished_run):
    ratings = finished_run / "ratings.jsonl"
    ratings.unlink(missing_ok=True)
    panel = RatingPanel.between(finished_run, prompts=PROMPTS, seed=3)
    assert panel.first.label == finished_run.name and panel.second.label == "base"
    assert "Prompt 1 of 6" in panel.heading.value and not lines(ratings)
    clicks = ["a", "b", "tie", "both_bad", "a"]
    for count, choice in enumerate(clicks, start=1):
        shown = panel.current()
        panel.buttons[choice].click()
        rows = lines(ratings)
        assert len(rows) == count  # on disk before the next prompt shows
        row = rows[-1]
        assert row["prompt"] == shown["prompt"] and row["choice"] == choice
        assert (row["a"]["model"], row["a"]["answer"]) == shown["a"]
        assert (row["b"]["model"], row["b"]["answer"]) == shown["b"]
        expected = {"a": shown["a"][0], "b": shown["b"][0]}.get(choice)
        assert row["winner"] == expected
        assert f"A was {shown['a'][0]}" in panel.notice.value
    orders = [row["a"]["model"] for row in lines(ratings)]
    assert set(orders) == {finished_run.name, "base"}  # drawn per prompt, both orders occur
    panel.key_box.value = "x"  # the key box: x is both bad
    assert lines(ratings)[-1]["choice"] == "both_bad" and panel.done
    assert all(button.disabled for button in panel.buttons.values())
    assert "All 6 prompts rated" in panel.heading.value
    tallied = panel.tally()
    assert tallied.count == 6 and tallied.ties == 1 and tallied.both_bad == 2
    assert "preferred" in panel.score.value
    assert len(read_ratings(ratings)) == 6  # the file reads back as ratings


def test_the_order_is_random_per_prompt_but_reproducible_with_a_seed(finished_run, tmp_path):
    def orders(seed):
        panel = RatingPanel.between(finished_run, prompts=PROMPTS, seed=seed,
                                    path=tmp_path / f"r{seed}.jsonl")
        panel.current()
        return panel.order

    assert orders(11) == orders(11)
    assert len({tuple(orders(seed)) for seed in range(6)}) > 1


def test_checkpoint_against_checkpoint_and_run_against_run(finished_run, tmp_path):
    panel = RatingPanel.between(finished_run, checkpoint=2, other_checkpoint=4,
                                prompts=PROMPTS[:1], path=tmp_path / "c.jsonl")
    assert (panel.first.label, panel.second.label) == (f"{finished_run.name}@2",
                                                       f"{finished_run.name}@4")
    panel.rate("a")
    other = RatingPanel.between(finished_run, finished_run, prompts=PROMPTS[:1],
                                path=tmp_path / "r.jsonl")
    assert other.second.label == f"{finished_run.name} (2)"  # two sides never share a name


def test_the_dashboard_rate_tab_rates_tuned_against_base(tiny_model_dir, orders_subset, tmp_path):
    config = tiny_config(tiny_model_dir, orders_subset, tmp_path / "runs",
                         train={"max_steps": 2},
                         sample={"prompts": PROMPTS[:2], "max_new_tokens": 8},
                         eval={"general_text": None})
    dash = Dashboard(config, interactive=False)
    try:
        result = dash.start()
        dash.rate_button.click()
        panel = dash.rating
        assert dash.tabs.selected_index == 3 and panel in dash.rate_box.children
        assert panel.prompts[:2] == PROMPTS[:2] and len(panel.prompts) > 2  # + held-out prompts
        for choice in ("a", "b", "tie"):
            panel.buttons[choice].click()
        rows = lines(result.run_dir / "ratings.jsonl")
        assert [r["choice"] for r in rows] == ["a", "b", "tie"]
        assert {r["a"]["model"] for r in rows} | {r["b"]["model"] for r in rows} == {"tuned",
                                                                                      "base"}
    finally:
        dash.close()


def test_rating_while_training_runs_is_refused_in_the_status_line(tiny_model_dir, orders_subset,
                                                                 tmp_path):
    dash = Dashboard(tiny_config(tiny_model_dir, orders_subset, tmp_path), interactive=True)
    dash.rate_button.click()
    assert "no model yet" in dash.live.status.value and dash.rating is None
