"""Export a run (or a weighted combination of runs) as a Hugging Face folder, a GGUF file,
or a GGUF file with an Ollama Modelfile, and check the chat template survived.

    export_run("runs/my-run-...", "ollama", quant="q8_0")
    export_run(["runs/a-...", "runs/b-..."], "hf", weights=[1.0, 0.5], method="cat")

Every export renders the same conversations through the training tokenizer and through
what it wrote (the saved tokenizer, the GGUF metadata, the Modelfile template) and refuses
when the token ids or the stop token differ: a model prompted unlike its training answers
badly or never stops. `verify=True` then has llama.cpp itself load the GGUF file and
tokenize, render, answer and stop as the merged model does (`verify.py`); its verdict is
written beside the file. `force=True` keeps the files and turns a refusal into a warning.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import ExportError
from workbench.export.gguf import LLAMA_CPP_QUANTS, QUANTS
from workbench.export.templates import RoundTrip, round_trip, turn_format

FORMATS = ("hf", "gguf", "ollama")  # the first is the default
DEFAULT_QUANT = "f16"
EXPORT_DIR = "export"


@dataclass
class ExportResult:
    format: str
    out: Path  # the folder (hf, ollama) or file (gguf) written
    files: list[Path]
    check: RoundTrip
    notes: list[str] = field(default_factory=list)
    source: dict = field(default_factory=dict)
    verdict: object = None  # verify.Verdict when llama.cpp checked the file

    def __repr__(self) -> str:
        state = "ok" if self.check.ok else f"{len(self.check.problems)} problem(s)"
        judged = "" if self.verdict is None else \
            f", llama.cpp: {'passed' if self.verdict.ok else 'FAILED'}"
        return (f"ExportResult(format={self.format!r}, out={str(self.out)!r}, "
                f"template check: {state}{judged})")


def export_run(run_dirs, format: str = FORMATS[0], quant: str = DEFAULT_QUANT, out=None, *,
               weights: list[float] | None = None, method: str = "linear",
               density: float | None = None, force: bool = False,
               verify: bool = False) -> ExportResult:
    """Export one run, or the weighted combination of several (same base model)."""
    from workbench.export.merge import merged_run
    from workbench.export.stack import AdapterStack

    check_choices(format, quant, verify)
    runs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(r) for r in run_dirs]
    if not runs:
        raise ExportError("no run folder given; `workbench runs` lists them")
    if len(runs) == 1 and weights is None:
        model, tokenizer, _ = merged_run(runs[0])
        name, source = runs[0].name, {"run": str(runs[0])}
        root = runs[0] / EXPORT_DIR
    else:
        stack = AdapterStack(runs)
        stack.combine(weights if weights is not None else [1.0] * len(runs), method, density)
        model, tokenizer = stack.merged_model(), stack.tokenizer
        name, source = "combined", stack.describe()
        root = runs[0].parent / f"combined-{time.strftime('%Y%m%d-%H%M%S')}"
    if out is None:
        out = root / {"hf": "hf", "gguf": f"{name}-{quant}.gguf", "ollama": "ollama"}[format]
    return export_model(model, tokenizer, format, quant, out, name=name, force=force,
                        source=source, verify=verify)


def export_stack(stack, format: str = FORMATS[0], quant: str = DEFAULT_QUANT, out=None, *,
                 which: str = "combined", force: bool = False,
                 verify: bool = False) -> ExportResult:
    """Export what an AdapterStack currently answers with (by default its combination)."""
    if out is None:
        raise ExportError("give `out`, the folder to export the combination into")
    return export_model(stack.merged_model(which), stack.tokenizer, format, quant, out,
                        name=which, force=force, source=stack.describe(), verify=verify)


def export_model(model, tokenizer, format: str, quant: str, out, *, name: str = "model",
                 force: bool = False, source: dict | None = None,
                 verify: bool = False) -> ExportResult:
    """Write a merged model and check its chat template (and, with `verify`, have llama.cpp
    judge the GGUF file). `out` is the folder for hf and ollama, and the .gguf file (or a
    folder to put `<name>-<quant>.gguf` in) for gguf."""
    check_choices(format, quant, verify)
    target, notes = Path(out).expanduser(), []
    turns, end_of_turn = _turns(tokenizer, required=format == "ollama", notes=notes)
    if format == "hf":
        _refuse_foreign_folder(target)
        files, check = _write_hf(model, tokenizer, target, end_of_turn)
    elif format == "gguf":
        target = target if target.suffix == ".gguf" else target / f"{name}-{quant}.gguf"
        files, check = _write_gguf(model, tokenizer, target, quant, name, end_of_turn, notes)
    else:
        files, check = _write_ollama(model, tokenizer, target, quant, name, turns, end_of_turn,
                                     notes)
    result = ExportResult(format, target, files, check, notes, source or {})
    if not check.ok:
        problems = "\n".join(f"  - {p}" for p in check.problems)
        if not force:
            _remove(target if format == "hf" else None, files)
            raise ExportError("export refused: the chat template or stop token does not "
                              f"survive the trip, so the exported model would be prompted "
                              f"unlike its training:\n{problems}\nFix the tokenizer's chat "
                              "template, or pass --force (force=True) to keep the files anyway")
        notes.append(f"WARNING: the template check failed and the files were kept (--force):"
                     f"\n{problems}")
    if verify:
        _judge(result, model, tokenizer, force)
    return result


def check_choices(format: str, quant: str, verify: bool = False) -> None:
    """Refuse a bad choice before the merge and the write, which take minutes."""
    from workbench.export.llamacpp import require

    if format not in FORMATS:
        raise ExportError(f"export format {format!r} is not offered; choose one of "
                          f"{', '.join(FORMATS)}")
    if quant not in QUANTS:
        raise ExportError(f"quantization {quant!r} is not offered; choose one of "
                          f"{', '.join(QUANTS)}")
    if verify and format == "hf":
        raise ExportError("--verify has llama.cpp check a GGUF file; export --format gguf or "
                          "ollama to verify")
    if format != "hf" and quant in LLAMA_CPP_QUANTS:
        require(f"the {quant} quantization")
    if verify:
        require("checking the export with llama.cpp (--verify)")


def _judge(result: ExportResult, model, tokenizer, force: bool) -> None:
    """llama.cpp loads the GGUF file and answers as the merged model does, or the export is
    refused (kept with a warning under --force). The verdict is written beside the file."""
    from workbench.export.verify import Reference, report_path, verify_gguf

    gguf_file = next(f for f in result.files if f.suffix == ".gguf")
    modelfile = next((f for f in result.files if f.name == "Modelfile"), None)
    try:
        verdict = verify_gguf(gguf_file, Reference.of(model, tokenizer), modelfile=modelfile)
    except BaseException:  # e.g. llama.cpp cannot load it: the file is no export either
        if not force:
            _remove(None, result.files)
        raise
    result.verdict = verdict
    report = verdict.write(report_path(gguf_file))
    if verdict.ok or force:
        result.files.append(report)
        if not verdict.ok:
            result.notes.append(f"WARNING: llama.cpp's check failed and the files were kept "
                                f"(--force); its verdict is in {report}")
        return
    _remove(None, result.files + [report])
    raise ExportError("export refused: llama.cpp does not use the file as the merged model is "
                      f"used:\n{verdict.summary()}\nFix what the problems name, or pass --force "
                      "(force=True) to keep the files anyway")


def _turns(tokenizer, required: bool, notes: list[str]):
    """The template taken apart, and the id of its end-of-turn token."""
    try:
        turns = turn_format(tokenizer)
    except ExportError as exc:
        if required:
            raise
        notes.append(f"the end-of-turn token could not be read from the chat template ({exc}); "
                     f"generation stops at EOS {tokenizer.eos_token!r} only")
        return None, None
    end = tokenizer.convert_tokens_to_ids(turns.end_of_turn)
    return turns, end if isinstance(end, int) and end != tokenizer.unk_token_id else None


def _write_hf(model, tokenizer, target: Path, end_of_turn):
    from transformers import AutoTokenizer

    from workbench.export.merge import save_hf

    save_hf(model, tokenizer, target, end_of_turn)
    saved = AutoTokenizer.from_pretrained(str(target))  # as any user of the folder would
    return sorted(target.iterdir()), round_trip(tokenizer, hf_tokenizer=saved)


def _write_gguf(model, tokenizer, target: Path, quant, name, end_of_turn, notes):
    from workbench.export.gguf import write_gguf

    summary = write_gguf(model, tokenizer, target, quant, name=name, end_of_turn=end_of_turn)
    notes += summary["notes"]
    return [target], round_trip(tokenizer, gguf_path=target)


def _write_ollama(model, tokenizer, target: Path, quant, name, turns, end_of_turn, notes):
    from workbench.export.gguf import write_gguf
    from workbench.export.ollama import modelfile, stop_strings

    stops = stop_strings(tokenizer, turns)
    text = modelfile(f"{name}-{quant}.gguf", turns, stops)  # refuses before the big write
    target.mkdir(parents=True, exist_ok=True)
    gguf_file = target / f"{name}-{quant}.gguf"
    summary = write_gguf(model, tokenizer, gguf_file, quant, name=name, end_of_turn=end_of_turn)
    notes += summary["notes"]
    (target / "Modelfile").write_text(text, encoding="utf-8")
    check = round_trip(tokenizer, gguf_path=gguf_file, turns=turns, stops=stops)
    return [gguf_file, target / "Modelfile"], check


def _refuse_foreign_folder(target: Path) -> None:
    """The hf export replaces its folder: never one that holds something else."""
    if target.is_dir() and any(target.iterdir()) and not (target / "config.json").is_file():
        raise ExportError(f"{target} already holds files and is not a model folder; export "
                          "into a new or empty folder")


def _remove(folder: Path | None, files: list[Path]) -> None:
    """Delete what this export wrote (never anything else in the folder)."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for path in files:
        path.unlink(missing_ok=True)
