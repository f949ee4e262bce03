"""Stack, merge and ship adapters.

    library.py    the adapters in a runs folder; which can be combined (same base)
    stack.py      AdapterStack: several adapters on one base, weighted combinations
    merge.py      fold adapters into the base, save a standard Hugging Face folder
    gguf.py       write GGUF files (F32, F16, Q8_0) with tokenizer and chat template
    ollama.py     the Modelfile beside a GGUF file: template, system prompt, stop tokens
    templates.py  the chat template taken apart, and the round trip that checks exports
    exporter.py   export_run / export_stack / export_model: write, check, refuse

Heavy libraries load inside functions, so importing this package is cheap.
"""

_EXPORTS = {
    "AdapterInfo": "workbench.export.library", "adapter_info": "workbench.export.library",
    "list_adapters": "workbench.export.library", "check_compatible": "workbench.export.library",
    "AdapterStack": "workbench.export.stack", "METHODS": "workbench.export.stack",
    "export_run": "workbench.export.exporter", "export_stack": "workbench.export.exporter",
    "export_model": "workbench.export.exporter", "ExportResult": "workbench.export.exporter",
    "write_gguf": "workbench.export.gguf", "save_hf": "workbench.export.merge",
    "merged_run": "workbench.export.merge",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'workbench.export' has no attribute {name!r}")
