"""Evaluation beyond loss: scorers on a table of cases, your own scorer by module:function
or as a callable, bad scorers refused before training, scores at every evaluation in
metrics.jsonl and the summary, the forgetting check, and win-rate intervals."""

import json
import math

import pytest

from conftest import tiny_config, write_jsonl
from workbench.engine.rundir import RunDir
from workbench.engine.run import Run
from workbench.errors import ConfigError
from workbench.evaluation import ratings, scorers
from workbench.events import EvalScored

ORDER = '{"name": "Ana", "city": "Lisbon", "item": "lamp", "quantity": 3}'
SCORER_CASES = [
    # (scorer, answer, reference, score)
    ("exact", "  Paris\n", "Paris", 1.0),
    ("exact", "paris", "Paris", 0.0),
    ("json_equal", '{"quantity": 3, "item": "lamp", "city": "Lisbon", "name": "Ana"}', ORDER, 1.0),
    ("json_equal", '{"name":"Ana","city":"Lisbon","item":"lamp","quantity":3}', ORDER, 1.0),
    ("json_equal", '{"name": "Ana", "city": "Lisbon", "item": "lamp", "quantity": "3"}', ORDER, 0.0),
    ("json_equal", 'Sure! {"name": "Ana"}', ORDER, 0.0),
    ("json_equal", ORDER, "not json", 0.0),
    ("json_equal", ORDER.replace('"Ana"', '" Ana"'), ORDER, 0.0),  # the demo's strictness
    ("json_equal", ORDER.replace("lamp", "lamps"), ORDER, 0.0),
    ("json_equal", "", ORDER, 0.0),
    ("json_valid", '[1, 2]', "", 1.0),
    ("json_valid", "{'single': 'quotes'}", "", 0.0),
    ("contains", "The capital is PARIS.", "Paris", 1.0),
    ("contains", "The capital is Lyon.", "Paris", 0.0),
    ("regex:^\\{.*\\}$", '{"a": 1}', "", 1.0),
    ("regex:^\\{.*\\}$", 'x {"a": 1}', "", 0.0),
    ("regex:\\d+ (lamp|lamps)", "3 lamps to Lisbon", "", 1.0),
    ("max_words:3", "one two three", "", 1.0),
    ("max_words:3", "one two three four", "", 0.0),
]


@pytest.mark.parametrize("name,answer,reference,expected", SCORER_CASES)
def test_each_builtin_scorer_on_a_table_of_cases(name, answer, reference, expected):
    scorer = scorers.resolve(name)
    assert scorers.score_value(scorer, "a prompt", answer, reference) == expected


@pytest.mark.parametrize("spec,words", [
    ("nonsense", "unknown scorer 'nonsense'"), ("regex:(", "does not compile"),
    ("regex:", "give a pattern"), ("max_words:many", "whole number of words"),
    ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
    ("json:nope", "module 'json' has no 'nope'"), ("json:__doc__", "is not a function"),
])
def test_a_bad_scorer_name_is_refused_with_what_to_use(spec, words):
    with pytest.raises(ConfigError) as refused:
        scorers.resolve_all([spec])
    (problem,) = refused.value.problems
    assert problem.key == "eval.scorers" and words in problem.message


def test_the_config_refuses_scorers_without_held_out_data():
    with pytest.raises(ConfigError, match="eval.scorers need examples to answer"):
        tiny_config("m", "d.jsonl", "runs", data={"eval_fraction": 0},
                    eval={"scorers": ["exact"]})


def write_module(folder, name, source):
    (folder / f"{name}.py").write_text(source)
    return f"{name}"


def test_scores_at_every_evaluation_and_in_the_summary(tiny_model_dir, orders_subset, tmp_path,
                                                      monkeypatch):
    """json_valid (built in), a module:function scorer and a notebook callable, scored on the
    base model at step 0, at each eval_every and at the end."""
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_module(tmp_path, "my_scorers_ok",
                          "def starts_with_brace(prompt, answer, reference):\n"
                          "    return answer.strip().startswith('{')\n")

    def has_digit(prompt, answer, reference):
        return any(ch.isdigit() for ch in answer)

    seen = []
    config = tiny_config(tiny_model_dir, orders_subset, tmp_path / "runs",
                         train={"max_steps": 6, "eval_every": 3},
                         eval={"scorers": ["json_valid", f"{module}:starts_with_brace"],
                               "max_examples": 4})
    result = Run(config, sinks=[seen.append], scorers=[has_digit]).execute()
    scored = [e for e in seen if isinstance(e, EvalScored)]
    assert [(e.step, e.adapter) for e in scored] == [(0, False), (3, True), (6, True)]
    names = {"json_valid", "starts_with_brace", "has_digit"}
    assert all(set(e.scores) == names and e.examples == 4 for e in scored)
    assert all(0 <= v <= 1 for e in scored for v in e.scores.values())
    rows = [r for r in RunDir(result.run_dir).metrics() if "scored_examples" in r]
    assert [(r["step"], r["adapter"]) for r in rows] == [(0, False), (3, True), (6, True)]
    assert {f"score/{n}" for n in names} <= set(rows[-1])
    assert result.summary["scores"] == {"base": scored[0].scores, "final": scored[-1].scores,
                                        "final_step": 6}
    answers = RunDir(result.run_dir).file("answers.jsonl").read_text().splitlines()
    assert len(answers) == 12 and {"where", "prompt", "reference", "answer", "scores"} <= set(
        json.loads(answers[0]))
    env = json.loads(RunDir(result.run_dir).file("environment.json").read_text())
    assert {"name": "has_digit", "source": "callable"} in env["evaluation"]["scorers"]


