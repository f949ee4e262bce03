"""The one strict run configuration.

Every field has a type, a default, help text and bounds, declared once with
`setting(...)`. That metadata drives validation, the README reference table, the
CLI `--set section.key=value` overrides and flags, the widget form and the notebooks'
papermill parameters, so they cannot drift apart. Unknown keys are errors.
`validate()` reports every problem at once, each a `Problem` naming the key, the value
given and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError, Problem
from workbench.secrets import looks_like_token

RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RUN_NAME_RULE = ("1-64 letters, digits, `.`, `_` or `-`, starting with a letter or digit "
                 "(no `/` or `..`)")
# (metadata key, symbol, test): the bounds a field can declare, in the order they are checked
BOUNDS = (("ge", ">=", lambda v, b: v >= b), ("gt", ">", lambda v, b: v > b),
          ("le", "<=", lambda v, b: v <= b), ("lt", "<", lambda v, b: v < b))


def setting(default: Any, help: str, *, choices: tuple | None = None, ge=None, gt=None,
            le=None, lt=None, pattern: str | None = None, pattern_rule: str = "") -> Any:
    """A config field with its documentation and bounds. `pattern_rule` says in words what
    `pattern` (a regular expression the whole value must match) allows."""
    meta = {"help": help, "choices": choices, "ge": ge, "gt": gt, "le": le, "lt": lt,
            "pattern": pattern, "pattern_rule": pattern_rule}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelSettings:
    name: str = setting(
        "demo",
        "The base model: `demo` (SmolLM2-135M-Instruct, bundled), a local Hugging Face "
        "folder, a `.gguf` file, or a hub id such as `HuggingFaceTB/SmolLM2-360M-Instruct`.")
    backend: str = setting(
        "auto", "Training backend: `auto` (Unsloth on a CUDA GPU when installed, else `hf`), "
        "`hf` (transformers + PEFT) or `unsloth`.", choices=("auto", "hf", "unsloth"))
    dtype: str = setting(
        "auto", "Weight dtype: `auto` is float32 on CPU, bfloat16 on GPUs of compute "
        "capability 8.0 or newer (Ampere on), else float16.",
        choices=("auto", "float32", "bfloat16", "float16"))
    load_in_4bit: bool = setting(False, "QLoRA: load the frozen base in 4 bits (CUDA GPU only).")
    trust_remote_code: bool = setting(
        False, "Run Python code shipped with a hub model. Off unless you trust its author.")
    allow_pickle: bool = setting(
        False, "Also load `.bin` / `.pt` weights, a Python pickle format that can run code "
        "when loaded. Off: safetensors only. Turn on only for files you trust.")


@dataclass
class LoraSettings:
    r: int = setting(16, "LoRA rank: size of the low-rank update.", ge=1, le=1024)
    alpha: float = setting(32.0, "LoRA alpha: the update is scaled by alpha / r "
                           "(alpha / sqrt(r) with rslora).", gt=0, le=100000)
    dropout: float = setting(0.0, "Dropout on the LoRA input during training.", ge=0, lt=1)
    target_modules: str | list[str] = setting(
        "all-linear", "Layers that get adapters: `all-linear` or a list of module names "
        "such as `[q_proj, v_proj]`.")
    use_rslora: bool = setting(False, "Rank-stabilised LoRA scaling (alpha / sqrt(r)).")
    start_from: str | None = setting(
        None, "Stack on an earlier fine-tune: a run folder or an adapter folder trained on the "
        "same base model (null: start a fresh adapter).")
    start_mode: str = setting(
        "continue", "With `start_from`: `continue` keeps training that adapter (its rank and "
        "target modules win over the values above); `merge` folds it into the base weights "
        "and trains a new adapter on top.", choices=("continue", "merge"))


@dataclass
class DataSettings:
    path: str | None = setting(
        None, "Dataset file or folder (JSONL, JSON, CSV, Parquet, or a saved `datasets` "
        "folder). Use this or `train_path`.")
    train_path: str | None = setting(None, "Training data; pair it with `eval_path` to keep the "
                                       "held-out data in its own file.")
    eval_path: str | None = setting(None, "Held-out data; when set, `eval_fraction` is ignored.")
    format: str = setting(
        "auto", "Row format: `messages` (chat turns), `alpaca` (instruction/input/output), "
        "`prompt_completion`, `text`; for train.method dpo or kto `preference` (prompt, "
        "chosen, rejected), `unpaired` (prompt, completion, label) or `ratings` (a Rate tab's "
        "ratings.jsonl); or `auto` to detect it from the keys.",
        choices=("auto", "messages", "alpaca", "prompt_completion", "text", "preference",
                 "unpaired", "ratings"))
    eval_fraction: float = setting(0.1, "Share of the training data held out for evaluation when no `eval_path` is "
                                   "given (0 for none).",
                                   ge=0, le=0.5)
    max_length: int = setting(512, "Tokens per example; longer examples are cut at the end "
                              "and counted in the run summary.", ge=16, le=131072)
    train_on: str = setting(
        "responses", "`responses` trains only on assistant tokens; `all` on every token.",
        choices=("responses", "all"))
    system_prompt: str | None = setting(
        None, "System message added to chat examples that have none.")
    packing: bool = setting(
        False, "Pack several examples into each row of up to `max_length` tokens; a block "
        "mask keeps them from seeing each other. Saves padding when lengths vary.")
    group_by_length: bool = setting(
        False, "Batch examples of similar length together to cut padding (less random "
        "order within an epoch).")


METHODS = ("sft", "dpo", "kto", "grpo")
PREFERENCE_METHODS = ("dpo", "kto")


@dataclass
class TrainSettings:
    method: str = setting(
        "sft", "What to learn from: `sft` (answers to imitate), `dpo` (pairs of a better and a "
        "worse answer) or `kto` (answers marked good or bad), set up in the `preference` "
        "section; or `grpo` (rewards for sampled answers, the `grpo` section).",
        choices=METHODS)
    learning_rate: float = setting(2e-4, "Peak learning rate.", gt=0, le=1)
    epochs: float = setting(1.0, "Passes over the training data (ignored when `max_steps` "
                            "is set).", gt=0, le=10000)
    max_steps: int | None = setting(None, "Optimizer steps to run; overrides `epochs`.", ge=1)
    batch_size: int = setting(4, "Examples per forward pass.", ge=1, le=4096)
    grad_accum: int = setting(1, "Forward passes per optimizer step (effective batch = "
                              "batch_size x grad_accum).", ge=1, le=1024)
    warmup_steps: int = setting(0, "Steps of linear learning-rate warm-up.", ge=0)
    scheduler: str = setting("linear", "Learning-rate schedule after warm-up.",
                             choices=("linear", "cosine", "constant", "constant_with_warmup"))
    weight_decay: float = setting(0.0, "AdamW weight decay.", ge=0, le=1)
    max_grad_norm: float = setting(1.0, "Gradient clipping norm (0 turns clipping off).", ge=0)
    seed: int = setting(42, "Random seed for LoRA init, data order and the eval split.", ge=0)
    gradient_checkpointing: bool = setting(
        False, "Recompute activations in the backward pass: less memory, about 20% slower.")
    log_every: int = setting(5, "Log loss and speed every N optimizer steps.", ge=1)
    eval_every: int = setting(0, "Evaluate held-out loss every N steps (0: only at the end).",
                              ge=0)
    save_every: int = setting(100, "Save a resumable checkpoint every N steps (0: never; the "
                              "final adapter is always saved).", ge=0)
    keep_checkpoints: int = setting(2, "How many recent checkpoints to keep.", ge=1)


@dataclass
class SampleSettings:
    prompts: list[str] = setting([], "Prompts answered by the model while it trains.")
    every: int = setting(0, "Generate samples every N steps (0: only before and after "
                         "training).", ge=0)
    max_new_tokens: int = setting(64, "Longest sample answer, in tokens.", ge=1, le=4096)
    temperature: float = setting(0.0, "Sampling temperature (0: greedy, reproducible).",
                                 ge=0, le=5)


@dataclass
class PreferenceSettings:
    beta: float = setting(0.1, "How far the tuned model may move from the reference (the "
                          "model before this run): larger keeps it closer.", gt=0, le=100)
    loss: str = setting("sigmoid", "DPO loss: `sigmoid` (the DPO paper's) or `ipo` (squared, "
                        "per-token average; less prone to overfitting small data).",
                        choices=("sigmoid", "ipo"))
    sft_weight: float = setting(
        0.0, "DPO: add this much of the chosen answers' own (SFT) loss, which keeps what the "
        "model knows while it learns the preference (RPO); 0: pure DPO.", ge=0, le=100)
    desirable_weight: float = setting(1.0, "KTO: weight of the answers marked good.", gt=0,
                                      le=100)
    undesirable_weight: float = setting(1.0, "KTO: weight of the answers marked bad.", gt=0,
                                        le=100)
    max_prompt_length: int | None = setting(
        None, "Tokens of prompt kept (its end, nearest the answer); null: only data.max_length "
        "applies.", ge=1, le=131072)


@dataclass
class GrpoSettings:
    rewards: list[str] = setting(
        [], "Reward functions, each `name` or `name=weight`: a scorer (`json_valid`, "
        "`json_equal`, `exact`, `contains`, `regex:PATTERN`, `max_words:N`: the reference is "
        "the row's `answer`) or `module:function` with TRL's signature "
        "f(prompts, completions, **columns) -> list of numbers (None: no score).")
    num_generations: int = setting(4, "Answers sampled per prompt at each step; each is "
                                   "rewarded against its group's mean.", ge=2, le=64)
    max_completion_length: int = setting(64, "Longest sampled answer, in tokens.", ge=1,
                                         le=4096)
    temperature: float = setting(1.0, "Sampling temperature of the answers (they must "
                                 "differ for their rewards to differ).", gt=0, le=5)
    beta: float = setting(0.0, "KL penalty towards the model with the adapter off (0: none, "
                          "and no reference pass).", ge=0, le=10)
    loss: str = setting("grpo", "`grpo`: each answer's tokens averaged, then the answers; "
                        "`bnpo`: all tokens of the batch averaged; `dr_grpo`: summed over "
                        "max_completion_length per answer.", choices=("grpo", "bnpo", "dr_grpo"))


@dataclass
class EvalSettings:
    scorers: list[str] = setting(
        [], "Task scores of held-out answers, logged as `score/<name>` at the start (adapter "
        "off), every `eval.every` steps and at the end: `exact`, `json_equal`, `json_valid`, "
        "`contains`, `regex:PATTERN`, `max_words:N`, or `module:function` of your own.")
    data: str | None = setting(
        None, "Examples to score (any dataset format with answers); null: the held-out split.")
    every: int | None = setting(
        None, "Score every N steps; null: with the held-out loss (train.eval_every); 0: only "
        "at the start and the end (answering is the slow part: on a CPU a scoring takes as "
        "long as several training steps).", ge=0)
    max_examples: int = setting(32, "Prompts answered per evaluation, at most (greedy, "
                                "batched).", ge=1, le=100000)
    max_new_tokens: int | None = setting(
        None, "Longest scored answer, in tokens; null: the longest reference plus 16.",
        ge=1, le=4096)
    general_text: str | None = setting(
        "builtin", "Forgetting check: loss on general text with the adapter off and on, "
        "charted as its relative change; `builtin` (30 paragraphs shipped with workbench), "
        "a file of `{text}` rows, or null to skip it.")


STRATEGIES = ("ddp", "fsdp", "deepspeed")


@dataclass
class DistributedSettings:
    nproc: int = setting(
        1, "Processes per machine, one per GPU (on a CPU they share its cores, over gloo). "
        "Above 1, `workbench train` starts the run under `accelerate launch`; the batch of "
        "one optimizer step is then train.batch_size x grad_accum x nproc x nnodes.",
        ge=1, le=1024)
    nnodes: int = setting(1, "Machines the run spans; each starts the same `workbench train` "
                          "with --node-rank and --main-address (README: on a cluster).",
                          ge=1, le=4096)
    strategy: str = setting(
        "ddp", "`ddp`: every process holds the whole model (LoRA fits); `fsdp`: FSDP2 shards "
        "the model over the GPUs, for a base model too big for one; `deepspeed`: ZeRO, "
        "from distributed.config_file.", choices=STRATEGIES)
    config_file: str | None = setting(
        None, "An accelerate config file (ddp, fsdp) or a DeepSpeed JSON (deepspeed), "
        "passed through to `accelerate launch`.")


@dataclass
class OutputSettings:
    runs_dir: str = setting("runs", "Folder that holds one sub-folder per run.")
    name: str = setting("run", "Run name; the folder is `<name>-<timestamp>`. Letters, digits, "
                        "`.`, `_` and `-` only.", pattern=RUN_NAME_PATTERN.pattern,
                        pattern_rule=RUN_NAME_RULE)


SECTIONS: dict[str, type] = {
    "model": ModelSettings, "lora": LoraSettings, "data": DataSettings,
    "train": TrainSettings, "preference": PreferenceSettings, "grpo": GrpoSettings,
    "sample": SampleSettings,
    "eval": EvalSettings, "output": OutputSettings, "distributed": DistributedSettings,
}


@dataclass
class RunConfig:
    """A whole run: build it in Python, or load it with `load_config` / `from_dict`."""

    model: ModelSettings = field(default_factory=ModelSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    data: DataSettings = field(default_factory=DataSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    preference: PreferenceSettings = field(default_factory=PreferenceSettings)
    grpo: GrpoSettings = field(default_factory=GrpoSettings)
    sample: SampleSettings = field(default_factory=SampleSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    distributed: DistributedSettings = field(default_factory=DistributedSettings)

    @classmethod
    def from_dict(cls, raw: Any) -> "RunConfig":
        """Build and validate a config from plain data; raises ConfigError listing every problem."""
        problems: list[Problem] = []
        if not isinstance(raw, dict):
            raise ConfigError([f"the config must be a mapping of sections, got "
                               f"{type(raw).__name__}; start from `workbench validate --example`"])
        sections = {}
        for name, values in raw.items():
            if name not in SECTIONS:
                problems.append(Problem(f"unknown section; allowed: {', '.join(SECTIONS)}",
                                        key=str(name)))
                continue
            if values is None:
                values = {}
            if not isinstance(values, dict):
                problems.append(Problem(f"must be a mapping of keys, got {values!r}", key=name))
                continue
            sections[name] = _build_section(name, SECTIONS[name], values, problems)
        config = cls(**sections)
        problems.extend(config.problems())
        if problems:
            raise ConfigError(problems)
        return config

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def problems(self) -> list[Problem]:
        """Every problem with this config, each naming its key, the value and what is allowed."""
        problems = []
        for name, section in self._sections():
            for f in dataclasses.fields(section):
                message = check_value(f, getattr(section, f.name))
                if message:
                    problems.append(Problem(message, key=f"{name}.{f.name}"))
        problems.extend(self._cross_field_problems())
        return problems

    def validate(self) -> "RunConfig":
        """Raise ConfigError if anything is wrong; return self so calls can chain."""
        problems = self.problems()
        if problems:
            raise ConfigError(problems)
        return self

    def with_overrides(self, assignments: list[str]) -> "RunConfig":
        """A copy with `section.key=value` assignments applied (values parsed as YAML)."""
        return RunConfig.from_dict(apply_overrides(self.to_dict(), assignments))

    def _sections(self):
        return [(name, getattr(self, name)) for name in SECTIONS]

    def _cross_field_problems(self) -> list[Problem]:
        """Rules between fields; each problem is shown beside the first field it names."""
        data, lora = self.data, self.lora
        rules = [
            ("data.path", data.path and data.train_path,
             f"data.path and data.train_path are both set ({data.path!r}, "
             f"{data.train_path!r}); use one of them"),
            ("data.path", not data.path and not data.train_path,
             "required; give a dataset file, e.g. `--set data.path=examples.jsonl`"),
            ("data.packing", data.packing and self.model.backend == "unsloth",
             "data.packing is not supported with model.backend unsloth: Unsloth ignores the "
             "attention mask while training, so packed examples would see each other; use "
             "data.group_by_length instead, or backend hf"),
            ("data.packing", data.packing and data.group_by_length,
             "data.packing and data.group_by_length are both true; packing already removes "
             "padding, so set group_by_length: false"),
            ("sample.every", self.sample.every and not self.sample.prompts,
             f"sample.every is {self.sample.every} but sample.prompts is empty; add prompts "
             "or set sample.every=0"),
            ("lora.start_from", lora.start_from and self.model.backend == "unsloth",
             "lora.start_from is not supported with model.backend unsloth: it trains new "
             "adapters on a plain base model; use backend hf (or auto)"),
            ("lora.start_mode", lora.start_mode != "continue" and not lora.start_from,
             f"lora.start_mode is {lora.start_mode} but lora.start_from is empty; give the run "
             "folder to stack on, or remove start_mode"),
            ("eval.scorers", self.eval.scorers and not self.eval.data and not data.eval_path
             and data.eval_fraction == 0,
             "eval.scorers need examples to answer, but data.eval_fraction is 0 and neither "
             "data.eval_path nor eval.data is set; hold some data out or point eval.data at "
             "a file"),
            ("train.method", self.train.method in PREFERENCE_METHODS and data.packing,
             f"train.method {self.train.method} trains on whole answers, which packing would "
             "cut apart; set data.packing: false"),
            ("train.method", self.train.method in PREFERENCE_METHODS and data.group_by_length,
             f"train.method {self.train.method} batches pairs of answers, which "
             "data.group_by_length cannot sort; set it to false"),
            ("train.batch_size", self.train.method == "grpo"
             and self.train.batch_size % self.grpo.num_generations != 0,
             f"train.batch_size {self.train.batch_size} is not a multiple of "
             f"grpo.num_generations {self.grpo.num_generations}: with train.method grpo a "
             "forward pass holds whole groups of answers to the same prompt; use "
             f"{self.grpo.num_generations * max(1, self.train.batch_size // self.grpo.num_generations)}"
             f" or {self.grpo.num_generations * (self.train.batch_size // self.grpo.num_generations + 1)}"),
            ("grpo.rewards", self.train.method == "grpo" and not self.grpo.rewards,
             "train.method grpo needs at least one reward function, e.g. grpo.rewards: "
             "[json_valid]"),
            ("train.method", self.train.method == "grpo" and data.packing,
             "train.method grpo samples its own answers, so there is nothing to pack; set "
             "data.packing: false"),
            ("distributed.config_file", self.distributed.strategy == "deepspeed"
             and not self.distributed.config_file,
             "distributed.strategy deepspeed needs a DeepSpeed JSON here (its ZeRO stage and "
             "offload settings), e.g. distributed.config_file: ds_zero2.json"),
            ("lora.target_modules",
             isinstance(lora.target_modules, list) and not lora.target_modules,
             "the list is empty; use `all-linear` or name modules such as [q_proj, v_proj]"),
        ]
        return [Problem(message, key=key) for key, broken, message in rules if broken]


def _build_section(name: str, cls: type, values: dict, problems: list[Problem]):
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=2, cutoff=0.75)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            problems.append(Problem(f"unknown key{hint}; allowed: {', '.join(known)}",
                                    key=f"{name}.{key}"))
            continue
        kwargs[key] = _coerce(known[key], value)
    return cls(**kwargs)


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    """Forgive YAML's one trap: `2e-4` without a dot loads as a string."""
    hint = field_types(f)
    if float in hint and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if float in hint and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def field_types(f: dataclasses.Field) -> tuple:
    """The types a field accepts, e.g. (int, NoneType) for `int | None`."""
    return _flatten(_resolve(f.type) if isinstance(f.type, str) else f.type)


