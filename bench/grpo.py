"""Benchmark 12: reward tuning (GRPO) on the CPU.

1. Rollouts: the demo model answers 2 prompts 4 times each (48 new tokens, sampled):
   workbench's batched `sample_rollout` (8 sequences in one `generate` with the KV cache)
   against plain `model.generate` called once per answer. Tokens per second.
2. A GRPO step, workbench against TRL 1.9.2's GRPOTrainer (`bf16=False, use_cpu=True`):
   the demo model with LoRA r16 on all linear layers, 2 prompts x 4 answers, 48 completion
   tokens, two reward functions (json_valid and max_words:20: they vary on the base model
   from the start, which json_equal does not), 8 steps
   each in a fresh process; the median step time from step 2 on.

    python bench/grpo.py [--steps 8]
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

PROMPTS, GENERATIONS, NEW_TOKENS = 2, 4, 48


def order_rows(count: int) -> list[dict]:
    from workbench.demo import data_path

    rows = []
    for line in data_path().read_text(encoding="utf-8").splitlines()[:count]:
        user, answer = json.loads(line)["messages"]
        rows.append({"prompt": user["content"], "answer": answer["content"]})
    return rows


def rollouts() -> dict:
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    from workbench.backends.loading import load_tokenizer
    from workbench.backends.models import resolve_model
    from workbench.config import GrpoSettings
    from workbench.engine.grpo import render_prompts, sample_rollout

    source = resolve_model("demo")
    tokenizer = load_tokenizer(source, False)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    rows = order_rows(PROMPTS)
    batch = {"messages": [[{"role": "user", "content": r["prompt"]}] for r in rows],
             "raw": [None] * PROMPTS, "prompts": [r["prompt"] for r in rows], "columns": {}}
    settings = GrpoSettings(rewards=["json_valid"], num_generations=GENERATIONS,
                            max_completion_length=NEW_TOKENS)
    # tokens: every answer runs to 48 tokens here (no early end), so both count the same work
    stop = None
    sample_rollout(model, tokenizer, batch, settings, [], chat=True, seed=0)  # warm-up
    began = time.perf_counter()
    done = sample_rollout(model, tokenizer, batch, settings, [], chat=True, seed=1)
    batched = time.perf_counter() - began
    texts = render_prompts(batch, tokenizer, True, None)
    config = GenerationConfig(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                              do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                              pad_token_id=tokenizer.pad_token_id)
    began, tokens = time.perf_counter(), 0
    for text in texts:
        encoded = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        for _ in range(GENERATIONS):
            output = model.generate(**encoded, generation_config=config)
            tokens += output.shape[1] - encoded["input_ids"].shape[1]
    single = time.perf_counter() - began
    return {"batched_tokens": done.new_tokens, "batched_seconds": round(batched, 2),
            "batched_tokens_per_second": round(done.new_tokens / batched, 1),
            "one_at_a_time_tokens": tokens, "one_at_a_time_seconds": round(single, 2),
            "one_at_a_time_tokens_per_second": round(tokens / single, 1),
            "speedup": round((done.new_tokens / batched) / (tokens / single), 2)}


def step_workbench(steps: int) -> dict:
    from workbench.config import RunConfig
    from workbench.engine.rundir import RunDir
    from workbench.engine.run import Run

    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "prompts.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in order_rows(40)))
        config = RunConfig.from_dict({
            "model": {"name": "demo"}, "lora": {"r": 16, "alpha": 32},
            "data": {"path": str(data), "eval_fraction": 0, "max_length": 256},
            "train": {"method": "grpo", "max_steps": steps, "batch_size": PROMPTS * GENERATIONS,
                      "learning_rate": 1e-5, "log_every": 1, "save_every": 0},
            "grpo": {"rewards": ["json_valid", "max_words:20"], "num_generations": GENERATIONS,
                     "max_completion_length": NEW_TOKENS, "temperature": 1.0},
            "eval": {"general_text": None}, "output": {"runs_dir": folder, "name": "bench"}})
        began = time.perf_counter()
        try:
            result = Run(config).execute()
        except Exception as exc:  # the reward check may refuse constant rewards; say so
            return {"who": "workbench grpo", "error": str(exc)}
        wall = time.perf_counter() - began
        rows = [r for r in RunDir(result.run_dir).metrics() if "loss" in r]
    times = [b["elapsed_seconds"] - a["elapsed_seconds"] for a, b in zip(rows, rows[1:])]
    return {"who": "workbench grpo", "median_step_seconds": round(statistics.median(times), 2),
            "wall_seconds": round(wall, 1), "peak_rss_mb": round(peak_rss_mb()),
            "rollout_tokens_per_second": round(statistics.median(
                r["rollout_tokens_per_second"] for r in rows), 1)}


def step_trl(steps: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from workbench.backends.loading import load_tokenizer
    from workbench.backends.models import resolve_model
    from workbench.evaluation.rewards import resolve_rewards

    source = resolve_model("demo")
    tokenizer = load_tokenizer(source, False)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    rows = order_rows(40)
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": r["prompt"]}]
                                            for r in rows],
                                 "answer": [r["answer"] for r in rows]})
    functions = []
    for reward in resolve_rewards(["json_valid", "max_words:20"]):
        def function(prompts, completions, _r=reward, **columns):
            texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
            return _r.function(["" for _ in texts], texts, **columns)
        function.__name__ = reward.name
        functions.append(function)
    clock, marks = step_clock()
    with tempfile.TemporaryDirectory() as folder:
        args = GRPOConfig(output_dir=folder, bf16=False, use_cpu=True, max_steps=steps,
                          per_device_train_batch_size=PROMPTS * GENERATIONS,
                          num_generations=GENERATIONS, max_completion_length=NEW_TOKENS,
                          temperature=1.0, learning_rate=1e-5, logging_steps=1,
                          report_to="none", save_strategy="no", gradient_checkpointing=False,
                          beta=0.0)
        trainer = GRPOTrainer(model=model, reward_funcs=functions, args=args,
                              train_dataset=dataset, processing_class=tokenizer,
                              callbacks=[clock],
                              peft_config=demo_lora())
        began = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - began
    return {"who": "trl 1.9.2 GRPOTrainer", "median_step_seconds": median_step(marks),
            "wall_seconds": round(wall, 1), "peak_rss_mb": round(peak_rss_mb())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        result = {"rollouts": rollouts, "workbench": lambda: step_workbench(args.steps),
                  "trl": lambda: step_trl(args.steps)}[args.child]()
        print("RESULT " + json.dumps(result), flush=True)
        return
    results = {}
    for which in ("rollouts", "workbench", "trl"):
        done = subprocess.run([sys.executable, __file__, "--child", which, "--steps",
                               str(args.steps)], capture_output=True, text=True)
        line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{which} failed")
        results[which] = json.loads(line[7:])
        print(which, json.dumps(results[which]), flush=True)
    ours, theirs = results["workbench"], results["trl"]
    if "median_step_seconds" in ours:
        results["step_speedup_vs_trl"] = round(theirs["median_step_seconds"] /
                                               ours["median_step_seconds"], 2)
    print(json.dumps({"machine": machine(), **results}, indent=2))


if __name__ == "__main__":
    main()
