"""Benchmark: the cost of the dashboard's live view on training speed.

The same run twice over, alternating: once as `workbench.train` runs it headless
(metrics file and the run folder's chart), once driven by the Dashboard in a worker
thread with its live view (status every step, charts redrawn at most once a second,
samples grid). Logging every step, so the view has the most work it can get. Also
times one chart redraw on a long history, which bounds the cost per redraw.

    python bench/dashboard_overhead.py [--model tiny|demo] [--steps 120] [--repeats 2]
"""

import argparse
import tempfile
import time
from pathlib import Path

from common import machine, median


def tiny_model(folder: Path) -> str:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from workbench.backends.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("demo"))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


class StepClock(list):
    """A sink recording the wall time of every logged step."""

    def __call__(self, event):
        from workbench.events import StepLogged

        if isinstance(event, StepLogged):
            self.append(time.perf_counter())

    def step_seconds(self, skip: int = 3) -> list[float]:
        return [b - a for a, b in zip(self, self[1:])][skip:]


def config_for(model: str, steps: int, runs_dir: str):
    from workbench.config import RunConfig
    from workbench.demo import data_path

    return RunConfig.from_dict({
        "model": {"name": model}, "lora": {"r": 16, "alpha": 32},
        "data": {"path": str(data_path()), "eval_fraction": 0, "max_length": 256},
        "train": {"learning_rate": 1e-3, "max_steps": steps, "batch_size": 8, "log_every": 1,
                  "save_every": 0},
        "output": {"runs_dir": runs_dir, "name": "bench"}})


def headless(config) -> list[float]:
    from workbench.engine.run import Run
    from workbench.plots.loss import LossChartFile

    clock = StepClock()
    Run(config, sinks=[LossChartFile(), clock]).execute()
    return clock.step_seconds()


def with_dashboard(config) -> tuple[list[float], int]:
    from workbench.ui.dashboard import Dashboard

    clock = StepClock()
    dash = Dashboard(config, interactive=True, sinks=[clock])
    dash.start_button.click()
    dash.wait()
    assert dash.result.status == "finished", dash.error
    return clock.step_seconds(), dash.live.redraws


def redraw_milliseconds(points: int = 5000) -> float:
    from workbench.ui.live import empty_history
    from workbench.ui.render import LiveChart

    history = empty_history()
    for step in range(1, points + 1):
        history["step"].append(step)
        history["loss"].append(1 / step)
        history["learning_rate"].append(1e-3)
        history["grad_norm"].append(0.5)
        if step % 50 == 0:
            history["eval_step"].append(step)
            history["eval_loss"].append(1 / step)
    chart = LiveChart()  # as the live view keeps it
    chart.png(history)  # warm up fonts and caches
    began = time.perf_counter()
    for _ in range(5):
        chart.png(history)
    return (time.perf_counter() - began) / 5 * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("tiny", "demo"), default="tiny")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model = "demo" if args.model == "demo" else tiny_model(Path(scratch) / "tiny")
        config = config_for(model, args.steps, str(Path(scratch) / "runs"))
        plain, dashed, redraws = [], [], 0
        for _ in range(args.repeats):
            plain += headless(config)
            seconds, count = with_dashboard(config)
            dashed += seconds
            redraws += count
    base, live = median(plain), median(dashed)
    print(machine())
    print(f"model {args.model}, {args.steps} steps x {args.repeats} runs each, log every step")
    print(f"median step: headless {base * 1000:.1f} ms, dashboard {live * 1000:.1f} ms "
          f"({live / base:.2f}x); mean {sum(plain) / len(plain) * 1000:.1f} vs "
          f"{sum(dashed) / len(dashed) * 1000:.1f} ms")
    print(f"chart redraws per dashboard run: {redraws / args.repeats:.0f}")
    print(f"one redraw of a 5000-step history: {redraw_milliseconds():.0f} ms")


if __name__ == "__main__":
    main()
