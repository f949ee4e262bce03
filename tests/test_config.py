"""The config is strict: every problem is reported at once and names its key."""

import pytest

from workbench.config import (RunConfig, apply_overrides, example_yaml, load_config,
                              reference_markdown)
from workbench.errors import ConfigError

VALID = {"data": {"path": "x.jsonl"}}

BAD_VALUES = [
    # (section, key, value, words the message must contain)
    ("lora", "r", 0, ">= 1"),
    ("lora", "r", "sixteen", "an integer"),
    ("lora", "dropout", 1.5, "< 1"),
    ("lora", "target_modules", 7, "a list of strings"),
    ("model", "backend", "tpu", "auto, hf, unsloth"),
    ("model", "dtype", "int8", "float32"),
    ("model", "load_in_4bit", "yes", "true or false"),
    ("data", "format", "sharegpt", "messages"),
    ("data", "eval_fraction", 0.9, "<= 0.5"),
    ("data", "max_length", 4, ">= 16"),
    ("data", "train_on", "prompts", "responses, all"),
    ("train", "learning_rate", -1, "> 0"),
    ("train", "learning_rate", "fast", "a number"),
    ("train", "max_steps", 0, ">= 1"),
    ("train", "batch_size", 2.5, "an integer"),
    ("train", "scheduler", "step", "cosine"),
    ("train", "gradient_checkpointing", 1, "true or false"),
    ("sample", "temperature", 9, "<= 5"),
    ("sample", "prompts", "hello", "a list of strings"),
    ("output", "name", "../escape", "no `/`"),
    ("output", "name", "/abs/path", "no `/`"),
]


@pytest.mark.parametrize("section,key,value,words", BAD_VALUES)
def test_each_bad_value_is_named_with_what_is_allowed(section, key, value, words):
    raw = {"data": {"path": "x.jsonl"}}
    raw.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict(raw)
    message = str(caught.value)
    assert f"{section}.{key}: got {value!r}" in message
    assert words in message


def test_all_problems_are_reported_at_once():
    raw = {"modle": {}, "lora": {"r": 0, "alpha": -1}, "train": {"lerning_rate": 1e-3},
           "data": {}}
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict(raw)
    problems = caught.value.problems
    assert len(problems) == 5, problems
    text = str(caught.value)
    for fragment in ("modle: unknown section", "train.lerning_rate: unknown key (did you mean "
                     "learning_rate?)", "lora.r: got 0", "lora.alpha: got -1", "data.path: required"):
        assert fragment in text


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="both set"):
        RunConfig.from_dict({"data": {"path": "a.jsonl", "train_path": "b.jsonl"}})
    with pytest.raises(ConfigError, match="sample.prompts is empty"):
        RunConfig.from_dict({**VALID, "sample": {"every": 5}})
    with pytest.raises(ConfigError, match="packing and data.group_by_length are both true"):
        RunConfig.from_dict({"data": {"path": "x.jsonl", "packing": True,
                                      "group_by_length": True}})


def test_yaml_round_trip_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  path: x.jsonl\ntrain:\n  learning_rate: 2e-4\n")
    config = load_config(path, ["train.max_steps=7", "lora.target_modules=[q_proj, v_proj]",
                                "sample.prompts=[hi]"])
    assert config.train.learning_rate == pytest.approx(2e-4)  # YAML's "2e-4" string forgiven
    assert config.train.max_steps == 7
    assert config.lora.target_modules == ["q_proj", "v_proj"]
    assert RunConfig.from_dict(config.to_dict()) == config


def test_overrides_fill_an_empty_section_and_leave_the_input_alone(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  path: x.jsonl\ntrain:\n")  # `train:` alone parses as None
    assert load_config(path, ["train.max_steps=3"]).train.max_steps == 3
    raw = {"data": {"path": "x.jsonl"}}
    assert apply_overrides(raw, ["data.max_length=64"])["data"]["max_length"] == 64
    assert raw == {"data": {"path": "x.jsonl"}}


def test_bad_override_and_bad_yaml_are_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  path: x.jsonl\n")
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(path, ["max_steps=3"])
    with pytest.raises(ConfigError, match="train.max_steps: got 'many'"):
        load_config(path, ["train.max_steps=many"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("data:\n  path: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_example_config_is_valid(tmp_path):
    path = tmp_path / "example.yaml"
    path.write_text(example_yaml())
    assert load_config(path).data.path == "my-data.jsonl"


def test_readme_config_reference_is_generated_from_the_fields():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert reference_markdown() in readme, (
        "README's config reference is stale; regenerate it with "
        "python -c 'from workbench.config import reference_markdown; print(reference_markdown())'")


def test_a_field_name_shared_by_two_sections_keeps_each_sections_type():
    """sample.every is an integer; eval.every may be null (with the held-out loss)."""
    RunConfig.from_dict({"data": {"path": "x.jsonl"}, "eval": {"every": None}}).validate()
    with pytest.raises(ConfigError, match="sample.every: got None; must be an integer"):
        RunConfig.from_dict({"data": {"path": "x.jsonl"}, "sample": {"every": None}}).validate()
