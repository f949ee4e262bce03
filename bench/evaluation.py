"""Benchmark 9: what evaluation costs in a demo run.

Runs `workbench demo`'s config (60 steps; the json_equal scorer on 20 held-out messages at
steps 0 (adapter off) and 60 (eval.every 0), and the forgetting check on the shipped general
text) and reports the seconds the run spent evaluating (each evaluation's own clock, in
metrics.jsonl) against its wall time, and answer tokens per second. `--without` runs the
same config with evaluation off, for the wall-time difference.

    python bench/evaluation.py [--steps 60] [--without]
"""

import argparse
import json
import tempfile
import time

from common import machine


def run(steps: int, evaluate: bool) -> dict:
    from workbench.demo import demo_config
    from workbench.engine.rundir import RunDir
    from workbench.engine.run import Run

    with tempfile.TemporaryDirectory() as runs:
        config = demo_config(runs, steps)
        if not evaluate:
            config = config.with_overrides(["eval.scorers=[]", "eval.general_text=null"])
        began = time.perf_counter()
        result = Run(config).execute()
        wall = time.perf_counter() - began
        rows = [r for r in RunDir(result.run_dir).metrics() if "scored_examples" in r]
    spent = sum(r["eval_seconds"] for r in rows)
    return {"evaluate": evaluate, "steps": steps, "wall_seconds": round(wall, 1),
            "eval_seconds": round(spent, 1), "share": round(spent / wall, 3),
            "evaluations": [{k: r.get(k) for k in ("step", "adapter", "score/json_equal",
                                                   "eval_seconds", "answer_tokens_per_second",
                                                   "general_loss_change")} for r in rows],
            "scores": result.summary.get("scores"), "general_text": result.summary.get(
                "general_text")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--without", action="store_true", help="also run with evaluation off")
    args = parser.parse_args()
    report = {"machine": machine(), "with": run(args.steps, True)}
    if args.without:
        report["without"] = run(args.steps, False)
        report["wall_difference_seconds"] = round(
            report["with"]["wall_seconds"] - report["without"]["wall_seconds"], 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
