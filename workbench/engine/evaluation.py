"""Evaluation during a run: answer held-out prompts and score the answers, and measure the
loss on general text with the adapter off and on (the forgetting check).

    evaluator = Evaluator.prepare(config, splits)      # before the model loads; None: off
    result = evaluator.evaluate(run.loaded, base=True) # EvalResult: scores, answers, loss

`prepare` resolves every scorer and tries it on the first cases, so a scorer that raises
or returns a non-number stops the run before anything loads. Answers are greedy and
batched (prompts of similar length together, with the KV cache); the general-text loss
computes vocabulary logits in chunks, as training does, so it fits where training fits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from workbench.config import RunConfig
from workbench.data.encoding import render_chat
from workbench.errors import ConfigError, Problem
from workbench.evaluation.cases import Case, cases_from
from workbench.evaluation.general import general_texts, relative_change
from workbench.evaluation.scorers import KEY, Scorer, check_scorers, mean_scores, resolve_all

ANSWER_BATCH = 32  # one batch for the demo's 30 held-out prompts: 12% faster than 16 (measured)
GENERAL_BATCH = 8
GENERAL_MAX_TOKENS = 256
MAX_AUTO_NEW_TOKENS = 512


@dataclass
class EvalResult:
    scores: dict[str, float]
    answers: list[dict] = field(default_factory=list)  # per case: where, prompt, reference, answer, scores
    general_loss: float | None = None
    seconds: float = 0.0
    new_tokens: int = 0

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0


class Evaluator:
    def __init__(self, cases: list[Case], scorers: list[Scorer], texts: list[str],
                 system_prompt: str | None = None, max_new_tokens: int | None = None):
        self.cases, self.scorers, self.texts = cases, scorers, texts
        self.system_prompt, self.max_new_tokens = system_prompt, max_new_tokens
        self.base_general_loss: float | None = None  # set by the first adapter-off evaluation

    @classmethod
    def prepare(cls, config: RunConfig, held_out: list, extra_scorers=()) -> "Evaluator | None":
        """The run's evaluator, checked; None when there is nothing to evaluate. `held_out`
        is the held-out split's examples (used unless eval.data names a file)."""
        from workbench.data.splits import load_examples

        settings = config.eval
        scorers = resolve_all(list(settings.scorers) + list(extra_scorers))
        texts = general_texts(settings.general_text)
        if not scorers and not texts:
            return None
        examples = held_out
        if settings.data:
            _, examples = load_examples(settings.data, "auto", config.data.system_prompt)
        cases = cases_from(examples, settings.max_examples) if scorers else []
        if scorers and not cases:
            raise ConfigError([Problem(
                "eval.scorers need held-out examples with answers to compare with, and "
                f"{'eval.data' if settings.data else 'the held-out split'} has none (text "
                "rows have no answer); use a chat, alpaca or prompt_completion file", key=KEY)])
        check_scorers(scorers, cases)
        return cls(cases, scorers, texts, config.data.system_prompt, settings.max_new_tokens)

    def describe(self) -> dict:
        return {"scorers": [{"name": s.name, "source": s.source} for s in self.scorers],
                "cases": len(self.cases), "general_texts": len(self.texts)}

    # -- running --------------------------------------------------------------------------

    def evaluate(self, loaded, base: bool = False) -> EvalResult:
        """Answer and score the cases, and the general-text loss, with the adapter off
        (base) or on."""
        began = time.perf_counter()
        answers, new_tokens = self._answer(loaded, base) if self.scorers else ([], 0)
        means, per_case = mean_scores(self.scorers, self.cases, answers) if self.scorers \
            else ({}, [])
        general = self._general_loss(loaded, base) if self.texts else None
        if base and general is not None:
            self.base_general_loss = general
        rows = [{"where": str(c.where), "prompt": c.prompt, "reference": c.reference,
                 "answer": a, "scores": s} for c, a, s in zip(self.cases, answers, per_case)]
        return EvalResult(means, rows, general, time.perf_counter() - began, new_tokens)

    def general_change(self, loss: float | None) -> float | None:
        if loss is None or self.base_general_loss is None:
            return None
        return relative_change(self.base_general_loss, loss)

    def _prompt_texts(self, tokenizer, chat: bool) -> list[str]:
        if not chat:
            return [case.prompt for case in self.cases]
        texts = []
        for case in self.cases:
            messages = list(case.messages) if case.messages else [
                {"role": "user", "content": case.prompt}]
            if self.system_prompt and messages[0]["role"] != "system":
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            texts.append(render_chat(messages, tokenizer, add_generation_prompt=True))
        return texts

    def _new_tokens(self, tokenizer) -> int:
        if self.max_new_tokens:
            return self.max_new_tokens
        longest = max(len(tokenizer(c.reference, add_special_tokens=False)["input_ids"])
                      for c in self.cases)
        return min(longest + 16, MAX_AUTO_NEW_TOKENS)

    def _answer(self, loaded, base: bool) -> tuple[list[str], int]:
        """Greedy answers in the cases' order, generated in batches of similar length."""
        from workbench.engine.sampling import generate_texts

        tokenizer = loaded.tokenizer
        texts = self._prompt_texts(tokenizer, loaded.chat)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        answers = generate_texts(loaded.model, tokenizer, [texts[i] for i in order],
                                 max_new_tokens=self._new_tokens(tokenizer), temperature=0.0,
                                 add_special=not loaded.chat, base=base,
                                 batch_size=ANSWER_BATCH)
        in_order = [""] * len(texts)
        for position, index in enumerate(order):
            in_order[index] = answers[position]
        new_tokens = sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) + 1
                         for a in in_order)  # +1: the end-of-turn token each answer stopped at
        return in_order, new_tokens

    def _general_loss(self, loaded, base: bool) -> float:
        """Mean cross-entropy per token over the general texts."""
        import torch
        from contextlib import nullcontext

        from workbench.engine.trainer import selective_head_loss, uses_standard_head

        model, tokenizer = loaded.model, loaded.tokenizer
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        device = next(model.parameters()).device
        side, tokenizer.padding_side = tokenizer.padding_side, "right"  # positions from 0
        try:
            with (model.disable_adapter() if base else nullcontext()), torch.no_grad():
                texts = sorted(self.texts, key=len)  # similar lengths together: less padding
                for start in range(0, len(texts), GENERAL_BATCH):
                    batch = tokenizer(texts[start:start + GENERAL_BATCH], padding=True,
                                      truncation=True, max_length=GENERAL_MAX_TOKENS,
                                      return_tensors="pt").to(device)
                    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
                    tokens = int((labels[:, 1:] != -100).sum())
                    inputs = {**batch, "labels": labels}
                    if uses_standard_head(model):
                        total += float(selective_head_loss(model, inputs, num_items_in_batch=1))
                    else:  # soft-capped heads: the model's own loss
                        total += float(model(**inputs).loss) * tokens
                    count += tokens
        finally:
            tokenizer.padding_side = side
            if was_training:
                model.train()
        return total / max(count, 1)