@functools.cache
def _resolve(annotation: str):
    """A postponed annotation ("int | None") as the type it names. Resolved per field, not
    by name: two sections may share a field name with different types (sample.every is an
    integer, eval.every may be null). The text is this module's own source."""
    return eval(annotation, globals())  # noqa: S307


def config_field(key: str) -> dataclasses.Field:
    """The field behind `section.name`, with its metadata (help, choices, bounds)."""
    section, _, name = key.partition(".")
    for f in dataclasses.fields(SECTIONS[section]):
        if f.name == name:
            return f
    raise KeyError(key)


def choices(key: str) -> tuple:
    """The values a choice field allows: `choices("data.format")`."""
    return config_field(key).metadata["choices"]


def default(key: str):
    """A field's default value: `default("data.max_length")` is 512."""
    return _default(config_field(key))


def _default(f: dataclasses.Field):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _flatten(annotation) -> tuple:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        result = ()
        for arg in typing.get_args(annotation):
            result += _flatten(arg)
        return result
    if annotation is None or annotation is type(None):
        return (type(None),)
    return (annotation,)


def _matches(value: Any, kind) -> bool:
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if typing.get_origin(kind) is list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return False


def _describe(kind) -> str:
    names = {type(None): "null", bool: "true or false", int: "an integer", float: "a number",
             str: "a string"}
    if typing.get_origin(kind) is list:
        return "a list of strings"
    return names.get(kind, str(kind))


