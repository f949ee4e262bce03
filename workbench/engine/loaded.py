"""One way to open a fine-tune: `load_run(path) -> LoadedRun`, the model as its run trained it.

    tuned = load_run("runs/demo-20261122-101500")        # or its adapter/, a checkpoint
    tuned.generate(["Two lattes to Lyon"])                # the tuned model
    tuned.generate(["Two lattes to Lyon"], base=True)     # the same weights, adapter off
    tuned.reply([{"role": "user", "content": "Hi"}])      # the next turn of a chat

Everything that opens a finished run goes through `load_run` (TunedModel, the adapter
stack, merge and export, the dashboard's chat on an earlier run, evaluation), so they
all see the same model: the base, the adapters a `lora.start_mode: merge` run sits on
(its `base_adapters/`), then the run's adapter. Whether prompts are rendered with the
chat template follows the data format the run recorded (`is_chat_format`). A running
`Run` exposes its live model in the same shape (`Run.loaded`).
"""

from __future__ import annotations

from pathlib import Path

from workbench.config import ModelSettings, RunConfig
from workbench.data.formats import is_chat_format
from workbench.engine.rundir import ADAPTER_CONFIG, ENVIRONMENT, RunDir, locate_adapter
from workbench.errors import RunError


class LoadedRun:
    """A model with its LoRA adapter, the config it was trained with, and how to prompt it."""

    def __init__(self, config: RunConfig, bundle, chat: bool, run_dir: Path | None = None,
                 trained_with: str | None = None, adapter: Path | None = None):
        self.config, self.bundle, self.chat = config, bundle, chat
        self.run_dir = Path(run_dir) if run_dir else None
        self.trained_with = trained_with  # the backend that trained it (hf, unsloth)
        self.adapter = adapter

    @property
    def model(self):
        return self.bundle.model

    @property
    def tokenizer(self):
        return self.bundle.tokenizer

    @property
    def name(self) -> str:
        """The run folder's name (or the adapter folder's), for labels."""
        where = self.run_dir or self.adapter
        return where.name if where else "model"

    def generate(self, prompts: list[str], base: bool = False, max_new_tokens: int | None = None,
                 temperature: float | None = None) -> list[str]:
        """One answer per prompt (a user turn, or raw text for prompt_completion/text runs);
        base=True switches the adapter off. Defaults: the run's sample settings."""
        from workbench.engine.sampling import generate

        return generate(self.model, self.tokenizer, list(prompts), base=base, chat=self.chat,
                        system_prompt=self.config.data.system_prompt,
                        **self._sampling(max_new_tokens, temperature))

    def reply(self, messages: list[dict], base: bool = False, max_new_tokens: int | None = None,
              temperature: float | None = None) -> str:
        """The assistant's next turn after `messages` ({role, content} dicts). A run trained
        on raw text continues the last message instead."""
        from workbench.engine.sampling import chat_reply, generate_texts

        options = self._sampling(max_new_tokens, temperature)
        if not self.chat:
            return generate_texts(self.model, self.tokenizer, [messages[-1]["content"]],
                                  add_special=True, base=base, **options)[0]
        system = self.config.data.system_prompt
        if system and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system}] + list(messages)
        return chat_reply(self.model, self.tokenizer, messages, base=base, **options)

    def _sampling(self, max_new_tokens, temperature) -> dict:
        sample = self.config.sample
        return {"max_new_tokens": sample.max_new_tokens if max_new_tokens is None
                else max_new_tokens,
                "temperature": sample.temperature if temperature is None else temperature}

    def __repr__(self) -> str:
        return f"LoadedRun({self.name!r}, chat={self.chat}, trained_with={self.trained_with!r})"


def load_run(path: str | Path, checkpoint: int | None = None,
             trainable: bool = False) -> LoadedRun:
    """Open a run folder (or its adapter/ folder, one of its checkpoints/ folders, or a bare
    PEFT adapter folder) as its run trained it. `checkpoint=N` takes the adapter saved at
    step N instead of the final one. Raises RunError saying what to do when there is no
    adapter to load."""
    from workbench.backends.hf import HFBackend

    source = locate_adapter(path)
    if source is None:
        raise RunError(f"{path} is not a run folder (no config.yaml) or an adapter folder (no "
                       f"{ADAPTER_CONFIG}); `workbench runs` lists runs")
    run, adapter = source.run, source.adapter
    if run is not None and checkpoint is not None:
        adapter = run.checkpoints_dir / f"checkpoint-{checkpoint}"
    if not (adapter / ADAPTER_CONFIG).is_file():
        raise_missing_adapter(run, adapter, checkpoint)
    if run is not None:
        config, recorded = run.read_config(), run.read_json(ENVIRONMENT)
        data_format = recorded.get("data", {}).get("format", config.data.format)
        beneath, trained_with = run.base_adapter_dirs(), recorded.get("backend")
    else:  # a bare adapter knows only its base model
        base = source.read_adapter_config().get("base_model_name_or_path") or ""
        config, data_format, beneath, trained_with = (
            RunConfig(model=ModelSettings(name=base)), "auto", [], None)
    bundle = HFBackend().load(config, adapter_dir=str(adapter), trainable=trainable,
                              base_adapters=[str(p) for p in beneath])
    return LoadedRun(config, bundle, is_chat_format(data_format),
                     run_dir=run.path if run else None, trained_with=trained_with,
                     adapter=adapter)


def raise_missing_adapter(run: RunDir | None, adapter: Path, checkpoint: int | None = None):
    if run is None:
        raise RunError(f"{adapter} holds no {ADAPTER_CONFIG}")
    if checkpoint is not None:
        steps = [p.name.removeprefix("checkpoint-") for p in run.checkpoints()]
        raise RunError(f"{run.path} has no checkpoint at step {checkpoint}; it has "
                       f"{', '.join(steps) or 'none'}")
    if run.last_checkpoint() is not None:
        hint = f"resume it with `workbench train --resume {run.path}`"
    else:
        hint = "it has no checkpoint either, so train it again"
    raise RunError(f"{run.path} has no adapter (status: {run.status()}); {hint}")
