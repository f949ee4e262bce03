"""The backend protocol: how a model is loaded and given LoRA adapters.

Training itself always goes through the engine's transformers.Trainer; a backend
only decides how the model is built (plain transformers + PEFT, or Unsloth).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from workbench.config import RunConfig


@dataclass
class ModelBundle:
    """A trainable model with its tokenizer and the facts a run records."""

    model: Any  # a peft.PeftModel
    tokenizer: Any
    backend: str
    device: str
    dtype: str
    source: str  # the folder the weights were read from
    notes: list[str]
    # The model's own loss must be used: the backend made it fast (Unsloth's fused
    # cross-entropy), and the engine's selective loss would go around it.
    model_loss: bool = False
    # The backend set up gradient checkpointing itself; Trainer must not redo it.
    backend_checkpointing: bool = False


class Backend(Protocol):
    name: str

    def load(self, config: RunConfig, adapter_dir: str | None = None, trainable: bool = True,
             base_adapters=()) -> ModelBundle:
        """Load the base model, merge `base_adapters` into it (sequential stacking), and
        attach a new LoRA adapter, or the one in adapter_dir."""
        ...
