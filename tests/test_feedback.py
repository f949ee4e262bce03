"""The dashboard's Teach tab, driven without a browser: the model drafts answers, judgements
land in the run folder at once, and Train on my feedback runs DPO (or KTO) stacked on the
judged run, whose rewards the dashboard then shows."""

import json

from conftest import tiny_config
from workbench.engine.rundir import RunDir
from workbench.ui.dashboard import Dashboard

PROMPTS = ["Two lattes to Lyon", "Ana in Lisbon wants 3 lamps", "cancel my order"]


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_judge_drafts_then_train_on_the_feedback(tiny_model_dir, orders_subset, tmp_path):
    config = tiny_config(tiny_model_dir, orders_subset, tmp_path / "runs", train={"max_steps": 2},
                         sample={"prompts": PROMPTS[:1], "max_new_tokens": 12},
                         eval={"general_text": None})
    dash = Dashboard(config, interactive=False)
    try:
        first = dash.start()
        panel = dash.feedback
        answers = panel.draft(PROMPTS)
        assert len(answers) == 3 and all(1 <= len(a) <= 2 for a in answers)
        assert len(panel.before) == 3 and panel.folder == first.run_dir / "feedback"
        two = [p for p, a in enumerate(answers) if len(a) == 2]  # sampled answers that differ
        assert len(two) >= 2
        panel.best(two[0], 1)
        pairs = rows(panel.folder / "pairs.jsonl")
        assert pairs == [{"prompt": PROMPTS[two[0]], "chosen": answers[two[0]][1],
                          "rejected": answers[two[0]][0]}]  # on disk at once
        panel.best(two[1], 0)
        panel.thumb(two[0], 0, up=False)
        panel.thumb(two[1], 0, up=True)
        labels = rows(panel.folder / "labels.jsonl")
        assert [r["label"] for r in labels] == [False, True]
        assert not panel.train_button.disabled and not panel.keep_button.disabled
        kept = rows(panel.keep_liked())
        assert kept == [{"messages": [{"role": "user", "content": PROMPTS[two[1]]},
                                      {"role": "assistant", "content": answers[two[1]][0]}]}]
        trained = panel.train(steps=3)  # headless: the dashboard runs it to the end
        assert trained.status == "finished" and trained.run_dir.name.startswith("feedback-dpo-")
        config = RunDir(trained.run_dir).read_config()
        assert config.train.method == "dpo" and config.lora.start_from == str(first.run_dir)
        assert "reward_accuracy" in RunDir(trained.run_dir).metrics()[-1] or any(
            "reward_accuracy" in r for r in RunDir(trained.run_dir).metrics())
        assert "reward accuracy" in dash.live.history["scores"]  # charted in the dashboard
        compared = panel.compare()
        assert compared["before"] == panel.before and len(compared["after"]) == 3
        assert "workbench-feedback-compare" in panel.comparison.value
        assert dash.feedback.train_config("kto").train.method == "kto"
    finally:
        dash.close()