@dataclass
class Comparison:
    """`workbench eval`: each model's mean scores and general-text loss on the same cases."""

    models: list[str]
    scores: dict[str, dict[str, float]]  # model -> scorer -> mean
    general_loss: dict[str, float | None]
    examples: int
    data: str
    answers: dict[str, list[dict]] = field(default_factory=dict)
    seconds: float = 0.0

    def table(self) -> str:
        """Scorers as rows, models as columns; the forgetting check's loss last."""
        width = max([len("general text loss")] + [len(n) for n in self._scorer_names()])
        columns = [max(len(m), 8) for m in self.models]
        lines = [" " * width + "  " + "  ".join(f"{m:>{w}}" for m, w in zip(self.models, columns))]
        for name in self._scorer_names():
            lines.append(f"{name:<{width}}  " + "  ".join(
                f"{self.scores[m].get(name, float('nan')):>{w}.3f}"
                for m, w in zip(self.models, columns)))
        if any(v is not None for v in self.general_loss.values()):
            lines.append(f"{'general text loss':<{width}}  " + "  ".join(
                f"{self.general_loss[m]:>{w}.3f}" if self.general_loss[m] is not None
                else f"{'-':>{w}}" for m, w in zip(self.models, columns)))
        return "\n".join(lines) + f"\n({self.examples} examples from {self.data})"

    def _scorer_names(self) -> list[str]:
        return list(dict.fromkeys(n for m in self.models for n in self.scores[m]))

    def as_dict(self) -> dict:
        return {"models": self.models, "scores": self.scores, "general_loss": self.general_loss,
                "examples": self.examples, "data": self.data, "seconds": round(self.seconds, 2),
                "answers": self.answers}


def compare_runs(run, against: str | None = "base", scorers=(), data: str | None = None,
                 limit: int | None = None, checkpoint: int | None = None) -> Comparison:
    """Score a run folder (or one of its checkpoints) against its base model or another run,
    on the same cases: `data`, else the run's eval.data, else its held-out split. Scorers
    default to the run's eval.scorers."""
    import dataclasses

    from workbench.data.splits import load_splits
    from workbench.engine.loaded import load_run

    began = time.perf_counter()
    model = load_run(run, checkpoint=checkpoint)
    config = model.config
    chosen = list(scorers) or list(config.eval.scorers)
    if not chosen:
        raise ConfigError([Problem("no scorers: give --scorer NAME (exact, json_equal, "
                                   "json_valid, contains, regex:PATTERN, max_words:N or "
                                   "module:function), or set eval.scorers in the run's config",
                                   key=KEY)])
    settings = dataclasses.replace(config.eval, scorers=chosen, data=data or config.eval.data,
                                   max_examples=limit or config.eval.max_examples)
    held_out = [] if settings.data else load_splits(config.data, config.train.seed).eval
    evaluator = Evaluator.prepare(dataclasses.replace(config, eval=settings), held_out)
    sides = [(model.name + (f"@{checkpoint}" if checkpoint is not None else ""), model, False)]
    if against in (None, "base"):
        sides.append(("base", model, True))
    else:
        other = load_run(against)
        sides.append((other.name if other.name != sides[0][0] else f"{other.name} (2)", other,
                      False))
    results = {label: evaluator.evaluate(loaded, base=base) for label, loaded, base in sides}
    return Comparison([label for label, _, _ in sides],
                      {label: r.scores for label, r in results.items()},
                      {label: r.general_loss for label, r in results.items()},
                      len(evaluator.cases), settings.data or "the run's held-out split",
                      {label: r.answers for label, r in results.items()},
                      time.perf_counter() - began)
