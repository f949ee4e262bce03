"""llama.cpp itself judges GGUF exports (workbench/export/verify.py): it must split prompts
into the training ids, render the chat template alike, answer the merged model's greedy
tokens and stop on the end-of-turn token. Tiny models over the 400-token vocabulary here;
the demo model's files are judged in tests/test_export.py (slow)."""

import copy
import json
import re

import pytest

from conftest import require
from workbench.errors import ExportError


@pytest.fixture(scope="module", autouse=True)
def llama_cpp_installed():
    from workbench.export.llamacpp import available

    require([] if available() else ['llama.cpp (pip install -e ".[verify]")'],
            "the llama.cpp checks")


def merged_small(tokenizer):
    import torch
    from peft import LoraConfig, get_peft_model

    from small_vocab import small_model

    torch.manual_seed(0)
    return get_peft_model(small_model(tokenizer), LoraConfig(
        r=4, target_modules="all-linear", init_lora_weights=False)).merge_and_unload().eval()


@pytest.fixture(scope="module")
def small():
    from small_vocab import small_tokenizer
    from workbench.export.verify import Reference

    tokenizer = small_tokenizer()
    model = merged_small(tokenizer)
    return model, tokenizer, Reference.of(model, tokenizer)


def digit_splitting(tokenizer):
    """The same vocabulary, splitting digits one by one before GPT-2's regex: a
    pre-tokenizer llama.cpp has no name for, so the file says `default`."""
    from tokenizers import pre_tokenizers

    changed = copy.deepcopy(tokenizer)
    changed.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    return changed


# (max |logit diff|, mean) over 149 positions measured 2026-12-02: f32 5.8e-4 / 4.3e-5,
# f16 1.2e-3 / 1.9e-4, q8_0 0.026 / 0.0026, q4_k_m 0.14 / 0.015, q5_k_m 0.22 / 0.027,
# q4_0 0.16 / 0.023 (logits of this random model spread by about 0.1).
@pytest.mark.parametrize("quant, max_drift, main_type", [
    ("f32", 5e-3, "F32"), ("f16", 1e-2, "F16"), ("q8_0", 0.1, "Q8_0"),
    ("q5_k_m", 0.6, "Q5_1"), ("q4_k_m", 0.6, "Q5_0"), ("q4_0", 0.6, "Q4_0")])
def test_llama_cpp_reads_each_weight_type_as_the_merged_model(small, tmp_path, quant,
                                                              max_drift, main_type):
    from workbench.export.gguf import read_tensor_types, write_gguf
    from workbench.export.verify import EXACT_TOKENS, verify_gguf

    model, tokenizer, reference = small
    path = tmp_path / f"small-{quant}.gguf"
    summary = write_gguf(model, tokenizer, path, quant)
    verdict = verify_gguf(path, reference)
    assert verdict.ok, verdict.summary()
    assert verdict.drift["max"] < max_drift and verdict.drift["positions"] == 149
    assert main_type in read_tensor_types(path).values()
    if quant in ("f32", "f16"):  # the same greedy answer, token for token
        assert [row["equal"] for row in verdict.generation] == [EXACT_TOKENS, EXACT_TOKENS]
    if quant.endswith("_k_m"):  # 64-wide rows cannot hold 256-value k-quant blocks
        assert "falls back" in summary["notes"][-1]
    print(f"\n{verdict.summary()}")


