"""Benchmark 2: workbench vs TRL's SFTTrainer with its default settings, on CPU.

Same model, same demo data (TRL gets the raw `messages` rows and does its own
tokenization), same LoRA and batch size. TRL's defaults are kept except where they
cannot run on a CPU at all (bf16=True is refused there, so bf16=False). TRL is not a
workbench dependency. TRL 1.15's loss is a Triton kernel, so on a CPU without Triton it
fails at the first step; that failure is reported. TRL 1.9.0 is the newest we measured
whose defaults run on a CPU:

    pip install --no-deps --target /tmp/trl19 trl==1.9.0
    PYTHONPATH=/tmp/trl19 python bench/trl_compare.py [--steps 4]
"""

import argparse
import json
import tempfile

from common import machine, median, step_timer
from overhead import workbench_step


def trl_step(steps):
    import torch
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM

    from workbench.backends.loading import load_tokenizer
    from workbench.backends.models import resolve_model
    from workbench.demo import data_path

    source = resolve_model("demo")
    rows = [json.loads(line) for line in data_path().read_text().splitlines()]
    timer = step_timer()
    with tempfile.TemporaryDirectory() as out:
        config = trl.SFTConfig(output_dir=out, per_device_train_batch_size=8, max_steps=steps,
                               learning_rate=1e-3, bf16=False, report_to="none",
                               save_strategy="no", disable_tqdm=True)
        trainer = trl.SFTTrainer(
            model=AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32), args=config,
            train_dataset=Dataset.from_list(rows), processing_class=load_tokenizer(source, False),
            peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                   task_type="CAUSAL_LM"), callbacks=[timer])
        trainer.train()
    return median(timer.step_seconds(skip=1)), trl.__version__, config


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4)
    steps = parser.parse_args().steps
    import trl

    try:
        theirs, version, config = trl_step(steps)
    except Exception as exc:  # report the library's failure as the measured result
        print(f"TRL {trl.__version__} SFTTrainer with default settings failed on this CPU: "
              f"{type(exc).__name__}: {exc}")
        return
    ours = workbench_step(max(steps, 8))
    print(f"machine: {machine()}")
    print(f"TRL {version} SFTTrainer defaults kept: gradient_checkpointing="
          f"{config.gradient_checkpointing}, loss_type={getattr(config, 'loss_type', '?')}, "
          f"max_length={config.max_length}, packing={config.packing}")
    print(f"median step, TRL SFTTrainer: {theirs:.2f} s")
    print(f"median step, workbench: {ours:.2f} s")
    print(f"TRL / workbench = {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
