"""The quickstart notebook's papermill parameters, and the one function that turns them into
a run config. The notebook's setup cell calls `quickstart_config`, and the dashboard's
Reproduce button reads `QUICKSTART_PARAMETERS` backwards (config field -> parameter), so
the two cannot drift: a parameter is a config field, checked by the config's own rules.

    config = quickstart_config(model="demo", dataset="orders.jsonl", max_steps=60, ...)

The other fields follow from the parameters, as written once here: LoRA alpha is twice
the rank, warm-up is a quarter of the steps (at most 5), and held-out loss, samples and
checkpoints come three times a run (at least every 5 steps).
"""

from __future__ import annotations

from workbench.config import RunConfig
from workbench.errors import ConfigError, NotebookError, Problem

QUICKSTART = "notebooks/01-quickstart.ipynb"
# each quickstart parameter -> the config field it sets
QUICKSTART_PARAMETERS = {
    "model": "model.name", "dataset": "data.path", "max_steps": "train.max_steps",
    "learning_rate": "train.learning_rate", "lora_r": "lora.r", "batch_size": "train.batch_size",
    "max_length": "data.max_length", "runs_dir": "output.runs_dir",
}


def quickstart_config(*, prompts: list[str] = (), **parameters) -> RunConfig:
    """The quickstart's run config from its parameters (all of QUICKSTART_PARAMETERS, by
    name) and the sample prompts. A bad value is refused by the config's rules, named by
    its parameter: `max_steps (train.max_steps): got 0; must be >= 1`."""
    unknown = sorted(set(parameters) - set(QUICKSTART_PARAMETERS))
    missing = sorted(set(QUICKSTART_PARAMETERS) - set(parameters))
    if unknown or missing:
        raise NotebookError(f"quickstart_config takes exactly the parameters "
                            f"{', '.join(QUICKSTART_PARAMETERS)}; unknown: {unknown or 'none'}, "
                            f"missing: {missing or 'none'}")
    raw: dict = {}
    for name, key in QUICKSTART_PARAMETERS.items():
        section, field = key.split(".")
        raw.setdefault(section, {})[field] = parameters[name]
    steps, rank = parameters["max_steps"], parameters["lora_r"]
    every = max(5, steps // 3) if isinstance(steps, int) else 0
    raw["lora"]["alpha"] = 2 * rank if isinstance(rank, int) else rank
    raw["data"]["eval_fraction"] = 0.1
    raw["train"].update(warmup_steps=min(5, steps // 4) if isinstance(steps, int) else 0,
                        scheduler="cosine", log_every=1, eval_every=every, save_every=every)
    raw["sample"] = {"prompts": list(prompts), "every": every if prompts else 0,
                     "max_new_tokens": 48}
    raw["output"]["name"] = "quickstart"
    try:
        return RunConfig.from_dict(raw)
    except ConfigError as exc:
        raise ConfigError([_as_parameter(p) for p in exc.problems]) from None


def _as_parameter(problem: Problem) -> Problem:
    """Name a field's problem by the notebook parameter that set it."""
    names = {key: name for name, key in QUICKSTART_PARAMETERS.items()}
    if problem.key in names:
        return Problem(problem.message, key=f"{names[problem.key]} ({problem.key})",
                       hint=problem.hint)
    return problem


def notebook_parameters(config: RunConfig, mapping: dict[str, str] | None = None) -> dict:
    """The parameters (name -> value) that set `config`'s mapped fields; fields at None are
    left out, so the notebook keeps its own default for them."""
    raw = config.to_dict()
    chosen = {}
    for name, key in (QUICKSTART_PARAMETERS if mapping is None else mapping).items():
        section, field = key.split(".", 1)
        if raw[section][field] is not None:
            chosen[name] = raw[section][field]
    return chosen
