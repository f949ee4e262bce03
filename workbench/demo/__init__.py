"""`workbench demo`: teach SmolLM2-135M-Instruct to turn customer messages into JSON orders.

The base model cannot do it reliably; a few minutes of LoRA on a laptop CPU can.
Success is judged by the `json_equal` scorer on held-out messages whose names and cities
never appear in training (the answer must parse as JSON and equal the expected object):
the run itself scores them before training (adapter off) and after, like any run with
`eval.scorers`, and the demo reads its report from the run folder.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

from workbench.config import RunConfig
from workbench.errors import ConfigError

INTRO = """workbench demo: teach SmolLM2-135M-Instruct (135M parameters) to turn a customer
message into a one-line JSON order, with {steps} LoRA steps on this machine's CPU.
The first run converts the bundled GGUF weights once (about 30 s); then you will see the
untuned model's answers, the training log, and base vs tuned success on held-out messages.
"""

TRAIN_FILE = "orders.jsonl"
TEST_FILE = "orders_test.jsonl"


def data_path(name: str = TRAIN_FILE) -> Path:
    return Path(str(resources.files("workbench.demo").joinpath(name)))


def test_cases(limit: int | None = None) -> list[tuple[str, dict]]:
    """(prompt, expected object) pairs the model never trains on."""
    cases = []
    for line in data_path(TEST_FILE).read_text(encoding="utf-8").splitlines():
        messages = json.loads(line)["messages"]
        cases.append((messages[0]["content"], json.loads(messages[1]["content"])))
    return cases[:limit] if limit else cases


def sample_prompts(dataset: str | Path, count: int = 3) -> list[str]:
    """Prompts to watch a run answer: for the demo's data, held-out messages it never trains
    on; for any other file, the first examples' first user turns (or their raw prompts)."""
    from workbench.data import load_examples

    if Path(dataset).resolve() == data_path().resolve():
        return [prompt for prompt, _ in test_cases(count)]
    _, examples = load_examples(str(dataset))
    users = [next((m["content"] for m in e.messages if m["role"] == "user"), None)
             for e in examples if e.messages]
    prompts = [u for u in users if u] or [e.prompt for e in examples if e.prompt]
    return prompts[:count]


# Same effective batch (8); the workshop profile trades about 20% speed for memory
# (half the batch per pass, gradient checkpointing) to fit Binder's 2 GB.
PROFILES = {
    "laptop": {"batch_size": 8, "grad_accum": 1, "gradient_checkpointing": False},
    "workshop": {"batch_size": 4, "grad_accum": 2, "gradient_checkpointing": True},
}


SCORER = "json_equal"
BREVITY_FILE, BREVITY_TEST_FILE = "brevity.jsonl", "brevity_test.jsonl"
BREVITY_JUDGE = "workbench.demo.brevity:one_sentence"
BREVITY_SCORER = "one_sentence"  # the metric: score/one_sentence
PREFERENCE_INTRO = """workbench demo --method {method_lower}: teach SmolLM2-135M-Instruct to answer everyday
questions in one sentence, from pairs that prefer a one-sentence answer over a chatty one
({method}, {steps} steps on this machine's CPU). Held-out questions are judged by code before
and after: one sentence of at most 20 words.
"""


def preference_config(runs_dir: str = "runs", max_steps: int = 60, method: str = "dpo",
                      held_out: int = 20) -> RunConfig:
    """The preference demo: DPO (or KTO) on pairs that prefer a one-sentence answer, judged
    on held-out questions by `workbench.demo.brevity:one_sentence`."""
    prompts = [json.loads(line)["prompt"] for line in data_path(BREVITY_TEST_FILE)
               .read_text(encoding="utf-8").splitlines()[:3]]
    return RunConfig.from_dict({
        "model": {"name": "demo"},
        "lora": {"r": 16, "alpha": 32},
        "data": {"path": str(data_path(BREVITY_FILE)), "eval_fraction": 0.1,
                 "max_length": 160},
        "train": {"method": method, "learning_rate": 2e-4, "max_steps": max_steps,
                  "warmup_steps": 5, "scheduler": "cosine", "batch_size": 4, "log_every": 5,
                  "eval_every": 0, "save_every": 20},
        # DPO with the chosen answers' own loss beside it (RPO): measured on 2 cores, pure
        # DPO at 5e-4 reached 70% but forgot facts (general text +26%); at 1e-4, 40%; this
        # reached 100% with general text +1.3% (docs/benchmarks.md, row 11).
        "preference": {"beta": 0.1, "sft_weight": 1.0 if method == "dpo" else 0.0},
        "sample": {"prompts": prompts, "max_new_tokens": 64},
        "eval": {"scorers": [BREVITY_JUDGE], "data": str(data_path(BREVITY_TEST_FILE)),
                 "max_examples": held_out, "max_new_tokens": 64, "general_text": "builtin"},
        "output": {"runs_dir": runs_dir, "name": f"demo-{method}"},
    })


