"""The model families people fine-tune, as tiny random models built from each family's
config (no download; the 400-token tokenizer of small_vocab.py): LoRA finds the family's
linear layers, the loss falls, the merged model gives the adapter model's logits, and a
GGUF is written and read back where the exporter writes the family, or refused with a
message naming the architecture and what to do instead. llama.cpp (the [verify] extra)
loads each GGUF and must give the merged model's greedy answers.

FAMILIES drives the tests and the README's family table, so the table says what these
tests cover: `python -c "import sys; sys.path[:0] = ['tests']; from test_families import
family_table; print(family_table())"` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from conftest import ORDERS, REPO, in_ci, tiny_config

ATTENTION = {"q_proj", "k_proj", "v_proj", "o_proj"}
MLP = {"gate_proj", "up_proj", "down_proj"}


@dataclass(frozen=True)
class Family:
    name: str  # as the README's table names it
    config_class: str  # the transformers config class of the family
    targets: set  # what lora.target_modules all-linear must find
    gguf: str | None  # the GGUF architecture written, or None: refused
    settings: dict = field(default_factory=dict)


FAMILIES = (
    Family("Llama (Llama 3, SmolLM2)", "LlamaConfig", ATTENTION | MLP, "llama"),
    Family("Mistral (no sliding window)", "MistralConfig", ATTENTION | MLP, "llama",
           {"sliding_window": None}),
    Family("Qwen2, Qwen2.5", "Qwen2Config", ATTENTION | MLP, "qwen2"),
    # head_dim 128 as in every Qwen3 (more than hidden / heads); transformers' GGUF reader
    # assumes 128, not reading attention.key_length
    Family("Qwen3", "Qwen3Config", ATTENTION | MLP, "qwen3", {"head_dim": 128}),
    Family("Gemma 2", "Gemma2Config", ATTENTION | MLP, None,
           {"head_dim": 16, "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0}),
    Family("Gemma 3", "Gemma3TextConfig", ATTENTION | MLP, None, {"head_dim": 16}),
    Family("Phi-3", "Phi3Config", {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"},
           "phi3"),
)


def family_table() -> str:
    """The README's table: what the tests below check for each family."""
    lines = ["| family | transformers config | train | merge | GGUF | Ollama |",
             "|---|---|---|---|---|---|"]
    for family in FAMILIES:
        gguf = f"tested (as `{family.gguf}`; read by transformers and llama.cpp)" \
            if family.gguf else "refused: export `--format hf`, convert with llama.cpp"
        ollama = "tested" if family.gguf else "refused (needs the GGUF)"
        lines.append(f"| {family.name} | `{family.config_class}` | tested | tested | {gguf} "
                     f"| {ollama} |")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("family-data") / "orders.jsonl"
    path.write_text("\n".join(ORDERS.read_text(encoding="utf-8").splitlines()[:32]) + "\n")
    return path


def build(family: Family, folder) -> str:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    from small_vocab import small_tokenizer

    tokenizer = small_tokenizer()
    config = getattr(transformers, family.config_class)(**{
        "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 256, "tie_word_embeddings": True,
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id, **family.settings})
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.config_class)
def test_a_family_trains_merges_and_exports_or_is_refused_by_name(family, data, tmp_path):
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench import load_run
    from workbench.engine.run import Run
    from workbench.errors import ExportError
    from workbench.export.exporter import export_run
    from workbench.export.gguf import read_metadata
    from workbench.export.llamacpp import available as llama_cpp_available
    from workbench.export.verify import EXACT_TOKENS, Reference, verify_gguf

    model_dir = build(family, tmp_path / "model")
    config = tiny_config(model_dir, data, tmp_path / "runs",
                         data={"eval_fraction": 0, "max_length": 128},
                         train={"max_steps": 8, "learning_rate": 1e-2, "save_every": 0},
                         eval={"general_text": None})
    result = Run(config).execute()
    assert result.status == "finished", result.summary.get("error")
    run_dir = result.run_dir
    losses = [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text()
              .splitlines() if '"loss"' in line]
    assert losses[-1] < losses[0] - 0.05, losses  # it learns
    adapter = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    # PEFT writes what all-linear found as full module paths: their leaf names
    assert {name.rsplit(".", 1)[-1] for name in adapter["target_modules"]} == family.targets

    ids = torch.tensor([list(range(3, 40))])
    with torch.no_grad():
        tuned = load_run(run_dir).model.eval()(input_ids=ids).logits
    assert export_run(run_dir, "hf", out=tmp_path / "hf").check.ok
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    with torch.no_grad():
        assert (merged(input_ids=ids).logits - tuned).abs().max() < 1e-4

    if family.gguf is None:
        model_type = merged.config.model_type
        with pytest.raises(ExportError, match=f"does not support {model_type!r} models yet.*"
                           "Export the merged Hugging Face folder \\(--format hf\\) and convert "
                           "it with llama.cpp's convert_hf_to_gguf.py"):
            export_run(run_dir, "gguf", "f32", out=tmp_path / "model.gguf")
        assert not (tmp_path / "model.gguf").exists()
        return
    path = tmp_path / "gguf" / "model.gguf"
    assert export_run(run_dir, "gguf", "f32", out=path).check.ok
    assert read_metadata(path)["general.architecture"] == family.gguf
    if family.gguf == "qwen2":  # transformers gives Qwen models Qwen's own split regex (+NFC)
        assert read_metadata(path)["tokenizer.ggml.pre"] == "qwen2"
    read_back = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                     dtype=torch.float32).eval()
    with torch.no_grad():
        assert (read_back(input_ids=ids).logits - tuned).abs().max() < 1e-4
    if llama_cpp_available() or in_ci():  # and llama.cpp answers as the merged model does
        verdict = verify_gguf(path, Reference.of(merged, AutoTokenizer.from_pretrained(
            tmp_path / "hf"), max_new_tokens=EXACT_TOKENS))
        print(f"\n{verdict.summary()}")
        assert verdict.ok and verdict.drift["max"] < 5e-3
        assert all(row["equal"] == row["compared"] for row in verdict.generation)
    assert export_run(run_dir, "ollama", "f16", out=tmp_path / "ollama").check.ok
    assert 'PARAMETER stop "<|im_end|>"' in (tmp_path / "ollama" / "Modelfile").read_text()


def test_the_readme_family_table_is_what_these_tests_cover():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert family_table() in readme, (
        "README's family table is out of date; regenerate it with\n" + __doc__.split("`")[1])