def check_value(f: dataclasses.Field, value: Any) -> str | None:
    """The problem with one field's value, or None when it is allowed."""
    kinds = field_types(f)
    if not any(_matches(value, k) for k in kinds):
        return f"got {value!r}; must be {' or '.join(_describe(k) for k in kinds)}"
    meta = f.metadata
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(text, str) and looks_like_token(text) for text in texts):
        return ("holds what looks like an access token; a config is copied into every run "
                "folder, so keep tokens out of it: set HF_TOKEN in the environment or run "
                "`hf auth login`")
    if value is None or isinstance(value, (bool, list)):
        return None
    if meta.get("choices") and value not in meta["choices"]:
        return f"got {value!r}; must be one of {', '.join(meta['choices'])}"
    for bound, symbol, test in BOUNDS:
        limit = meta.get(bound)
        if limit is not None and isinstance(value, (int, float)) and not test(value, limit):
            return f"got {value!r}; must be {symbol} {limit}"
    if meta.get("pattern") and isinstance(value, str) and not re.match(meta["pattern"], value):
        return f"got {value!r}; use {meta['pattern_rule'] or 'a value matching ' + meta['pattern']}"
    return None


def apply_overrides(raw: dict, assignments: list[str]) -> dict:
    """Apply `section.key=value` strings to a config dict; values are parsed as YAML."""
    import yaml

    problems = []
    result = copy.deepcopy(raw)
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            problems.append(f"--set {assignment!r}: write it as section.key=value, "
                            "e.g. train.max_steps=50")
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        if result.get(parts[0]) is None:  # `train:` with nothing under it reads as None
            result[parts[0]] = {}
        section = result[parts[0]]
        if isinstance(section, dict):
            section[parts[1]] = value
        else:
            problems.append(f"--set {assignment!r}: {parts[0]} is not a section")
    if problems:
        raise ConfigError(problems)
    return result


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML or JSON config file, apply overrides, validate, and return it."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"config file {str(path)!r} not found; create one with "
                           "`workbench validate --example > config.yaml`"])
    text = path.read_text(encoding="utf-8-sig")
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}:"
                           f" {exc}"]) from None
    raw = {} if raw is None else raw
    if overrides:
        if not isinstance(raw, dict):
            raise ConfigError([f"{path}: the top level must be a mapping of sections"])
        raw = apply_overrides(raw, overrides)
    return RunConfig.from_dict(raw)


