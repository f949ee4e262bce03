"""Benchmark: `workbench data report` on 10,000 synthetic chat rows with the demo tokenizer.

Rows are built from random words (one to three user / assistant exchanges of 5-50 and
1-80 words, a system turn in a third of them, 3% with a 300-900 word answer), with 200
exact and 200 near copies planted. Times each stage in this process, then the whole CLI command in a fresh
one (imports and tokenizer load included).

    python bench/data_report.py [--rows 10000]
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (puts the repository on the path, sets HF_HUB_OFFLINE)


def synthetic_rows(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghiklmnoprstuvy") for _ in range(rng.randint(2, 9)))
             for _ in range(5000)]

    def text(low, high):
        return " ".join(rng.choice(words) for _ in range(rng.randint(low, high))).capitalize()

    rows = []
    for _ in range(count - 400):
        turns = [{"role": "system", "content": text(5, 20)}] if rng.random() < 0.33 else []
        for _ in range(rng.choice((1, 1, 1, 1, 2, 3))):
            turns += [{"role": "user", "content": text(5, 50) + "?"},
                      {"role": "assistant", "content": text(1, 80) + "."}]
        if rng.random() < 0.03:  # a long tail, for truncation at max_length
            turns[-1]["content"] = text(300, 900) + "."
        rows.append({"messages": turns})
    for index in range(400):  # 200 exact copies, 200 copies with one word changed
        copy = json.loads(json.dumps(rng.choice(rows)))
        if index % 2:
            answer = copy["messages"][-1]["content"].split()
            answer[rng.randrange(len(answer))] = rng.choice(words)
            copy["messages"][-1]["content"] = " ".join(answer)
        rows.insert(rng.randrange(len(rows)), copy)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    from workbench.api import tokenizer_for
    from workbench.data import check, report
    from workbench.data.dedup import example_text, find_duplicates
    from workbench.data.encoding import measure_many
    from workbench.plots.lengths import length_histogram_png

    folder = Path(tempfile.mkdtemp())
    path = folder / "synthetic.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(args.rows)))
    load_before = os.getloadavg()

    began = time.perf_counter()
    tokenizer = tokenizer_for("demo")
    tokenizer_s = time.perf_counter() - began

    stages = {}
    began = time.perf_counter()
    checked = check(path)
    stages["check (read, validate, exact duplicates)"] = time.perf_counter() - began
    began = time.perf_counter()
    measure_many(checked.examples, tokenizer, 512)
    stages["render + tokenize + count trained tokens"] = time.perf_counter() - began
    began = time.perf_counter()
    found = find_duplicates([example_text(e) for e in checked.examples])
    stages["near duplicates (MinHash + LSH + exact Jaccard)"] = time.perf_counter() - began

    began = time.perf_counter()
    result = report(path, tokenizer, max_length=512)
    total = time.perf_counter() - began
    began = time.perf_counter()
    length_histogram_png(result, folder / "lengths.png")
    histogram_s = time.perf_counter() - began

    began = time.perf_counter()
    repo = str(Path(__file__).resolve().parent.parent)
    cli = subprocess.run([sys.executable, "-m", "workbench", "data", "report", str(path),
                          "--model", "demo", "--png", str(folder / "cli.png")],
                         capture_output=True, text=True, cwd=folder,
                         env={**os.environ, "PYTHONPATH": repo})
    cli_s = time.perf_counter() - began
    load_after = os.getloadavg()

    print(f"machine: {os.cpu_count()} cores; load average before {load_before[0]:.1f}, "
          f"after {load_after[0]:.1f} (other work on the machine inflates every time)")
    print(f"rows: {len(result.examples)}; tokens {sum(result.tokens):,} (p50 "
          f"{result.percentiles()['p50']}, max {result.percentiles()['max']}); exact duplicates "
          f"{sum(len(g) - 1 for g in found.exact)}, near pairs {len(found.near)}")
    for name, seconds in stages.items():
        print(f"  {name}: {seconds:.2f} s")
    print(f"report() in all: {total:.2f} s; histogram PNG {histogram_s:.2f} s; "
          f"tokenizer load {tokenizer_s:.2f} s")
    print(f"report() throughput: {sum(result.tokens) / total:,.0f} tokens/s, "
          f"{len(result.examples) / total:,.0f} rows/s")
    print(f"`workbench data report` as a fresh process: {cli_s:.2f} s (exit {cli.returncode}; "
          "imports and tokenizer load included)")
    if cli.returncode:
        print(cli.stderr[-2000:])


if __name__ == "__main__":
    main()
