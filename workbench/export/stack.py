"""Several adapters on one base model, and weighted combinations of them.

    stack = AdapterStack(["runs/format-...", "runs/tone-..."])
    stack.combine([1.0, 0.5], method="cat")
    stack.answers(["Two lattes to Lyon"])   # {"base": [...], "format-...": [...], ...,
                                            #  "combined": [...]}
    model = stack.merged_model()            # a plain transformers model, combination folded in

Combinations come from PEFT's `add_weighted_adapter`:

- `cat`: the exact weighted sum of the adapters' updates (its rank is the sum of theirs);
- `linear`: mixes the A and B matrices separately, so with two non-zero weights it adds
  cross terms and is only an approximation of the sum; same ranks only;
- `svd`: the exact weighted sum, cut back to the largest rank by SVD;
- `ties`, `dare_linear`, `dare_ties`: prune each update to `density` (a share of its
  entries kept, 0 to 1) before summing, which reduces interference; `dare_*` prunes at
  random (seeded, so a combination is reproducible). Same ranks only.
"""

from __future__ import annotations

import copy

from workbench.engine.loaded import load_run
from workbench.errors import ExportError
from workbench.export.library import AdapterInfo, adapter_info, check_compatible

METHODS = ("linear", "cat", "svd", "ties", "dare_linear", "dare_ties")
NEEDS_DENSITY = ("ties", "dare_linear", "dare_ties")
SAME_RANK = ("linear", "ties", "dare_linear", "dare_ties")
BASE, COMBINED = "base", "combined"