def config_to_yaml(config: RunConfig, header: str = "") -> str:
    import yaml

    body = yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True)
    return header + body


def example_yaml() -> str:
    """A commented starter config with every field at its default."""
    import yaml

    lines = ["# workbench run config: every key, at its default. Docs: README.md#config"]
    for name, cls in SECTIONS.items():
        lines.append(f"{name}:")
        for f in dataclasses.fields(cls):
            value = "my-data.jsonl" if f"{name}.{f.name}" == "data.path" else _default(f)
            value = yaml.safe_dump(value, default_flow_style=True).strip()
            value = value.removesuffix("\n...").removesuffix("...").strip()
            lines.append(f"  {f.name}: {value}  # {_plain(f.metadata['help'])}")
    return "\n".join(lines) + "\n"


def _plain(text: str) -> str:
    return text.replace("`", "")


def reference_markdown() -> str:
    """The README's config table, generated from the fields themselves."""
    out = []
    for name, cls in SECTIONS.items():
        out.append(f"**`{name}`**\n")
        out.append("| key | default | allowed | meaning |")
        out.append("|---|---|---|---|")
        for f in dataclasses.fields(cls):
            out.append(f"| `{f.name}` | `{json.dumps(_default(f))}` | {_allowed(f)} | "
                       f"{f.metadata['help']} |")
        out.append("")
    return "\n".join(out)


def _allowed(f: dataclasses.Field) -> str:
    meta = f.metadata
    if meta.get("choices"):
        return ", ".join(f"`{c}`" for c in meta["choices"])
    parts = [_describe(k) for k in field_types(f)]
    bounds = [f"{symbol} {meta[key]}" for key, symbol, _ in BOUNDS if meta.get(key) is not None]
    return " or ".join(parts) + (f" ({', '.join(bounds)})" if bounds else "")
