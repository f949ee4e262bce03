"""The real demo model, end to end: the promise in the README, measured."""

import json
import os
import re
import subprocess
import sys

import pytest

from workbench.demo import run_demo


@pytest.mark.slow
def test_demo_meets_its_targets(tmp_path):
    report = run_demo(runs_dir=str(tmp_path), print_fn=lambda *_: None)
    assert report["status"] == "finished"
    assert report["held_out"] >= 20
    assert report["base_success"] <= 0.30, report["base_success"]
    assert report["tuned_success"] >= 0.80, report["tuned_success"]
    run_dir = report["run_dir"]
    summary = json.loads(open(os.path.join(run_dir, "summary.json")).read())
    # the report is the run's own json_equal scores: base before training, final after it
    assert summary["scores"]["base"]["json_equal"] == report["base_success"]
    assert summary["scores"]["final"]["json_equal"] == report["tuned_success"]
    assert sum(row["tuned_correct"] for row in report["examples"]) == round(
        report["tuned_success"] * report["held_out"])
    for name in ("config.yaml", "environment.json", "metrics.jsonl", "samples.jsonl",
                 "answers.jsonl", "summary.json", "loss.png", "demo_results.json",
                 "adapter/adapter_config.json"):
        assert os.path.exists(os.path.join(run_dir, name)), name

    prompt = ("Extract the order as JSON with keys name, city, item, quantity.\n\n"
              "Hi, this is Hugo from Leeds. Please send 3 lanterns.")
    answer = subprocess.run([sys.executable, "-m", "workbench", "generate", run_dir,
                             "--prompt", prompt], capture_output=True, text=True, timeout=300)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout) == {"name": "Hugo", "city": "Leeds", "item": "lantern",
                                         "quantity": 3}


@pytest.mark.slow
def test_the_dpo_demo_teaches_one_sentence_answers(tmp_path):
    """workbench demo --method dpo: judged on held-out questions by code before and after."""
    report = run_demo(runs_dir=str(tmp_path), print_fn=lambda *_: None, method="dpo")
    assert report["status"] == "finished" and report["held_out"] == 20
    assert report["base_success"] <= 0.30, report["base_success"]
    assert report["tuned_success"] >= 0.80, report["tuned_success"]
    assert report["total_seconds"] < 600, report["total_seconds"]  # 10 minutes on 2 cores
    summary = json.loads(open(os.path.join(report["run_dir"], "summary.json")).read())
    assert summary["method"] == "dpo" and summary["final_metrics"]["reward_accuracy"] >= 0.9
    assert not summary["general_text"]["flagged"]  # it learned the style, not to forget


@pytest.mark.slow
def test_workbench_demo_method_grpo_starts_then_tunes_and_reports_all_three(tmp_path):
    """`workbench demo --method grpo` (2 GRPO steps here; its learning at the full 30 steps
    is the rewards notebook's slow test, which trains the same configs): a supervised
    start, then GRPO continuing it, scored before, at the start and after."""
    result = subprocess.run([sys.executable, "-m", "workbench", "demo", "--method", "grpo",
                             "--steps", "2", "--runs-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"held-out success: base \d+%  ->  start \d+%  ->  tuned \d+%", result.stdout)
    (report_path,) = tmp_path.glob("demo-grpo-2*/demo_results.json")
    report = json.loads(report_path.read_text())
    assert report["method"] == "grpo" and report["held_out"] == 20
    assert report["start_success"] is not None and report["tuned_success"] is not None
    summary = json.loads((report_path.parent / "summary.json").read_text())
    assert summary["method"] == "grpo" and summary["step"] == 2
    environment = json.loads((report_path.parent / "environment.json").read_text())
    assert environment["start_from"]["mode"] == "continue", environment["start_from"]
