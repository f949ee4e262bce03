"""Notebooks as reproducible artifacts: headless runs, sweeps and run comparisons.

    from workbench.notebooks import run_notebook, sweep
    run = run_notebook("notebooks/01-quickstart.ipynb", {"max_steps": 20})
    result = sweep("notebooks/01-quickstart.ipynb", {"learning_rate": [1e-4, 3e-4]})

`runner` executes one notebook with papermill and files the executed copy in the run
folder it produced; `sweep` runs a grid of parameters and writes a comparison table
and an overlay plot; `compare` renders several run folders side by side (configs,
loss curves, samples) for notebooks and sweeps. papermill loads only when a notebook
runs, so `import workbench.notebooks` stays cheap.
"""

_EXPORTS = {"run_notebook": "runner", "execute": "runner", "NotebookFailed": "runner",
            "parse_value": "runner", "sweep": "sweep", "parse_grid": "sweep"}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"workbench.notebooks.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'workbench.notebooks' has no attribute {name!r}")
