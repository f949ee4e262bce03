"""Shared pieces of the benchmarks: the demo data, step timing, memory readings.

Benchmarks compare configurations side by side in one process and report ratios:
absolute times on a shared 2-core machine are noise, ratios much less so.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def step_timer():
    """A TrainerCallback recording wall time at every optimizer step end."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times = []

        def on_step_begin(self, args, state, control, **kwargs):
            if not self.times:
                self.times.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

        def step_seconds(self, skip: int = 2) -> list[float]:
            gaps = [b - a for a, b in zip(self.times, self.times[1:])]
            return gaps[skip:]

    return StepTimer()


def demo_lora():
    """The LoRA every CPU benchmark trains on the demo model: r16, alpha 32, all linear
    layers (the demo's own settings)."""
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> str:
    import platform

    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads)")


def demo_rows(max_length: int = 256, fmt_path: str | None = None):
    """The demo training rows, encoded with the demo tokenizer, and that tokenizer."""
    from workbench.backends.loading import load_tokenizer
    from workbench.backends.models import resolve_model
    from workbench.config import DataSettings
    from workbench.data import encode_splits, load_splits
    from workbench.demo import data_path

    source = resolve_model("demo")
    tokenizer = load_tokenizer(source, False)
    settings = DataSettings(path=fmt_path or str(data_path()), eval_fraction=0,
                            max_length=max_length)
    encoded = encode_splits(load_splits(settings, 0), tokenizer, settings)
    return source, tokenizer, encoded.train


def step_clock():
    """A TrainerCallback that notes the time at each optimizer step's end, and those times;
    the differences are step times, for trainers the workbench does not time itself."""
    from transformers import TrainerCallback

    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append(time.perf_counter())

    return Clock(), marks


def median_step(marks: list[float]) -> float:
    return round(statistics.median(b - a for a, b in zip(marks, marks[1:])), 2)
