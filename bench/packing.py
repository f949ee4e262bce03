"""Benchmark 3: padded batches vs length-grouped batches vs exact packing.

A dataset with widely varying lengths: the demo orders with a note of 0 to 300 random
words (uniformly) in front of the message, so examples run from about 110 to 500 tokens. Each mode
trains the demo model through the workbench for the same number of steps; the metric is
effective (non-padding) tokens per second over the steps after warm-up.

    python bench/packing.py [--steps 10]
"""

import argparse
import json
import random
import tempfile
from pathlib import Path

from common import machine

WORDS = ("please note that the parcel should be left with the neighbour if nobody is home and "
         "the invoice goes to the office address we used last time thanks a lot").split()


def varied_dataset(folder: Path) -> Path:
    from workbench.demo import data_path

    rng = random.Random(7)
    rows = []
    for line in data_path().read_text().splitlines():
        row = json.loads(line)
        extra = rng.randint(0, 300)
        note = " ".join(rng.choice(WORDS) for _ in range(extra))
        instruction, message = row["messages"][0]["content"].split("\n\n", 1)
        row["messages"][0]["content"] = f"{instruction}\n\nNote: {note}\n{message}"
        rows.append(row)
    path = folder / "varied.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tokens_per_second(data: Path, runs: str, steps: int, batch_size: int, **data_options):
    from workbench.config import RunConfig
    from workbench.engine.run import Run
    from workbench.events import StepLogged

    logged = []
    config = RunConfig.from_dict({
        "data": {"path": str(data), "eval_fraction": 0, "max_length": 640, **data_options},
        "train": {"max_steps": steps, "batch_size": batch_size, "learning_rate": 1e-3,
                  "log_every": 1, "save_every": 0},
        "output": {"runs_dir": runs}})
    run = Run(config, sinks=[lambda e: logged.append(e) if isinstance(e, StepLogged) else None])
    run.execute()
    first, last = logged[2], logged[-1]
    return (last.tokens_seen - first.tokens_seen) / (last.elapsed_seconds - first.elapsed_seconds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    steps = parser.parse_args().steps
    with tempfile.TemporaryDirectory() as folder:
        data = varied_dataset(Path(folder))
        lengths = _lengths(data)
        padded = tokens_per_second(data, folder, steps, 8)
        grouped = tokens_per_second(data, folder, steps, 8, group_by_length=True)
        packed = tokens_per_second(data, folder, steps, 4, packing=True)  # ~8 examples a row-batch
    print(f"machine: {machine()}")
    print(f"example lengths: min {min(lengths)}, median {sorted(lengths)[len(lengths) // 2]}, "
          f"max {max(lengths)} tokens")
    print(f"effective tokens/s: padded {padded:.0f}, length-grouped {grouped:.0f}, "
          f"packed {packed:.0f}")
    print(f"length-grouped / padded = {grouped / padded:.2f}x, packed / padded = "
          f"{packed / padded:.2f}x")


def _lengths(data):
    from common import demo_rows

    return [len(r["input_ids"]) for r in demo_rows(640, str(data))[2]]


if __name__ == "__main__":
    main()
