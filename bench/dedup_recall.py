"""Benchmark: near-duplicate recall and false positives on planted pairs, over 20 seeds.

Each seed: 600 unrelated rows of 8 to 120 words and 150 near copies with 1 to 12 word
edits (tests/test_data_dedup.py builds the same corpus). Recall counts the copies with
Jaccard >= 0.8 to their original that are flagged (as a near pair, or as an exact copy
when the edits cancelled out); a false positive is a reported pair below 0.8.

    python bench/dedup_recall.py
"""

import sys
import time
from pathlib import Path

import common  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main():
    from test_data_dedup import recall_and_false_positives

    totals = {"planted": 0, "true_near": 0, "flagged": 0, "reported": 0, "false_positives": 0}
    began = time.perf_counter()
    for seed in range(20):
        result = recall_and_false_positives(seed)
        for key in totals:
            totals[key] += result[key]
    seconds = time.perf_counter() - began
    print(f"{totals}; recall {totals['flagged'] / totals['true_near']:.4f}; "
          f"{seconds:.1f} s for 20 x 750 rows")


if __name__ == "__main__":
    main()
