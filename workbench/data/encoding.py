"""Turn examples into token ids and labels, training only where it should.

Chat examples are rendered with the model's own chat template (ChatML when the
tokenizer has none). The characters of each assistant turn, including its
end-of-turn marker, are marked as trained; the rendered text is tokenized once
with offsets, and a token is trained when it starts inside a trained span. So the
ids trained on are exactly the ids the model sees at inference.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from workbench.data.formats import Example
from workbench.errors import DataError, raise_if_problems

IGNORE = -100

# Used for models whose tokenizer has no chat template (documented in the README).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool
    length: int = 0  # tokens before the cut at max_length

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def ensure_chat_template(tokenizer) -> bool:
    """Give the tokenizer a ChatML template if it has none; True when the fallback was used."""
    if getattr(tokenizer, "chat_template", None):
        return False
    tokenizer.chat_template = CHATML_TEMPLATE
    return True


def render_chat(messages, tokenizer, add_generation_prompt: bool = False) -> str:
    text = tokenizer.apply_chat_template(list(messages), tokenize=False,
                                         add_generation_prompt=add_generation_prompt)
    return text if isinstance(text, str) else str(text)


def _render_example(example: Example, messages, tokenizer, add_generation_prompt=False) -> str:
    """render_chat, with template failures (Jinja errors, raise_exception) named by example."""
    try:
        return render_chat(messages, tokenizer, add_generation_prompt)
    except Exception as exc:  # templates raise anything: TemplateError, TypeError, ...
        from jinja2.exceptions import SecurityError  # transformers renders in jinja2's sandbox

        if isinstance(exc, SecurityError):
            raise DataError(f"the model's chat template tried to reach Python internals and "
                            f"the template sandbox stopped it ({exc}); do not use this "
                            "tokenizer's chat template", example.where) from None
        raise DataError(f"the model's chat template refused this conversation "
                        f"({type(exc).__name__}: {exc}); many templates require turns to "
                        "alternate user/assistant, optionally after one system turn",
                        example.where) from None


def chat_spans(example: Example, tokenizer) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns."""
    messages = list(example.messages)
    full = _render_example(example, messages, tokenizer)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(_render_example(example, messages[:index], tokenizer, True))
        upto = full if index + 1 == len(messages) else \
            _render_example(example, messages[: index + 1], tokenizer)
        if not full.startswith(upto) or upto[start:].find(message["content"].strip()) < 0:
            raise DataError(
                "this model's chat template rewrites earlier turns when a later one is added, "
                "so assistant tokens cannot be located exactly; use "
                "data.format=prompt_completion with pre-rendered text, or train_on=all",
                example.where)
        spans.append((start, len(upto)))
    return full, spans


def _rendered(example: Example, tokenizer) -> tuple[str, list, bool]:
    """The text the model sees, the character spans trained with `responses`, and whether
    the tokenizer adds its special tokens (chat templates place BOS themselves). A
    preference example is measured as its prompt with its (chosen) answer."""
    if example.is_preference:
        example = answer_view(example)
    if example.messages is not None:
        text, spans = chat_spans(example, tokenizer)
        return text, spans, False
    eos = tokenizer.eos_token or ""
    text = example.prompt + example.completion + eos
    return text, [(len(example.prompt), len(text))], True


def with_answer(example: Example, answer: str) -> Example:
    """A preference example's prompt turns with `answer` as the assistant's reply."""
    return Example(example.where, messages=tuple(example.messages) +
                   ({"role": "assistant", "content": answer},))


def answer_view(example: Example) -> Example:
    """The conversation a preference example trains most on: its chosen answer (or its one
    answer, for unpaired rows)."""
    return with_answer(example, example.chosen if example.chosen is not None
                       else example.completion)


def _trained(offsets, spans, train_on: str) -> list[bool]:
    """A token is trained when it starts inside a trained span."""
    if train_on == "all":
        return [True] * len(offsets)
    starts = [start for start, _ in offsets]
    if starts != sorted(starts):  # offsets out of order: test token by token
        return [any(a <= start < b for a, b in spans) for start in starts]
    trained = [False] * len(starts)
    for a, b in spans:  # sorted starts: each span is one run of tokens, found by bisection
        first, end = bisect.bisect_left(starts, a), bisect.bisect_left(starts, b)
        trained[first:end] = [True] * (end - first)
    return trained


def _tokenized(example: Example, tokenizer, train_on: str):
    """The text the model sees, its token ids and offsets, and which tokens are trained."""
    text, spans, add_special = _rendered(example, tokenizer)
    tokens = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    offsets = [tuple(pair) for pair in tokens["offset_mapping"]]
    return text, list(tokens["input_ids"]), offsets, _trained(offsets, spans, train_on)


def _encoded(ids: list[int], trained: list[bool], max_length: int) -> Encoded:
    labels = [token_id if keep else IGNORE for token_id, keep in zip(ids, trained)]
    return Encoded(ids[:max_length], labels[:max_length], len(ids) > max_length, len(ids))


