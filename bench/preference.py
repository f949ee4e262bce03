"""Benchmark 10: a DPO step, workbench vs TRL 1.9.2's DPOTrainer, on the CPU.

Same model (the demo, LoRA r16 alpha 32 on all linear layers), same pairs (the first
pairs of the preference demo's data), same batch (4 pairs), max_length 512, float32
(`bf16=False, use_cpu=True` for TRL), gradient checkpointing off, 10 steps each, in a
fresh process each (so peak memory is each one's own). Reported: the median step time
from step 2 on, the one-off reference pass (workbench computes the reference
log-probabilities once before training; TRL recomputes them every step with the adapter
off), and peak RSS; then the same for an SFT run on the same sequences (each pair's
chosen and rejected answers as 8 chat examples a step), for the memory comparison.

    python bench/preference.py [--steps 10] [--pairs 40]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import demo_lora, machine, median_step, peak_rss_mb, step_clock

BATCH = 4


def pairs(count: int) -> list[dict]:
    from workbench.demo import BREVITY_FILE, data_path

    lines = data_path(BREVITY_FILE).read_text(encoding="utf-8").splitlines()[:count]
    return [json.loads(line) for line in lines]


def run_workbench(method: str, steps: int, count: int) -> dict:
    from workbench.config import RunConfig
    from workbench.engine.rundir import RunDir
    from workbench.engine.run import Run

    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data.jsonl"
        rows = pairs(count)
        if method == "sft":  # the same sequences, as chat examples: 2 per pair
            rows = [{"messages": [{"role": "user", "content": r["prompt"]},
                                  {"role": "assistant", "content": r[side]}]}
                    for r in rows for side in ("chosen", "rejected")]
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        config = RunConfig.from_dict({
            "model": {"name": "demo"}, "lora": {"r": 16, "alpha": 32},
            "data": {"path": str(data), "eval_fraction": 0, "max_length": 512},
            "train": {"method": method, "max_steps": steps, "learning_rate": 1e-4,
                      "batch_size": BATCH * (2 if method == "sft" else 1), "log_every": 1,
                      "save_every": 0},
            "eval": {"general_text": None}, "output": {"runs_dir": folder, "name": "bench"}})
        began = time.perf_counter()
        result = Run(config).execute()
        wall = time.perf_counter() - began
        rows = [r for r in RunDir(result.run_dir).metrics() if "loss" in r]
    times = [b["elapsed_seconds"] - a["elapsed_seconds"] for a, b in zip(rows, rows[1:])]
    return {"who": f"workbench {method}", "median_step_seconds": round(statistics.median(times), 2),
            "wall_seconds": round(wall, 1), "peak_rss_mb": round(peak_rss_mb()),
            "first_loss": rows[0]["loss"], "last_loss": rows[-1]["loss"]}


def run_trl(steps: int, count: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    from workbench.backends.loading import load_tokenizer
    from workbench.backends.models import resolve_model

    source = resolve_model("demo")
    tokenizer = load_tokenizer(source, False)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    rows = pairs(count)
    dataset = Dataset.from_dict({k: [[{"role": "user", "content": r["prompt"]}]
                                     if k == "prompt" else [{"role": "assistant",
                                                             "content": r[k]}]
                                     for r in rows] for k in ("prompt", "chosen", "rejected")})
    clock, marks = step_clock()
    with tempfile.TemporaryDirectory() as folder:
        args = DPOConfig(output_dir=folder, bf16=False, use_cpu=True, max_steps=steps,
                         per_device_train_batch_size=BATCH, learning_rate=1e-4, max_length=512,
                         gradient_checkpointing=False, logging_steps=1, report_to="none",
                         save_strategy="no", beta=0.1, dataloader_num_workers=0)
        trainer = DPOTrainer(model=model, args=args, train_dataset=dataset,
                             processing_class=tokenizer, callbacks=[clock],
                             peft_config=demo_lora())
        began = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - began
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"who": "trl 1.9.2 DPOTrainer", "median_step_seconds": median_step(marks),
            "wall_seconds": round(wall, 1), "peak_rss_mb": round(peak_rss_mb()),
            "first_loss": losses[0], "last_loss": losses[-1]}


def child(which: str, steps: int, count: int) -> None:
    result = run_trl(steps, count) if which == "trl" else run_workbench(which, steps, count)
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps, args.pairs)
        return
    results = []
    for which in ("dpo", "trl", "sft"):
        done = subprocess.run([sys.executable, __file__, "--child", which, "--steps",
                               str(args.steps), "--pairs", str(args.pairs)],
                              capture_output=True, text=True)
        line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{which} failed")
        results.append(json.loads(line[7:]))
        print(json.dumps(results[-1]), flush=True)
    ours, trl = results[0], results[1]
    print(json.dumps({"machine": machine(), "speedup_vs_trl": round(
        trl["median_step_seconds"] / ours["median_step_seconds"], 2),
        "dpo_peak_over_sft_peak": round(ours["peak_rss_mb"] / results[2]["peak_rss_mb"], 2)},
        indent=2))


if __name__ == "__main__":
    main()