class AdapterStack:
    """Adapters trained on the same base, loaded once each onto one copy of that base."""

    def __init__(self, adapters: list, seed: int = 0):
        infos = [a if isinstance(a, AdapterInfo) else adapter_info(a) for a in adapters]
        check_compatible(infos)
        self.adapters = infos
        self.labels = _unique([info.name for info in infos])
        self.seed = seed
        self.method, self.weights, self.density = None, None, None
        self._keys = {}  # label -> PEFT adapter name
        self._load()

    def _load(self) -> None:
        """The first adapter as its run trained it (`load_run`); the others beside it."""
        from workbench.backends.loading import PICKLED_ADAPTER, SAFE_ADAPTER, refuse_pickle_only

        first = load_run(self.adapters[0].path)
        config = first.config
        self.config, self.model, self.tokenizer, self.chat = (
            config, first.model, first.tokenizer, first.chat)
        self._keys[self.labels[0]] = "default"  # the name PEFT gives the first adapter
        for index, (label, info) in enumerate(zip(self.labels[1:], self.adapters[1:]), start=1):
            if not config.model.allow_pickle:
                refuse_pickle_only(info.path, "adapter", SAFE_ADAPTER, PICKLED_ADAPTER)
            self.model.load_adapter(str(info.path), adapter_name=f"adapter{index}",
                                    is_trainable=False)
            self._keys[label] = f"adapter{index}"
        self.model.eval()

    # -- combining ---------------------------------------------------------------------------

    def combine(self, weights: list[float], method: str = "linear",
                density: float | None = None) -> None:
        """Make the weighted combination the `combined` adapter (replacing an earlier one)."""
        import torch

        weights = [float(w) for w in weights]
        self._check(weights, method, density)
        if COMBINED in self.model.peft_config:
            # PEFT warns when the active adapter is deleted, so step off it first
            self.model.set_adapter(self._keys[self.labels[0]])
            self.model.delete_adapter(COMBINED)
        torch.manual_seed(self.seed)  # dare_* prunes at random
        try:
            self.model.add_weighted_adapter(
                adapters=[self._keys[label] for label in self.labels], weights=weights,
                adapter_name=COMBINED, combination_type=method,
                density=density if method in NEEDS_DENSITY else None)
        except (ValueError, TypeError) as exc:
            raise ExportError(f"PEFT cannot combine these adapters with {method!r}: "
                              f"{exc}") from None
        _unit_scaling(self.model, COMBINED)
        self.model.set_adapter(COMBINED)
        self.model.eval()
        self.method, self.weights, self.density = method, weights, density

    def _check(self, weights, method, density) -> None:
        if method not in METHODS:
            raise ExportError(f"combination method {method!r} is not offered; choose one of "
                              f"{', '.join(METHODS)}")
        if len(weights) != len(self.labels):
            raise ExportError(f"{len(weights)} weights for {len(self.labels)} adapters "
                              f"({', '.join(self.labels)}); give one weight per adapter")
        ranks = sorted({info.rank for info in self.adapters})
        if method in SAME_RANK and len(ranks) > 1:
            raise ExportError(f"{method} needs adapters of one rank, and these have ranks "
                              f"{', '.join(map(str, ranks))}; use cat or svd, which take any ranks")
        if method in NEEDS_DENSITY and (density is None or not 0 < density <= 1):
            raise ExportError(f"{method} needs a density between 0 and 1 (the share of each "
                              f"update kept), got {density!r}; 0.5 is a common start")

    # -- using -------------------------------------------------------------------------------

    @property
    def choices(self) -> list[str]:
        """What can answer: the base, each adapter alone, and the combination once made."""
        return [BASE] + self.labels + ([COMBINED] if self.method else [])

    def _activate(self, which: str) -> bool:
        """Switch to `which`; True when it is the base model (adapters off)."""
        if which == BASE:
            return True
        key = COMBINED if which == COMBINED and self.method else self._keys.get(which)
        if key is None:
            raise ExportError(f"{which!r} is not in this stack; choose one of "
                              f"{', '.join(self.choices)}")
        self.model.set_adapter(key)
        self.model.eval()
        return False

    def generate(self, prompts: list[str], which: str = COMBINED, max_new_tokens: int = 48,
                 temperature: float = 0.0) -> list[str]:
        from workbench.engine.sampling import generate

        base = self._activate(which)
        return generate(self.model, self.tokenizer, list(prompts), max_new_tokens=max_new_tokens,
                        temperature=temperature, chat=self.chat,
                        system_prompt=self.config.data.system_prompt, base=base)

    def answers(self, prompts: list[str], which: list[str] | None = None,
                **kwargs) -> dict[str, list[str]]:
        """Answers to each prompt by each model, in `choices` order unless `which` says."""
        return {name: self.generate(prompts, name, **kwargs) for name in which or self.choices}

    def logits(self, input_ids, which: str = COMBINED):
        import torch
        from contextlib import nullcontext

        base = self._activate(which)
        with (self.model.disable_adapter() if base else nullcontext()), torch.no_grad():
            return self.model(input_ids=input_ids).logits

    def merged_model(self, which: str = COMBINED):
        """A plain transformers model with `which` folded into the weights. The stack keeps
        working: the merge happens on a copy."""
        if which == BASE:
            return copy.deepcopy(self.model.get_base_model())
        self._activate(which)
        key = self.model.active_adapter
        merged = copy.deepcopy(self.model).merge_and_unload(adapter_names=[key])
        return merged.eval()

    def describe(self) -> dict:
        return {"adapters": [str(info.path) for info in self.adapters], "labels": self.labels,
                "method": self.method, "weights": self.weights, "density": self.density,
                "base_model": self.adapters[0].base_model}


def _unit_scaling(model, name: str) -> None:
    """The combined update already includes each adapter's alpha / r; PEFT gives the new
    adapter alpha = r, whose scale is 1, except under rsLoRA (alpha / sqrt(r)). Make it 1."""
    from peft.tuners.lora import LoraLayer

    config = model.peft_config[name]
    if not config.use_rslora:
        return
    config.use_rslora = False
    for module in model.modules():
        if isinstance(module, LoraLayer) and name in module.scaling:
            module.scaling[name] = 1.0


def _unique(names: list[str]) -> list[str]:
    seen, result = {}, []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return result