def encode(example: Example, tokenizer, max_length: int, train_on: str = "responses") -> Encoded:
    """Token ids and labels (-100 where nothing is trained) for one example."""
    _, ids, _, trained = _tokenized(example, tokenizer, train_on)
    return _encoded(ids, trained, max_length)


def encode_many(examples: list[Example], tokenizer, max_length: int,
                train_on: str = "responses") -> list[Encoded | DataError]:
    """`encode` for each example (a DataError in its place when its template refuses it),
    tokenizing all texts in one batch: several times faster than one call each."""
    return [item if isinstance(item, DataError) else _encoded(*item, max_length)
            for item in _tokenize_many(examples, tokenizer, train_on)]


def measure_many(examples: list[Example], tokenizer, max_length: int,
                 train_on: str = "responses") -> list[tuple[int, int] | DataError]:
    """(tokens before the cut, tokens trained after it) per example, as `encode_many`
    counts them, without building ids and labels (what a data report needs)."""
    return [item if isinstance(item, DataError) else (len(item[1]), sum(item[1][:max_length]))
            for item in _tokenize_many(examples, tokenizer, train_on, with_ids=False)]


def _tokenize_many(examples: list[Example], tokenizer, train_on: str, with_ids: bool = True
                   ) -> list:
    """Per example (ids, trained flags), or the DataError its chat template raised."""
    results: list = [None] * len(examples)
    groups: dict[bool, list] = {True: [], False: []}
    for index, example in enumerate(examples):
        try:
            text, spans, add_special = _rendered(example, tokenizer)
        except DataError as exc:
            results[index] = exc
            continue
        groups[add_special].append((index, text, spans))
    for add_special, items in groups.items():
        tokenized = _batch_tokenize(tokenizer, [text for _, text, _ in items], add_special,
                                    with_ids)
        for (index, _, spans), (ids, offsets) in zip(items, tokenized):
            results[index] = (ids, _trained(offsets, spans, train_on))
    return results


def _batch_tokenize(tokenizer, texts: list[str], add_special: bool, with_ids: bool = True
                    ) -> list[tuple[list | None, list]]:
    """(ids, offsets) per text. The Rust tokenizer's batch call, when the tokenizer is fast
    and has no truncation or padding set on it (transformers' own batch call spends most
    of its time converting offsets); else one call per text."""
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.truncation is None and backend.padding is None:
        encodings = backend.encode_batch(texts, add_special_tokens=add_special)
        return [(encoding.ids if with_ids else None, encoding.offsets) for encoding in encodings]
    results = []
    for text in texts:
        tokens = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
        results.append((list(tokens["input_ids"]), [tuple(p) for p in tokens["offset_mapping"]]))
    return results


def trained_segments(example: Example, tokenizer, max_length: int,
                     train_on: str = "responses") -> list[tuple[str, str]]:
    """The rendered example as (text, kind) pieces, kind being `trained`, `context` or `cut`
    (beyond max_length), in order: what a dataset preview highlights."""
    text, ids, offsets, trained = _tokenized(example, tokenizer, train_on)
    kinds = [("trained" if keep else "context") if i < max_length else "cut"
             for i, keep in enumerate(trained)]
    starts = [start for start, end in offsets if end > start]  # skip zero-width specials
    kinds = [kind for kind, (start, end) in zip(kinds, offsets) if end > start]
    segments: list[tuple[str, str]] = []
    for index, (start, kind) in enumerate(zip(starts, kinds)):
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        if index == 0:
            start = 0
        if segments and segments[-1][1] == kind:
            segments[-1] = (segments[-1][0] + text[start:end], kind)
        else:
            segments.append((text[start:end], kind))
    return segments


@dataclass
class EncodeStats:
    examples: int = 0
    truncated: int = 0
    dropped_nothing_trained: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    longest: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def encode_all(examples: list[Example], tokenizer, max_length: int, train_on: str,
               split: str) -> tuple[list[dict], EncodeStats]:
    """Encode a split; drop examples with nothing left to train and refuse an empty result."""
    rows, stats, problems = [], EncodeStats(), []
    for encoded in encode_many(examples, tokenizer, max_length, train_on):
        if isinstance(encoded, DataError):  # keep going: report every refused example
            problems += encoded.problems
            continue
        stats.truncated += encoded.truncated
        if encoded.trained_tokens == 0:
            stats.dropped_nothing_trained += 1
            continue
        rows.append({"input_ids": encoded.input_ids, "labels": encoded.labels})
        stats.examples += 1
        stats.tokens += len(encoded.input_ids)
        stats.trained_tokens += encoded.trained_tokens
        stats.longest = max(stats.longest, len(encoded.input_ids))
    raise_if_problems(problems)
    if examples and not rows:
        raise DataError(
            f"nothing would be trained in the {split} data: all {len(examples)} examples have "
            f"no trained tokens after rendering and cutting at max_length={max_length} "
            f"({stats.truncated} were cut). Raise data.max_length, shorten the prompts, or check "
            "that examples have assistant answers")
    return rows, stats


class PaddingCollator:
    """Pads a batch on the right to its longest row; labels are padded with -100."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            ids[i, :n] = torch.tensor(row["input_ids"])
            labels[i, :n] = torch.tensor(row["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}
