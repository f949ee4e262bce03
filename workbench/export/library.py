"""The adapters in a runs folder, and whether they can be combined.

    for info in list_adapters("runs"):
        print(info.name, info.base_model, info.rank, info.final_loss)
    check_compatible([a, b])      # ExportError naming the two that differ

Adapters combine only when they were trained on the same weights: the same base model
(compared by what the name resolves to, so `demo` and its cached folder are one model)
and the same adapters merged beneath them (a `lora.start_mode: merge` run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from workbench.engine.rundir import (ADAPTER, ADAPTER_CONFIG, BASE_ADAPTERS, CONFIG,
                                     AdapterSource, list_runs, locate_adapter)
from workbench.errors import ExportError


@dataclass(frozen=True)
class AdapterInfo:
    name: str  # the run folder's name (or the adapter folder's, for a bare adapter)
    path: Path  # the adapter folder
    run_dir: Path | None
    base_model: str  # model.name as the run's config says it
    base_identity: str  # what that name resolves to
    beneath: tuple[str, ...] = ()  # adapters merged under this one, by origin
    rank: int | None = None
    alpha: float | None = None
    targets: list[str] = field(default_factory=list)
    dataset: str | None = None
    final_loss: float | None = None
    status: str | None = None

    @property
    def base_label(self) -> str:
        stacked = f" + {len(self.beneath)} merged adapter(s)" if self.beneath else ""
        return f"{self.base_model}{stacked}"


def adapter_info(path: str | Path) -> AdapterInfo:
    """What an adapter is: from a run folder, a run's adapter/ or checkpoint folder, or a
    bare adapter."""
    from workbench.backends.models import model_identity

    source = locate_adapter(path)
    if source is None:
        raise ExportError(f"{path}: not a run folder or adapter folder (no {CONFIG} or "
                          f"{ADAPTER_CONFIG}); `workbench adapters` lists the adapters in a "
                          "runs folder")
    run = source.run
    if run is not None and not (source.adapter / ADAPTER_CONFIG).is_file():
        raise ExportError(f"{run.path} has no saved adapter (status: {run.status()}); finish "
                          f"or resume it with `workbench train --resume {run.path}`")
    saved = _adapter_config(source)
    if run is None:
        base = saved.get("base_model_name_or_path") or "?"
        return AdapterInfo(name=source.adapter.name, path=source.adapter, run_dir=None,
                           base_model=base, base_identity=model_identity(base),
                           rank=saved.get("r"), alpha=saved.get("lora_alpha"),
                           targets=_targets(saved))
    config, summary = run.read_config(), run.summary()
    origins = run.read_json(f"{BASE_ADAPTERS}.json").get("merged_into_base") or [
        str(p) for p in run.base_adapter_dirs()]
    name = run.path.name if source.adapter == run.adapter_dir else \
        f"{run.path.name}/{source.adapter.name}"
    return AdapterInfo(
        name=name, path=source.adapter, run_dir=run.path, base_model=config.model.name,
        base_identity=model_identity(config.model.name), beneath=tuple(origins),
        rank=saved.get("r"), alpha=saved.get("lora_alpha"), targets=_targets(saved),
        dataset=config.data.path or config.data.train_path,
        final_loss=summary.get("final_loss"), status=run.status())


def list_adapters(runs_dir: str | Path = "runs") -> list[AdapterInfo]:
    """Every run in `runs_dir` with a saved adapter, newest first."""
    return [adapter_info(row["path"]) for row in list_runs(runs_dir)
            if (Path(row["path"]) / ADAPTER / ADAPTER_CONFIG).is_file()]


def check_compatible(adapters: list[AdapterInfo]) -> None:
    """Refuse adapters trained on different weights, naming the first two that differ."""
    if not adapters:
        raise ExportError("no adapters given; `workbench adapters` lists the ones in a runs folder")
    first = adapters[0]
    for other in adapters[1:]:
        if other.base_identity != first.base_identity:
            raise ExportError(
                f"cannot combine {first.name} and {other.name}: they were trained on different "
                f"base models ({first.name}: {first.base_model!r} = {first.base_identity}; "
                f"{other.name}: {other.base_model!r} = {other.base_identity}). Adapters combine "
                "only on the base model they were trained on")
        if other.beneath != first.beneath:
            raise ExportError(
                f"cannot combine {first.name} and {other.name}: they sit on different merged "
                f"adapters ({first.name}: {list(first.beneath) or 'none'}; {other.name}: "
                f"{list(other.beneath) or 'none'}), so their bases differ even though both "
                f"start from {first.base_model!r}")


def _adapter_config(source: AdapterSource) -> dict:
    try:
        return source.read_adapter_config()
    except (OSError, ValueError) as exc:
        raise ExportError(f"{source.adapter / ADAPTER_CONFIG} cannot be read ({exc})") from None


def _targets(saved: dict) -> list[str]:
    """Module kinds (q_proj, down_proj, ...): PEFT saves `all-linear` as every full name."""
    targets = saved.get("target_modules") or []
    if not isinstance(targets, list):
        return [str(targets)]
    return sorted({name.rsplit(".", 1)[-1] for name in targets})
