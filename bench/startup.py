"""Benchmark 5: start-up. `import workbench` (no torch) and time to the first optimizer
step of the demo, each in a fresh process (the converted demo model already cached).

    python bench/startup.py
"""

import subprocess
import sys
import time

from common import machine

FIRST_STEP = """
import time, tempfile
began = time.perf_counter()
from workbench.demo import demo_config
from workbench.engine.run import Run
from workbench.events import StepLogged

class Done(Exception):
    pass

def first(event):
    if isinstance(event, StepLogged):
        print(f"{time.perf_counter() - began:.2f}")
        raise SystemExit(0)

with tempfile.TemporaryDirectory() as runs:
    config = demo_config(runs, 5).with_overrides(["sample.prompts=[]", "sample.every=0"])
    Run(config, sinks=[first]).execute()
"""


def timed(code: str) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - began


def main():
    empty = min(timed("pass") for _ in range(5))
    imported = min(timed("import workbench, workbench.config") for _ in range(5))
    out = subprocess.run([sys.executable, "-c", FIRST_STEP], capture_output=True, text=True)
    print(f"machine: {machine()}")
    print(f"import workbench: {imported - empty:.3f} s over a bare interpreter start "
          f"({empty:.3f} s); target < 0.3 s")
    print(f"demo, process start to first optimizer step logged: {out.stdout.strip() or out.stderr[-500:]} s")


if __name__ == "__main__":
    main()
