"""Judge an exported GGUF file with llama.cpp itself, against the merged model it came from.

    reference = Reference.of(model, tokenizer)          # the merged model's answers, once
    verdict = verify_gguf("out/model-q4_k_m.gguf", reference, modelfile="out/Modelfile")
    print(verdict.summary()); verdict.ok

For each conversation in `templates.PROBES` llama.cpp must (1) split the training prompt
into the training ids, (2) render the same prompt from the file's chat template with its
built-in templates (what `llama-cli` and `llama-server` use without `--jinja`), (3) answer
the merged model's greedy tokens (F32, F16: the first 32 equal; quantized files: agreement
reported) and treat the end-of-turn token as the end of generation, and (4) the Modelfile
must stop on that token. The logit drift over the first conversation is reported too.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workbench.errors import ExportError
from workbench.export.templates import (PROBES, ending, first_difference, render, renders,
                                        token_ids)

EXACT_TOKENS = 32  # greedy tokens that must equal the merged model's in F32 and F16 files
MAX_NEW_TOKENS = 64  # how far both generate, so the end of a short answer is reached
EXACT_TYPES = ("ALL_F32", "MOSTLY_F16")  # general.file_type names whose answers must match


@dataclass
class Reference:
    """What the merged model says for each probe: the prompt ids, its greedy answer (up to
    and including its end-of-turn token) and its logits over the first prompt."""

    tokenizer: object
    prompts: list  # the probe conversations that this template renders
    prompt_ids: list  # list of id lists
    answers: list  # list of id lists
    logits: object  # numpy, positions x vocab, for prompt_ids[0]
    end_of_turn: str
    end_of_turn_id: int
    default_system: str | None

    @classmethod
    def of(cls, model, tokenizer, max_new_tokens: int = MAX_NEW_TOKENS) -> "Reference":
        end, default_system = ending(tokenizer)
        end_id = tokenizer.convert_tokens_to_ids(end)
        prompts = [p for p in PROBES if renders(tokenizer, p)]
        if not prompts:
            raise ExportError("the chat template renders none of the probe conversations, so "
                              "llama.cpp has nothing to be checked on; fix the template")
        prompt_ids = [token_ids(tokenizer, render(tokenizer, p)) for p in prompts]
        stops = {i for i in (end_id, tokenizer.eos_token_id) if i is not None}
        model.eval()
        answers = [greedy(model, ids, max_new_tokens, stops) for ids in prompt_ids]
        return cls(tokenizer, prompts, prompt_ids, answers, prompt_logits(model, prompt_ids[0]),
                   end, end_id, default_system)


def greedy(model, ids: list[int], max_new_tokens: int, stops: set) -> list[int]:
    """The argmax token at each step, with the KV cache, through the first stop token: what
    llama.cpp's side does. Not `generate`, which applies the model's generation config
    (Qwen2.5 ships a repetition penalty) and would no longer be plain greedy decoding."""
    import torch

    produced: list[int] = []
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids], device=model.device), use_cache=True)
        while len(produced) < max_new_tokens:
            token = int(out.logits[0, -1].argmax())
            produced.append(token)
            if token in stops:
                break
            out = model(input_ids=torch.tensor([[token]], device=model.device),
                        past_key_values=out.past_key_values, use_cache=True)
    return produced


def prompt_logits(model, ids: list[int]):
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids], device=model.device)).logits
    return logits[0].float().cpu().numpy()


@dataclass
class Verdict:
    """What llama.cpp did with one file; `problems` make the export unusable."""

    path: str
    file_type: str
    bytes: int
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    generation: list = field(default_factory=list)  # per probe: tokens compared, equal, stopped
    drift: dict = field(default_factory=dict)  # max, mean, top1, positions

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        size = f"{self.bytes / 1e6:.0f} MB" if self.bytes >= 1e7 else f"{self.bytes / 1e6:.1f} MB"
        lines = [f"llama.cpp check of {Path(self.path).name} ({self.file_type}, {size}): "
                 f"{'passed' if self.ok else 'FAILED'}"]
        if self.drift:
            lines.append(f"  logits vs the merged model over {self.drift['positions']} positions: "
                         f"max |diff| {self.drift['max']:.3g}, mean {self.drift['mean']:.3g}, "
                         f"same top-1 token {self.drift['top1']:.0%}")
        for row in self.generation:
            stop = "stopped on its end-of-turn token" if row["stopped"] else "did not stop"
            lines.append(f"  greedy answer to a {row['messages']}-message conversation: "
                         f"{row['equal']}/{row['compared']} tokens as the merged model's, {stop}")
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"ok": self.ok, **asdict(self)}

    def write(self, target: str | Path) -> Path:
        target = Path(target)
        target.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return target


def report_path(gguf_path: str | Path) -> Path:
    """Where a file's verdict is written: `model-q4_k_m.gguf` -> `model-q4_k_m.verify.json`."""
    gguf_path = Path(gguf_path)
    return gguf_path.with_name(gguf_path.stem + ".verify.json")


