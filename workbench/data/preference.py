"""Data for preference tuning (train.method dpo or kto): which rows each method trains on,
how a prompt and an answer become tokens, and the batches.

    pairs = dpo_examples(examples)            # (prompt, chosen, rejected), ties skipped
    rows = encode_pairs(pairs, tokenizer, max_length=512, max_prompt_length=None)
    batch = PairCollator(pad_id)(rows[:4])    # chosen rows first, then the rejected ones

Each side is the prompt rendered with the chat template and the answer as the assistant's
turn; only the answer's tokens (with its end-of-turn token) count, exactly the tokens
inference produces after the prompt. A prompt longer than `max_prompt_length` keeps its
end (the part nearest the answer); then the whole is cut to `max_length` at the end.

KTO also needs mismatched pairs to estimate how far the model has moved (its KL term): each
row is paired with the next row's answer (the last with the first), a fixed pairing, so
the reference model's log-probabilities of those pairs can be computed once, like the
rest, before training.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.data.encoding import (IGNORE, _batch_tokenize, chat_spans,
                                     with_answer)
from workbench.data.formats import Example
from workbench.errors import DataError, raise_if_problems


def dpo_examples(examples: list[Example]) -> tuple[list[Example], int]:
    """The pairs DPO trains on, and how many rows were skipped (ratings marked tie or both
    bad have no better answer)."""
    pairs = [e for e in examples if e.chosen is not None and e.choice not in ("tie", "both_bad")]
    return pairs, len(examples) - len(pairs)


def kto_examples(examples: list[Example]) -> tuple[list[Example], int]:
    """Rows KTO trains on, one answer each with its label: unpaired rows as they are; a pair
    gives its chosen answer as good and its rejected one as bad; a `both bad` rating gives
    two bad answers; a tie is skipped. Returns (rows, skipped)."""
    rows, skipped = [], 0
    for example in examples:
        if example.label is not None:
            rows.append(example)
        elif example.choice == "tie":
            skipped += 1
        elif example.choice == "both_bad":
            rows += [_unpaired(example, example.chosen, False),
                     _unpaired(example, example.rejected, False)]
        else:
            rows += [_unpaired(example, example.chosen, True),
                     _unpaired(example, example.rejected, False)]
    return rows, skipped


def _unpaired(example: Example, answer: str, label: bool) -> Example:
    return Example(example.where, messages=example.messages, completion=answer, label=label)


@dataclass
class Side:
    """One prompt + answer as token ids, and labels that are -100 except on the answer."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool


def encode_side(example: Example, answer: str, tokenizer, max_length: int,
                max_prompt_length: int | None = None) -> Side:
    """The prompt turns with `answer` as the last assistant turn; only that turn is trained."""
    view = with_answer(example, answer)
    text, spans = chat_spans(view, tokenizer)
    start, end = spans[-1]  # the answer: earlier assistant turns in the prompt are context
    ((ids, offsets),) = _batch_tokenize(tokenizer, [text], add_special=False)
    trained = [start <= a < end for a, _ in offsets]
    first = trained.index(True) if True in trained else len(ids)
    cut = False
    if max_prompt_length is not None and first > max_prompt_length:
        drop = first - max_prompt_length
        ids, trained, cut = ids[drop:], trained[drop:], True
    labels = [i if keep else IGNORE for i, keep in zip(ids, trained)]
    if len(ids) > max_length:
        ids, labels, cut = ids[:max_length], labels[:max_length], True
    return Side(ids, labels, cut)


@dataclass
class PreferenceStats:
    examples: int = 0
    truncated: int = 0
    skipped: int = 0  # ratings without a better answer (DPO), ties (KTO)
    dropped_nothing_trained: int = 0  # the answer lay wholly beyond max_length
    tokens: int = 0
    trained_tokens: int = 0
    longest: int = 0
    desirable: int = 0
    undesirable: int = 0

    def count(self, *sides: Side) -> None:
        self.truncated += any(side.truncated for side in sides)
        for side in sides:
            self.tokens += len(side.input_ids)
            self.trained_tokens += sum(1 for label in side.labels if label != IGNORE)
            self.longest = max(self.longest, len(side.input_ids))

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _encode(examples, encode_one, split: str, skipped: int, max_length: int):
    rows, stats, problems = [], PreferenceStats(skipped=skipped), []
    for example in examples:
        try:
            row, sides = encode_one(example)
        except DataError as exc:
            problems += exc.problems
            continue
        if any(all(label == IGNORE for label in side.labels) for side in sides):
            stats.dropped_nothing_trained += 1
            continue
        stats.count(*sides)
        stats.examples += 1
        rows.append(row)
    raise_if_problems(problems)
    if examples and not rows:
        raise DataError(f"nothing would be trained in the {split} data: every answer lies beyond "
                        f"data.max_length={max_length} after its prompt; raise data.max_length "
                        "or set preference.max_prompt_length")
    return rows, stats


