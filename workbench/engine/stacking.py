"""Sequential stacking: a run that starts from an earlier fine-tune (`lora.start_from`).

`continue` trains the earlier adapter further; `merge` folds it into the base weights and
trains a new adapter on top. Either way the run folder keeps a copy of every adapter that
sits merged beneath its own, in order:

    runs/<run>/base_adapters/00-<earlier run>/adapter_config.json, adapter_model.safetensors

so the run loads, generates and exports on its own, even after the earlier run is gone.
The saved `adapter/` of a `merge` run is only the top layer: without `base_adapters/` it
would describe a different model.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from workbench.config import RunConfig
from workbench.engine.rundir import ADAPTER, CONFIG, RunDir
from workbench.errors import ConfigError, Problem, RunError

BASE_ADAPTERS = "base_adapters"
START_FROM = "lora.start_from"
ADAPTER_CONFIG = "adapter_config.json"


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
    path = Path(raw).expanduser().resolve()
    if path.name == ADAPTER and (path.parent / CONFIG).is_file():
        path = path.parent  # the adapter folder of a run: use the run, it knows what lies beneath
    if (path / CONFIG).is_file():
        run = RunDir(path)
        if not (run.adapter_dir / ADAPTER_CONFIG).is_file():
            raise ConfigError([Problem(f"lora.start_from {raw!r} is a run folder without a saved "
                                       f"adapter (status: {run.status()}); finish or resume "
                                       "that run first", key=START_FROM)])
        adapter, beneath = run.adapter_dir, base_adapter_dirs(path)
        base = run.read_config().model.name
    elif (path / ADAPTER_CONFIG).is_file():
        adapter, beneath, base = path, [], adapter_base_model(path)
    else:
        raise ConfigError([Problem(f"lora.start_from {raw!r}: no run folder or adapter folder "
                                   "there (a run folder has config.yaml, an adapter folder "
                                   "adapter_config.json); `workbench adapters` lists the "
                                   "adapters in a runs folder", key=START_FROM)])
    check_same_base(f"lora.start_from {raw!r}", base, config.model.name)
    return StartPoint(config.lora.start_mode, raw, adapter, tuple(beneath), base)


def adapter_base_model(adapter_dir: Path) -> str:
    try:
        saved = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError([f"{adapter_dir / ADAPTER_CONFIG} cannot be read ({exc})"]) from None
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


def base_adapter_dirs(run_dir: str | Path) -> list[Path]:
    """The adapters merged beneath a run's own adapter, in order (empty for a plain run)."""
    root = Path(run_dir) / BASE_ADAPTERS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / ADAPTER_CONFIG).is_file())


def record_start(run_dir: RunDir, start: StartPoint) -> None:
    """Copy the adapters the run merges beneath its own into its folder, in order."""
    root = run_dir.path / BASE_ADAPTERS
    for index, adapter in enumerate(start.merged):
        label = adapter.parent.name if adapter.name == ADAPTER else adapter.name
        shutil.copytree(adapter, root / f"{index:02d}-{label}",
                        ignore=lambda _, names: [n for n in names if not n.startswith("adapter_")])
    run_dir.write_json(f"{BASE_ADAPTERS}.json", start.describe())


def load_run_model(run_dir: str | Path, trainable: bool = False):
    """A run's model as it was trained: base, adapters merged beneath (if any), its adapter.

    Returns (config, ModelBundle)."""
    from workbench.backends.hf import HFBackend

    folder = RunDir.open(run_dir)
    if not (folder.adapter_dir / ADAPTER_CONFIG).is_file():
        raise RunError(f"{folder.path} has no adapter (status: {folder.status()}); resume it "
                       f"with `workbench train --resume {folder.path}` or train it again")
    config = folder.read_config()
    bundle = HFBackend().load(config, adapter_dir=str(folder.adapter_dir), trainable=trainable,
                              base_adapters=[str(p) for p in base_adapter_dirs(folder.path)])
    return config, bundle