def demo_config(runs_dir: str = "runs", max_steps: int = 60, profile: str = "laptop",
                held_out: int = 20) -> RunConfig:
    """The demo's run: `held_out` test messages scored with json_equal before and after."""
    if profile not in PROFILES:
        raise ConfigError([f"demo profile {profile!r} is not known; use one of "
                           f"{', '.join(PROFILES)}"])
    prompts = [prompt for prompt, _ in test_cases(3)]
    return RunConfig.from_dict({
        "model": {"name": "demo"},
        "lora": {"r": 16, "alpha": 32},
        "data": {"path": str(data_path()), "eval_fraction": 0.1, "max_length": 256},
        "train": {"learning_rate": 1e-3, "max_steps": max_steps, "warmup_steps": 5,
                  "scheduler": "cosine", "log_every": 5, "eval_every": 20, "save_every": 20,
                  **PROFILES[profile]},
        "sample": {"prompts": prompts, "every": 20, "max_new_tokens": 48},
        # scored at the start and the end only (bench/evaluation.py: each scoring costs
        # as much as several steps); the held-out loss still comes every 20 steps
        "eval": {"scorers": [SCORER], "data": str(data_path(TEST_FILE)),
                 "max_examples": held_out, "max_new_tokens": 40, "every": 0},
        "output": {"runs_dir": runs_dir, "name": "demo"},
    })


def demo_results(run_dir: str | Path, scorer: str = SCORER) -> dict:
    """Base and tuned success on the held-out messages, from the run folder: the scorer's
    scores in summary.json, and each message's answers in answers.jsonl."""
    from workbench.engine.rundir import ANSWERS, RunDir, read_jsonl

    folder = RunDir.open(run_dir)
    summary = folder.summary()
    scores = summary.get("scores") or {}
    rows = read_jsonl(folder.file(ANSWERS))
    base = [r for r in rows if not r["adapter"]]
    last = max((r["step"] for r in rows if r["adapter"]), default=None)
    tuned = {r["where"]: r for r in rows if r["adapter"] and r["step"] == last}
    return {"status": summary.get("status"), "run_dir": str(folder.path),
            "base_success": (scores.get("base") or {}).get(scorer),
            "tuned_success": (scores.get("final") or {}).get(scorer), "held_out": len(base),
            # a run that continues an earlier adapter (the GRPO demo): scored where it starts
            "start_success": (scores.get("start") or {}).get(scorer),
            "train_seconds": summary.get("elapsed_seconds"),
            "examples": [{"prompt": b["prompt"], "expected": b["reference"],
                          "base": b["answer"], "base_correct": b["scores"][scorer] == 1,
                          "tuned": tuned[b["where"]]["answer"] if b["where"] in tuned else "",
                          "tuned_correct": b["where"] in tuned and
                          tuned[b["where"]]["scores"][scorer] == 1} for b in base]}


def run_demo(runs_dir: str = "runs", max_steps: int | None = None, print_fn=print,
             profile: str = "laptop", method: str = "sft") -> dict:
    """Train the demo (the run scores the held-out messages before and after), write
    demo_results.json; return it. `max_steps` None: the method's own (60; GRPO 30)."""
    from workbench.api import default_sinks
    from workbench.engine.run import Run

    began = time.perf_counter()
    if method == "sft":
        max_steps = max_steps or 60
        print_fn(INTRO.format(steps=max_steps))
        config, scorer = demo_config(runs_dir, max_steps, profile), SCORER
    elif method == "grpo":
        from workbench.demo import rewards

        max_steps = max_steps or rewards.GRPO_STEPS
        print_fn(rewards.INTRO.format(start=rewards.START_STEPS, steps=max_steps))
        start = Run(rewards.start_config(runs_dir, profile), sinks=default_sinks()).execute()
        config = rewards.grpo_config(str(start.run_dir), runs_dir, max_steps, profile)
        scorer = SCORER
    else:
        max_steps = max_steps or 60
        print_fn(PREFERENCE_INTRO.format(steps=max_steps, method=method.upper(),
                                         method_lower=method))
        config, scorer = preference_config(runs_dir, max_steps, method), BREVITY_SCORER
    result = Run(config, sinks=default_sinks()).execute()
    report = {**demo_results(result.run_dir, scorer), "method": method, "scorer": scorer,
              "total_seconds": round(time.perf_counter() - began, 1)}
    (Path(result.run_dir) / "demo_results.json").write_text(json.dumps(report, indent=2))
    print_fn(format_report(report))
    return report


def format_report(report: dict, shown: int = 4) -> str:
    lines = ["", "=" * 72]
    for row in report["examples"][:shown]:
        message = row["prompt"].split("\n\n", 1)[-1]
        lines += [f"message: {message}",
                  f"  base  {'OK ' if row['base_correct'] else 'BAD'} {_one_line(row['base'])}",
                  f"  tuned {'OK ' if row['tuned_correct'] else 'BAD'} {_one_line(row['tuned'])}",
                  ""]
    judged = ("the json_equal scorer: exact JSON match"
              if report.get("method", "sft") in ("sft", "grpo")
              else "judged by workbench.demo.brevity: one sentence, at most 20 words")
    start = report.get("start_success")
    start = f"start {start:.0%}  ->  " if start is not None else ""
    lines += [f"held-out success: base {report['base_success']:.0%}  ->  {start}tuned "
              f"{report['tuned_success']:.0%}  ({report['held_out']} messages; {judged})",
              f"demo took {report['total_seconds']:.0f} s; run folder: {report['run_dir']}",
              f"next: workbench generate {report['run_dir']} --prompt \"...\"",
              "      or open the dashboard and watch a run learn: workbench lab", "=" * 72]
    return "\n".join(lines)


def _one_line(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