@pytest.mark.parametrize("every,scored_steps", [(0, [6]), (2, [2, 4, 6]), (4, [4, 6])])
def test_eval_every_sets_how_often_answers_are_scored_apart_from_the_loss(
        tiny_model_dir, orders_subset, tmp_path, every, scored_steps):
    config = tiny_config(tiny_model_dir, orders_subset, tmp_path / "runs",
                         train={"max_steps": 6, "eval_every": 3},
                         eval={"scorers": ["json_valid"], "max_examples": 2, "every": every,
                               "general_text": None})
    result = Run(config).execute()
    rows = RunDir(result.run_dir).metrics()
    assert [r["step"] for r in rows if "scored_examples" in r] == [0] + scored_steps
    assert [r["step"] for r in rows if "eval_loss" in r] == [3, 6]  # the loss keeps its own


@pytest.mark.parametrize("body,words", [
    ("    raise KeyError('answer')", "raised KeyError"),
    ("    return 'yes'", "returned 'yes'"),
    ("    return 2.5", "returned 2.5"),
    ("    return None", "returned None"),
])
def test_a_scorer_that_raises_or_returns_a_non_number_is_refused_before_training(
        tiny_model_dir, orders_subset, tmp_path, monkeypatch, body, words):
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"bad_scorer_{abs(hash(body)) % 10**6}"
    write_module(tmp_path, name, f"def judge(prompt, answer, reference):\n{body}\n")
    config = tiny_config(tiny_model_dir, orders_subset, tmp_path / "runs",
                         eval={"scorers": [f"{name}:judge"]})
    with pytest.raises(ConfigError) as refused:
        Run(config).execute()
    message = str(refused.value)
    assert f"scorer 'judge' ({name}:judge)" in message and words in message
    assert "orders.jsonl line" in message  # the example it broke on
    assert not (tmp_path / "runs").exists()  # refused before a run folder or a model


def test_the_forgetting_check_reports_the_relative_change(tiny_model_dir, orders_subset,
                                                          tmp_path):
    texts = write_jsonl(tmp_path / "general.jsonl",
                        [{"text": "The tide comes in twice a day."},
                         {"text": "Bread rises because yeast makes gas."}])
    config = tiny_config(tiny_model_dir, orders_subset, tmp_path / "runs",
                         train={"max_steps": 6, "learning_rate": 3e-2},
                         eval={"general_text": str(texts)})
    seen = []
    result = Run(config, sinks=[seen.append]).execute()
    base, final = [e for e in seen if isinstance(e, EvalScored)]
    assert base.general_change is None and base.scores == {}
    assert final.general_change == pytest.approx(
        (final.general_loss - base.general_loss) / base.general_loss)
    general = result.summary["general_text"]
    assert general["base_loss"] == base.general_loss and general["change"] == final.general_change
    assert general["flagged"] == (final.general_change > 0.10)
    # a random model's loss is about ln(vocabulary), and training on orders moves it
    assert math.isclose(base.general_loss, math.log(49152), rel_tol=0.05)
    assert final.general_loss != base.general_loss


