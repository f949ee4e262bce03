"""workbench: LoRA fine-tuning of small open language models, Jupyter-first.

`import workbench` is cheap: torch, transformers and the UI load only when used.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "RunConfig": "workbench.config", "load_config": "workbench.config",
    "Control": "workbench.events", "Run": "workbench.engine.run",
    "train": "workbench.api", "resume": "workbench.api", "TunedModel": "workbench.api",
    "load_run": "workbench.engine.loaded", "LoadedRun": "workbench.engine.loaded",
    "tokenizer_for": "workbench.engine.preview",
    "check": "workbench.data", "report": "workbench.data", "clean": "workbench.data",
    "load_examples": "workbench.data", "AdapterStack": "workbench.export.stack",
    "run_notebook": "workbench.notebooks.runner",
    "WorkbenchError": "workbench.errors", "ConfigError": "workbench.errors",
    "DataError": "workbench.errors", "Problem": "workbench.errors",
    "Dashboard": "workbench.ui.dashboard",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
