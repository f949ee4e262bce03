"""The real demo model, end to end: the promise in the README, measured."""

import json
import os
import subprocess
import sys

import pytest

from workbench.demo import is_correct, run_demo


@pytest.mark.parametrize("answer,correct", [
    ('{"name": "Ana", "city": "Oslo", "item": "mug", "quantity": 2}', True),
    ('  {"quantity": 2, "item": "mug", "city": "Oslo", "name": "Ana"}\n', True),
    ('{"name": " Ana", "city": "Oslo", "item": "mug", "quantity": 2}', False),
    ('{"name": "Ana", "city": "Oslo", "item": "mugs", "quantity": 2}', False),
    ('{"name": "Ana", "city": "Oslo", "item": "mug", "quantity": "2"}', False),
    ('Sure! {"name": "Ana", "city": "Oslo", "item": "mug", "quantity": 2}', False),
    ("", False),
])
def test_demo_scoring_is_exact(answer, correct):
    expected = {"name": "Ana", "city": "Oslo", "item": "mug", "quantity": 2}
    assert is_correct(answer, expected) is correct


@pytest.mark.slow
def test_demo_meets_its_targets(tmp_path):
    report = run_demo(runs_dir=str(tmp_path), print_fn=lambda *_: None)
    assert report["status"] == "finished"
    assert report["held_out"] >= 20
    assert report["base_success"] <= 0.30, report["base_success"]
    assert report["tuned_success"] >= 0.80, report["tuned_success"]
    run_dir = report["run_dir"]
    for name in ("config.yaml", "environment.json", "metrics.jsonl", "samples.jsonl",
                 "summary.json", "loss.png", "demo_results.json", "adapter/adapter_config.json"):
        assert os.path.exists(os.path.join(run_dir, name)), name

    prompt = ("Extract the order as JSON with keys name, city, item, quantity.\n\n"
              "Hi, this is Hugo from Leeds. Please send 3 lanterns.")
    answer = subprocess.run([sys.executable, "-m", "workbench", "generate", run_dir,
                             "--prompt", prompt], capture_output=True, text=True, timeout=300)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout) == {"name": "Hugo", "city": "Leeds", "item": "lantern",
                                         "quantity": 3}
