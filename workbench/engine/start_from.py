"""A run that starts from an earlier fine-tune (`lora.start_from`): sequential stacking.

`continue` trains the earlier adapter further; `merge` folds it into the base weights and
trains a new adapter on top. Either way the run folder keeps a copy of every adapter that
sits merged beneath its own, in order:

    runs/<run>/base_adapters/00-<earlier run>/adapter_config.json, adapter_model.safetensors

so the run loads, generates and exports on its own, even after the earlier run is gone.
The saved `adapter/` of a `merge` run is only the top layer: without `base_adapters/` it
would describe a different model.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from workbench.config import RunConfig
from workbench.engine.rundir import (ADAPTER, ADAPTER_CONFIG, BASE_ADAPTERS, AdapterSource,
                                     RunDir, locate_adapter)
from workbench.errors import ConfigError, Problem

START_FROM = "lora.start_from"


@dataclass(frozen=True)
class StartPoint:
    """Where a stacked run starts: the earlier adapter and what lies merged beneath it."""

    mode: str  # continue | merge
    source: str  # what lora.start_from said
    adapter: Path  # the earlier adapter folder
    beneath: tuple[Path, ...]  # adapters merged under the earlier one, in order
    base_model: str  # model.name the earlier adapter was trained on

    @property
    def merged(self) -> list[Path]:
        """The adapters the new run merges into its base weights, in order."""
        return list(self.beneath) + ([self.adapter] if self.mode == "merge" else [])

    def describe(self) -> dict:
        return {"start_from": self.source, "mode": self.mode, "adapter": str(self.adapter),
                "merged_into_base": [str(p) for p in self.merged]}


def resolve_start(config: RunConfig) -> StartPoint | None:
    """The start point `lora.start_from` names, checked: it exists, holds an adapter and was
    trained on the same base model. None when the run starts a fresh adapter."""
    raw = config.lora.start_from
    if not raw:
        return None
    source = locate_adapter(Path(raw).resolve())
    if source is None:
        raise ConfigError([Problem(f"lora.start_from {raw!r}: no run folder or adapter folder "
                                   "there (a run folder has config.yaml, an adapter folder "
                                   "adapter_config.json); `workbench adapters` lists the "
                                   "adapters in a runs folder", key=START_FROM)])
    run = source.run
    if run is not None and not (source.adapter / ADAPTER_CONFIG).is_file():
        raise ConfigError([Problem(f"lora.start_from {raw!r} is a run folder without a saved "
                                   f"adapter (status: {run.status()}); finish or resume "
                                   "that run first", key=START_FROM)])
    if run is not None:
        beneath, base = run.base_adapter_dirs(), run.read_config().model.name
    else:
        beneath, base = [], adapter_base_model(source.adapter)
    check_same_base(f"lora.start_from {raw!r}", base, config.model.name)
    return StartPoint(config.lora.start_mode, raw, source.adapter, tuple(beneath), base)


def adapter_base_model(adapter_dir: Path) -> str:
    try:
        saved = AdapterSource(adapter_dir).read_adapter_config()
    except (OSError, ValueError) as exc:
        raise ConfigError([Problem(f"{adapter_dir / ADAPTER_CONFIG} cannot be read ({exc})",
                                   key=START_FROM)]) from None
    return saved.get("base_model_name_or_path") or ""


def check_same_base(what: str, trained_on: str, model_name: str) -> None:
    """Refuse an adapter trained on another base model, naming both."""
    from workbench.backends.models import model_identity

    theirs, ours = model_identity(trained_on), model_identity(model_name)
    if theirs != ours:
        raise ConfigError([Problem(f"{what} was trained on {trained_on!r} ({theirs}), but "
                                   f"model.name is {model_name!r} ({ours}); an adapter only fits "
                                   f"the base model it was trained on, so set model.name: "
                                   f"{trained_on}", key=START_FROM)])


def record_start(run_dir: RunDir, start: StartPoint) -> None:
    """Copy the adapters the run merges beneath its own into its folder, in order."""
    root = run_dir.path / BASE_ADAPTERS
    for index, adapter in enumerate(start.merged):
        label = adapter.parent.name if adapter.name == ADAPTER else adapter.name
        shutil.copytree(adapter, root / f"{index:02d}-{label}",
                        ignore=lambda _, names: [n for n in names if not n.startswith("adapter_")])
    run_dir.write_json(f"{BASE_ADAPTERS}.json", start.describe())

