"""Benchmark 1: workbench vs a plain transformers.Trainer + PEFT loop, same everything.

Same model (the demo), data (the demo rows, same encoding), seed, LoRA and batch. The
workbench run has all its sinks attached: console (to /dev/null), metrics.jsonl, and
headless loss-chart rendering every 5 s. The plain loop uses the model's own loss.

    python bench/overhead.py [--steps 20]
"""

import argparse
import io
import tempfile

from common import demo_rows, machine, median, step_timer


def plain_trainer_step(source, tokenizer, rows, steps):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, set_seed

    from workbench.data.encoding import PaddingCollator

    set_seed(42)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    timer = step_timer()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=8, max_steps=steps,
                                 learning_rate=1e-3, logging_steps=5, save_strategy="no",
                                 report_to="none", disable_tqdm=True, use_cpu=True, seed=42,
                                 remove_unused_columns=False)
        Trainer(model=model, args=args, train_dataset=rows, callbacks=[timer],
                data_collator=PaddingCollator(tokenizer.pad_token_id)).train()
    return median(timer.step_seconds())


def workbench_step(steps):
    from workbench.console import ConsoleSink
    from workbench.demo import data_path
    from workbench.config import RunConfig
    from workbench.engine.run import Run
    from workbench.events import StepLogged
    from workbench.plots.loss import LossChartFile

    times = []

    def record(event):
        if isinstance(event, StepLogged):
            times.append(event.elapsed_seconds)

    with tempfile.TemporaryDirectory() as runs:
        config = RunConfig.from_dict({
            "data": {"path": str(data_path()), "eval_fraction": 0, "max_length": 256},
            "train": {"max_steps": steps, "batch_size": 8, "learning_rate": 1e-3,
                      "log_every": 1, "save_every": 0},
            "output": {"runs_dir": runs}})
        sinks = [ConsoleSink(stream=io.StringIO()), LossChartFile(every_seconds=5), record]
        Run(config, sinks=sinks).execute()
    return median([b - a for a, b in zip(times, times[1:])][2:])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    steps = parser.parse_args().steps
    source, tokenizer, rows = demo_rows()
    plain = plain_trainer_step(source, tokenizer, rows, steps)
    ours = workbench_step(steps)
    plain_again = plain_trainer_step(source, tokenizer, rows, steps)  # drift check
    baseline = (plain + plain_again) / 2
    print(f"machine: {machine()}")
    print(f"median step, plain Trainer + PEFT: {plain:.3f} s and {plain_again:.3f} s (before/after)")
    print(f"median step, workbench with all sinks: {ours:.3f} s")
    print(f"workbench / plain = {ours / baseline:.3f}  (overhead {100 * (ours / baseline - 1):+.1f}%)")


if __name__ == "__main__":
    main()