@pytest.mark.parametrize("quant, k_type", [("q4_k_m", "Q4_K"), ("q5_k_m", "Q5_K")])
def test_rows_of_256_get_real_k_quants(tmp_path, quant, k_type):
    """A model 256 wide: every row holds whole k-quant blocks, nothing falls back."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from small_vocab import small_tokenizer
    from workbench.export.gguf import read_tensor_types, write_gguf
    from workbench.export.verify import Reference, verify_gguf

    tokenizer = small_tokenizer()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=True)).eval()
    summary = write_gguf(model, tokenizer, tmp_path / "wide.gguf", quant)
    assert not summary["notes"], summary["notes"]
    types = set(read_tensor_types(tmp_path / "wide.gguf").values())
    assert k_type in types and types <= {"Q4_K", "Q5_K", "Q6_K", "F32"}, types
    verdict = verify_gguf(tmp_path / "wide.gguf", Reference.of(model, tokenizer,
                                                                max_new_tokens=8))
    assert verdict.ok and verdict.drift["top1"] > 0.5, verdict.summary()


def test_a_wrong_chat_template_in_the_file_is_caught(small, tmp_path):
    from workbench.export.gguf import write_gguf
    from workbench.export.verify import verify_gguf

    model, tokenizer, reference = small
    wrong = copy.deepcopy(tokenizer)
    wrong.chat_template = ("{% for m in messages %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
                           "{% endfor %}")
    write_gguf(model, wrong, tmp_path / "wrong.gguf", "f16")
    verdict = verify_gguf(tmp_path / "wrong.gguf", reference)
    assert not verdict.ok and {p.split(":")[0] for p in verdict.problems} == {"template"}
    assert "differs from token 0 on ('[IN' instead of '<|im_start|>" in verdict.problems[0]


def test_an_end_of_turn_token_llama_cpp_does_not_stop_on_is_caught(tmp_path):
    """llama.cpp recognises `<|im_end|>` by its text even when the file names another EOS,
    so the test uses an end-of-turn token it does not know."""
    from small_vocab import small_tokenizer
    from workbench.export.gguf import write_gguf
    from workbench.export.verify import Reference, verify_gguf

    tokenizer = small_tokenizer(end_of_turn="<|turn_end|>")
    model = merged_small(tokenizer)
    reference = Reference.of(model, tokenizer, max_new_tokens=4)
    write_gguf(model, tokenizer, tmp_path / "right.gguf", "f16")
    stops = lambda verdict: [p for p in verdict.problems if p.startswith("stop:")]
    right = verify_gguf(tmp_path / "right.gguf", reference)
    assert not stops(right), right.summary()
    # llama.cpp's built-in templates take this for ChatML and close turns with <|im_end|>:
    # a real trap for llama-cli without --jinja, and reported as such.
    assert r"instead of '<|turn_end|>\n<|im_start|>')" in right.problems[0]
    wrong = copy.deepcopy(tokenizer)
    wrong.eos_token = "<|endoftext|>"
    write_gguf(model, wrong, tmp_path / "wrong.gguf", "f16")
    verdict = verify_gguf(tmp_path / "wrong.gguf", reference)
    assert len(stops(verdict)) == 1, verdict.summary()
    assert "does not end generation at '<|turn_end|>'" in stops(verdict)[0]


def test_a_pre_tokenizer_llama_cpp_splits_differently_is_caught(small, tmp_path):
    """transformers' reading of the file agrees (the template round trip passes) but
    llama.cpp splits digits and punctuation its own way: only llama.cpp can tell."""
    from workbench.export.exporter import export_model
    from workbench.export.verify import report_path

    model, tokenizer, _ = small
    splitting = digit_splitting(tokenizer)
    with pytest.raises(ExportError) as refused:
        export_model(model, splitting, "gguf", "f16", tmp_path, verify=True)
    message = str(refused.value)
    assert message.startswith("export refused: llama.cpp does not use the file")
    assert "problem: tokens: llama.cpp splits the training prompt of a 4-message" in message
    assert not list(tmp_path.iterdir())  # neither the file nor its report is left
    kept = export_model(model, splitting, "gguf", "f16", tmp_path, verify=True, force=True)
    assert kept.out.is_file() and not kept.verdict.ok and "WARNING" in kept.notes[-1]
    report = json.loads(report_path(kept.out).read_text())
    assert report["ok"] is False and report["problems"] == kept.verdict.problems


def test_plain_gpt2_splitting_is_named_for_llama_cpp(small, tmp_path):
    from workbench.export.gguf import read_metadata, write_gguf

    model, tokenizer, _ = small
    assert not write_gguf(model, tokenizer, tmp_path / "a.gguf", "f16")["notes"]
    assert read_metadata(tmp_path / "a.gguf")["tokenizer.ggml.pre"] == "gpt-2"
    notes = write_gguf(model, digit_splitting(tokenizer), tmp_path / "b.gguf", "f16")["notes"]
    assert read_metadata(tmp_path / "b.gguf")["tokenizer.ggml.pre"] == "default"
    assert "llama.cpp may split text differently" in notes[0]


# -- through export_run and the command line -------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory):
    from conftest import ORDERS, tiny_config, write_jsonl
    from workbench.engine.run import Run

    root = tmp_path_factory.mktemp("verify-run")
    rows = [json.loads(line) for line in ORDERS.read_text(encoding="utf-8").splitlines()[:16]]
    config = tiny_config(tiny_model_dir, write_jsonl(root / "orders.jsonl", rows),
                         root / "runs", output={"name": "verify"},
                         train={"max_steps": 2, "save_every": 0},
                         data={"eval_fraction": 0})
    return Run(config).execute().run_dir


def test_the_cli_verifies_an_ollama_export_and_writes_the_verdict_beside_it(run_dir, tmp_path,
                                                                            capsys):
    from workbench.cli import main

    out = tmp_path / "ollama"
    assert main(["export", str(run_dir), "--format", "ollama", "--quant", "q4_k_m",
                 "-o", str(out), "--verify"]) == 0
    printed = capsys.readouterr().out
    assert re.search(rf"llama.cpp check of {run_dir.name}-q4_k_m.gguf \(MOSTLY_Q4_K_M, "
                     r"[\d.]+ MB\): passed\n", printed), printed
    assert "greedy answer to a 4-message conversation" in printed
    report = json.loads((out / f"{run_dir.name}-q4_k_m.verify.json").read_text())
    assert report["ok"] and report["file_type"] == "MOSTLY_Q4_K_M"
    assert str(out / f"{run_dir.name}-q4_k_m.verify.json") in printed


def test_a_modelfile_without_the_stop_token_is_caught(run_dir, tmp_path):
    from workbench.export.exporter import export_run
    from workbench.export.merge import merged_run
    from workbench.export.verify import Reference, verify_gguf

    result = export_run(run_dir, "ollama", "f16", tmp_path / "ollama", verify=True)
    assert result.verdict.ok, result.verdict.summary()
    modelfile = tmp_path / "ollama" / "Modelfile"
    modelfile.write_text(modelfile.read_text().replace('PARAMETER stop "<|im_end|>"\n', ""))
    model, tokenizer, _ = merged_run(run_dir)
    verdict = verify_gguf(result.files[0], Reference.of(model, tokenizer, max_new_tokens=2),
                          modelfile=modelfile)
    assert [p.split(":")[0] for p in verdict.problems] == ["modelfile"]
    assert "not on '<|im_end|>'" in verdict.problems[0]