def encode_pairs(examples: list[Example], tokenizer, max_length: int,
                 max_prompt_length: int | None = None, split: str = "training",
                 skipped: int = 0) -> tuple[list[dict], PreferenceStats]:
    """DPO rows: chosen and rejected sides of each pair."""
    def encode_one(example):
        chosen = encode_side(example, example.chosen, tokenizer, max_length, max_prompt_length)
        rejected = encode_side(example, example.rejected, tokenizer, max_length,
                               max_prompt_length)
        return ({"chosen_input_ids": chosen.input_ids, "chosen_labels": chosen.labels,
                 "rejected_input_ids": rejected.input_ids,
                 "rejected_labels": rejected.labels}, (chosen, rejected))

    return _encode(examples, encode_one, split, skipped, max_length)


def encode_unpaired(examples: list[Example], tokenizer, max_length: int,
                    max_prompt_length: int | None = None, split: str = "training",
                    skipped: int = 0) -> tuple[list[dict], PreferenceStats]:
    """KTO rows: the answer with its label, and the prompt with the next row's answer (the
    mismatched pair for the KL term)."""
    def encode_one(index_example):
        index, example = index_example
        mismatched = examples[(index + 1) % len(examples)].completion
        side = encode_side(example, example.completion, tokenizer, max_length, max_prompt_length)
        kl = encode_side(example, mismatched, tokenizer, max_length, max_prompt_length)
        return ({"input_ids": side.input_ids, "labels": side.labels, "label": example.label,
                 "kl_input_ids": kl.input_ids, "kl_labels": kl.labels}, (side,))

    rows, stats = _encode(list(enumerate(examples)), encode_one, split, skipped, max_length)
    stats.desirable = sum(1 for row in rows if row["label"])
    stats.undesirable = len(rows) - stats.desirable
    return rows, stats


def check_method(method: str, fmt: str, examples: list[Example], where: str) -> None:
    """Refuse data a method cannot train on, saying what it needs."""
    from workbench.data.formats import PREFERENCE_FORMATS

    preference = fmt in PREFERENCE_FORMATS
    if method == "grpo":
        if preference or fmt == "text":
            raise DataError(f"train.method grpo needs prompts to answer (rows with a 'prompt', "
                            f"or chat, alpaca or prompt_completion rows); {where} holds {fmt} "
                            "rows")
        return
    if fmt == "prompts":
        raise DataError(f"{where} holds prompts without answers, which only train.method grpo "
                        "learns from (with reward functions); add the answers, or set "
                        "train.method: grpo")
    if method == "sft" and preference:
        raise DataError(f"{where} holds {fmt} rows, which train.method sft cannot learn from; "
                        "set train.method: dpo (pairs) or kto (good/bad answers)")
    if method != "sft" and not preference:
        raise DataError(f"train.method {method} needs preference rows: {{prompt, chosen, "
                        f"rejected}}, {{prompt, completion, label}} or a ratings.jsonl; {where} "
                        f"holds {fmt} rows, which train.method sft trains on")
    if method == "dpo" and fmt == "unpaired":
        raise DataError(f"{where} holds unpaired rows (one answer, good or bad); DPO needs a "
                        "better and a worse answer to the same prompt, so use train.method kto")


def _pad(rows: list[list[int]], value: int):
    import torch

    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, :len(row)] = 1
    return out, mask


class PairCollator:
    """DPO batches: [chosen rows..., rejected rows...], padded on the right; the reference
    log-probabilities ride along when the rows carry them."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        ids, mask = _pad([r["chosen_input_ids"] for r in rows] +
                         [r["rejected_input_ids"] for r in rows], self.pad_token_id)
        labels, _ = _pad([r["chosen_labels"] for r in rows] + [r["rejected_labels"] for r in rows],
                         IGNORE)
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if "ref_chosen_logp" in rows[0]:
            batch["ref_logps"] = torch.tensor([r["ref_chosen_logp"] for r in rows] +
                                              [r["ref_rejected_logp"] for r in rows],
                                              dtype=torch.float64)
        return batch


class UnpairedCollator:
    """KTO batches: the rows' sequences, then their mismatched (KL) sequences, padded on the
    right; labels say which answers are good."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        ids, mask = _pad([r["input_ids"] for r in rows] + [r["kl_input_ids"] for r in rows],
                         self.pad_token_id)
        labels, _ = _pad([r["labels"] for r in rows] + [r["kl_labels"] for r in rows], IGNORE)
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels,
                 "desirable": torch.tensor([bool(r["label"]) for r in rows])}
        if "ref_logp" in rows[0]:
            batch["ref_logps"] = torch.tensor([r["ref_logp"] for r in rows] +
                                              [r["ref_kl_logp"] for r in rows],
                                              dtype=torch.float64)
        return batch