def test_a_run_continuing_an_adapter_is_also_scored_where_it_starts(tiny_model_dir,
                                                                   orders_subset, tmp_path):
    """With the adapter off, a `continue` run is the base model, not the earlier adapter it
    starts from: step 0 is scored both ways, and the summary keeps the start's scores."""
    texts = write_jsonl(tmp_path / "general.jsonl", [{"text": "The tide comes in twice a day."}])
    settings = {"train": {"max_steps": 4, "learning_rate": 3e-2},
                "eval": {"scorers": ["json_valid"], "max_examples": 2,
                         "general_text": str(texts)}}
    first = Run(tiny_config(tiny_model_dir, orders_subset, tmp_path / "runs", **settings)).execute()
    seen = []
    config = tiny_config(tiny_model_dir, orders_subset, tmp_path / "runs", **settings,
                         lora={"start_from": str(first.run_dir), "start_mode": "continue"})
    second = Run(config, sinks=[seen.append]).execute()
    base, start, final = [e for e in seen if isinstance(e, EvalScored)]
    assert [(e.step, e.adapter) for e in (base, start, final)] == [(0, False), (0, True),
                                                                   (4, True)]
    before = first.summary["general_text"]
    assert base.general_loss == pytest.approx(before["base_loss"], rel=1e-5)
    assert start.general_loss == pytest.approx(before["final_loss"], rel=1e-5)
    assert start.general_loss != pytest.approx(base.general_loss, rel=1e-3)
    assert second.summary["scores"]["start"] == start.scores
    assert "start" not in first.summary["scores"]  # a fresh adapter starts at the base


def test_the_builtin_general_text_loads_and_off_means_off(tiny_model_dir, orders_subset, tmp_path):
    from workbench.evaluation.general import general_texts

    assert len(general_texts("builtin")) == 30
    assert general_texts(None) == []
    config = tiny_config(tiny_model_dir, orders_subset, tmp_path, eval={"general_text": None})
    result = Run(config).execute()
    assert "scores" not in result.summary and "general_text" not in result.summary


@pytest.mark.parametrize("wins,trials,low,high", [
    (8, 10, 0.4902, 0.9433), (0, 5, 0.0, 0.4345), (5, 5, 0.5655, 1.0),
    (50, 100, 0.4038, 0.5962), (1, 1, 0.2065, 1.0), (3, 12, 0.0889, 0.5322),
])
def test_win_rate_intervals_are_wilson_intervals(wins, trials, low, high):
    found = ratings.wilson(wins, trials)
    assert found == pytest.approx((low, high), abs=5e-4)
    assert ratings.wilson(0, 0) is None


def test_a_tally_counts_wins_losses_ties_and_both_bad_between_two_models():
    def row(a, b, choice):
        return ratings.rating_row("p", (a, "x"), (b, "y"), choice)

    rows = [row("tuned", "base", "a"), row("base", "tuned", "b"), row("base", "tuned", "a"),
            row("tuned", "base", "tie"), row("tuned", "base", "both_bad"),
            row("tuned", "other", "a")]  # another pair: not counted
    found = ratings.tally(rows, "tuned", "base")
    assert (found.wins, found.losses, found.ties, found.both_bad) == (2, 1, 1, 1)
    assert found.win_rate == pytest.approx(2 / 3) and found.count == 5
    assert "2 wins, 1 losses, 1 ties, 1 both bad" in found.describe()
    assert ratings.preference_pairs(rows[:3]) == [
        {"prompt": "p", "chosen": "x", "rejected": "y"},
        {"prompt": "p", "chosen": "y", "rejected": "x"},
        {"prompt": "p", "chosen": "x", "rejected": "y"}]


def run_cli(*args, cwd=None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True,
                          text=True, cwd=cwd)


def test_workbench_eval_prints_a_table_and_writes_it_into_the_run_folder(
        tiny_model_dir, orders_subset, tmp_path):
    from pathlib import Path

    config = tiny_config(tiny_model_dir, orders_subset, tmp_path / "runs",
                         train={"max_steps": 2}, eval={"general_text": None})
    run_dir = Run(config).execute().run_dir
    done = run_cli("eval", str(run_dir), "--scorer", "json_valid", "--scorer", "max_words:40",
                   "--limit", "3")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert run_dir.name in header and "base" in header
    assert rows[0].startswith("json_valid") and rows[1].startswith("max_words:40")
    assert "(3 examples from the run's held-out split)" in done.stdout
    (written,) = run_dir.glob("eval-*.json")
    saved = json.loads(written.read_text())
    assert saved["models"] == [run_dir.name, "base"] and saved["examples"] == 3
    assert set(saved["scores"]["base"]) == {"json_valid", "max_words:40"}
    assert len(saved["answers"][run_dir.name]) == 3

    corpus = Path(__file__).parent / "data_corpus" / "many_problems.jsonl"
    bad = run_cli("eval", str(run_dir), "--scorer", "exact", "--data", str(corpus))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "many_problems.jsonl line 2: not valid JSON" in bad.stderr
    none = run_cli("eval", str(run_dir))
    assert none.returncode == 2 and "no scorers: give --scorer NAME" in none.stderr
    missing = run_cli("eval", str(tmp_path / "nowhere"), "--scorer", "exact")
    assert missing.returncode == 2 and "is not a run folder" in missing.stderr
