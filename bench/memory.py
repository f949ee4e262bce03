"""Benchmark 4: peak resident memory of the demo run and of the workshop profile.

Each profile trains in a fresh process (so peaks do not mix) and reports the process's
peak RSS, and its RSS right after the model is loaded. Binder gives 2 GB; the workshop
profile targets 1.5 GB.

    python bench/memory.py [--steps 10]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine


def child(profile: str, steps: int) -> None:
    from common import current_rss_mb, peak_rss_mb
    from workbench.demo import demo_config
    from workbench.engine.run import Run
    from workbench.events import RunStarted

    after_load = {}

    def on_start(event):
        if isinstance(event, RunStarted):
            after_load["rss"] = current_rss_mb()
            after_load["peak"] = peak_rss_mb()

    with tempfile.TemporaryDirectory() as runs:
        config = demo_config(runs, steps, profile=profile).with_overrides(["sample.prompts=[]",
                                                                           "sample.every=0"])
        Run(config, sinks=[on_start]).execute()
    print(json.dumps({"profile": profile, "peak_mb": peak_rss_mb(),
                      "rss_after_load_mb": after_load["rss"],
                      "peak_at_load_mb": after_load["peak"]}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps)
        return
    print(f"machine: {machine()}")
    for profile in ("laptop", "workshop"):
        out = subprocess.run([sys.executable, str(Path(__file__)), "--child", profile,
                              "--steps", str(args.steps)], capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-2000:])
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{profile:>9}: peak RSS {row['peak_mb']:.0f} MB; after loading the model "
              f"{row['rss_after_load_mb']:.0f} MB (peak so far {row['peak_at_load_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