def verify_gguf(path: str | Path, reference: Reference, *,
                modelfile: str | Path | None = None) -> Verdict:
    """Load `path` with llama.cpp and check it against `reference` (see the module doc)."""
    from workbench.export.llamacpp import LlamaFile

    path = Path(path)
    with LlamaFile(path) as gguf:
        file_type = _file_type(gguf.metadata.get("general.file_type"))
        verdict = Verdict(str(path), file_type, path.stat().st_size)
        _check_tokens(gguf, reference, verdict)
        _check_template(gguf, reference, verdict)
        _check_generation(gguf, reference, verdict, exact=file_type in EXACT_TYPES)
        verdict.drift = _drift(gguf.logits(reference.prompt_ids[0]), reference.logits)
    if modelfile is not None:
        _check_modelfile(Path(modelfile), reference, verdict)
    return verdict


# -- the checks --------------------------------------------------------------------------------

def _check_tokens(gguf, reference: Reference, verdict: Verdict) -> None:
    for messages, expected in zip(reference.prompts, reference.prompt_ids):
        got = gguf.tokenize(render(reference.tokenizer, messages))
        if got != expected:
            verdict.problems.append("tokens: " + _difference(
                f"llama.cpp splits the training prompt of a {len(messages)}-message "
                "conversation", expected, got, reference.tokenizer))


def _check_template(gguf, reference: Reference, verdict: Verdict) -> None:
    for messages, expected in zip(reference.prompts, reference.prompt_ids):
        text = gguf.render_chat(messages)
        if text is None:
            verdict.warnings.append(
                "template: llama.cpp's built-in templates do not recognise the file's chat "
                "template, so run it with --jinja (llama-cli, llama-server) or through the "
                "Ollama Modelfile, which restate it exactly")
            return
        got = gguf.tokenize(text)
        if got == expected:
            continue
        if reference.default_system is not None and messages[0]["role"] != "system":
            with_system = [{"role": "system", "content": reference.default_system}, *messages]
            if gguf.tokenize(gguf.render_chat(with_system) or "") == expected:
                verdict.warnings.append(
                    "template: llama.cpp's built-in template leaves out the template's default "
                    f"system prompt ({reference.default_system!r}) when a conversation has "
                    "none; give that system message, or run llama.cpp with --jinja")
                continue
        verdict.problems.append("template: " + _difference(
            f"llama.cpp's rendering of the file's chat template for a {len(messages)}-message "
            "conversation", expected, got, reference.tokenizer))


def _check_generation(gguf, reference: Reference, verdict: Verdict, exact: bool) -> None:
    if not gguf.is_end_of_generation(reference.end_of_turn_id):
        verdict.problems.append(
            f"stop: llama.cpp does not end generation at {reference.end_of_turn!r} (id "
            f"{reference.end_of_turn_id}), which ends the model's turns, so its answers would "
            "run on: the file's eos/eot token ids name other tokens. Set the tokenizer's "
            "eos_token to the end-of-turn token before exporting")
    for messages, ids, answer in zip(reference.prompts, reference.prompt_ids, reference.answers):
        got = gguf.greedy(ids, MAX_NEW_TOKENS)
        compared = min(EXACT_TOKENS, len(answer))
        equal = first_difference(answer, got)
        ended = bool(answer) and answer[-1] == reference.end_of_turn_id
        stopped = bool(got) and got[-1] == reference.end_of_turn_id
        verdict.generation.append({"messages": len(messages), "compared": compared,
                                   "equal": min(equal, compared), "stopped": stopped,
                                   "reference_stopped": ended})
        if exact and equal < compared:
            verdict.problems.append("generation: " + _difference(
                f"llama.cpp's greedy answer to a {len(messages)}-message conversation",
                answer, got, reference.tokenizer))
        elif exact and ended and not stopped:
            verdict.problems.append(
                f"stop: the merged model ends its answer with {reference.end_of_turn!r} but "
                "llama.cpp's generation does not stop there")
    if not any(row["reference_stopped"] for row in verdict.generation):
        verdict.warnings.append(
            f"stop: the merged model did not end a probe answer within {MAX_NEW_TOKENS} tokens, "
            "so stopping was checked from the file's token ids only")


def _check_modelfile(modelfile: Path, reference: Reference, verdict: Verdict) -> None:
    text = modelfile.read_text(encoding="utf-8")
    stops = [json.loads(s) for s in re.findall(r'^PARAMETER stop (".*")$', text, re.M)]
    if reference.end_of_turn not in stops:
        said = f"stops on {stops}" if stops else "has no PARAMETER stop line"
        verdict.problems.append(f"modelfile: {modelfile} {said}, not on "
                                f"{reference.end_of_turn!r}, which ends the model's turns: add "
                                f'PARAMETER stop "{reference.end_of_turn}"')


def _drift(theirs, ours) -> dict:
    difference = abs(theirs - ours)
    return {"max": float(difference.max()), "mean": float(difference.mean()),
            "top1": float((theirs.argmax(-1) == ours.argmax(-1)).mean()),
            "positions": int(ours.shape[0])}


# -- helpers -----------------------------------------------------------------------------------

def _difference(what: str, expected: list, got: list, tokenizer) -> str:
    at = first_difference(expected, got)
    piece = lambda ids: repr(tokenizer.decode(ids[at:at + 3])) if at < len(ids) else "the end"
    return f"{what} differs from token {at} on ({piece(got)} instead of {piece(expected)})"


def _file_type(value) -> str:
    import gguf

    try:
        return gguf.LlamaFileType(int(value)).name
    except (TypeError, ValueError):
        return "unknown"
