"""What a model will read: its tokenizer without its weights, and a dataset's first
examples rendered and highlighted the way training sees them.

    tokenizer = tokenizer_for("demo")
    shown = preview(config)          # Preview(format, total, examples=[(where, segments)])

The dashboard's Preview button and `workbench data report` use these, so neither needs to
know how a model name becomes a tokenizer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from workbench.config import RunConfig
from workbench.data.encoding import trained_segments
from workbench.data.splits import load_examples
from workbench.errors import Where


def tokenizer_for(model: str = "demo", trust_remote_code: bool = False):
    """The tokenizer (with its chat template) of what model.name accepts: `demo`, a model
    folder, a .gguf file or a hub id; the weights are not loaded."""
    from workbench.backends.loading import load_tokenizer
    from workbench.backends.models import resolve_model

    return load_tokenizer(resolve_model(model), trust_remote_code)


@functools.lru_cache(maxsize=4)
def _cached_tokenizer(model: str, trust_remote_code: bool):
    return tokenizer_for(model, trust_remote_code)


@dataclass(frozen=True)
class Preview:
    format: str
    total: int  # examples in the file
    examples: list[tuple[Where, list[tuple[str, str]]]]  # (where, (text, kind) segments)


def preview(config: RunConfig, count: int = 3) -> Preview:
    """The first `count` training examples as (text, kind) segments, kind being trained,
    context or cut (beyond data.max_length). Raises DataError for a bad file."""
    data = config.data
    fmt, examples = load_examples(data.path or data.train_path, data.format, data.system_prompt)
    tokenizer = _cached_tokenizer(config.model.name, config.model.trust_remote_code)
    shown = [(e.where, trained_segments(e, tokenizer, data.max_length, data.train_on))
             for e in examples[:count]]
    return Preview(fmt, len(examples), shown)
