"""Stacking, merging and exporting adapters, on a tiny random Llama with the demo tokenizer
(and one slow test on the demo model): logits are compared, files are read back with
transformers' own readers, and refusals are checked by their messages."""

import json

import pytest

from conftest import tiny_config
from workbench.engine.run import Run
from workbench.errors import ExportError

IDS = [[1, 520, 33, 4067, 28, 905, 2, 1, 4093, 198, 26843, 216, 33, 34, 35, 2]]


def train_tiny(model_dir, data, runs_dir, name, **sections):
    sections.setdefault("train", {})
    sections["train"] = {"max_steps": 3, "save_every": 0, "learning_rate": 2e-2,
                         **sections["train"]}
    sections.setdefault("data", {})["eval_fraction"] = 0
    config = tiny_config(model_dir, data, runs_dir, output={"name": name}, **sections)
    return Run(config).execute().run_dir


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    """Two adapters on the tiny model (different data), one of rank 4, and one adapter on
    another tiny model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from conftest import ORDERS, write_jsonl

    root = tmp_path_factory.mktemp("export-runs")
    rows = [json.loads(line) for line in ORDERS.read_text(encoding="utf-8").splitlines()[:32]]
    orders = write_jsonl(root / "orders.jsonl", rows)
    shouting = write_jsonl(root / "shout.jsonl", [
        {"messages": [m if m["role"] != "assistant" else {**m, "content": "OK! " * 6}
                      for m in row["messages"]]} for row in rows])
    other = root / "other-tiny"
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for parameter in model.parameters():
        parameter.data.normal_(0, 0.02)
    model.save_pretrained(other)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(other)
    runs_dir = root / "runs"
    return {
        "orders": train_tiny(tiny_model_dir, orders, runs_dir, "orders"),
        "shout": train_tiny(tiny_model_dir, shouting, runs_dir, "shout"),
        "rank4": train_tiny(tiny_model_dir, orders, runs_dir, "rank4", lora={"r": 4},
                            train={"max_steps": 1}),
        "other": train_tiny(str(other), orders, runs_dir, "other", train={"max_steps": 1}),
        "runs_dir": runs_dir,
    }


def peft_logits(run_dir):
    import torch

    from workbench import load_run

    with torch.no_grad():
        return load_run(run_dir).model.eval()(input_ids=torch.tensor(IDS)).logits


# -- library --------------------------------------------------------------------------------

def test_the_library_lists_each_adapter_with_base_rank_targets_data_and_loss(runs):
    from workbench.export.library import list_adapters

    found = {info.name.split("-")[0]: info for info in list_adapters(runs["runs_dir"])}
    assert set(found) == {"orders", "shout", "rank4", "other"}
    orders = found["orders"]
    assert orders.rank == 8 and found["rank4"].rank == 4 and orders.alpha == 16
    assert orders.base_identity == found["shout"].base_identity != found["other"].base_identity
    assert {"q_proj", "v_proj", "down_proj"} <= set(orders.targets)
    assert orders.dataset.endswith("orders.jsonl")
    assert found["shout"].dataset.endswith("shout.jsonl")
    assert orders.final_loss > 0 and orders.status == "finished"


def test_adapters_of_different_bases_are_refused_with_both_named(runs):
    from workbench.export.stack import AdapterStack

    with pytest.raises(ExportError) as refused:
        AdapterStack([runs["orders"], runs["other"]])
    message = str(refused.value)
    assert runs["orders"].name in message and runs["other"].name in message
    assert "different base models" in message and "other-tiny" in message


# -- merging and combining ------------------------------------------------------------------

def test_the_merged_folder_loads_with_plain_transformers_and_gives_the_adapter_logits(
        runs, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from workbench.export.exporter import export_run

    result = export_run(runs["orders"], "hf", out=tmp_path / "hf")
    assert result.check.ok and set(result.check.stages) == {"training", "hf"}
    names = {p.name for p in result.files}
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja",
            "generation_config.json"} <= names
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        plain = merged(input_ids=torch.tensor(IDS)).logits
    # Merging adds B @ A into W once instead of on every forward pass: float32 rounding only.
    assert torch.allclose(plain, peft_logits(runs["orders"]), atol=1e-5)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert "<|im_start|>" in tokenizer.chat_template
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert GenerationConfig.from_pretrained(tmp_path / "hf").eos_token_id == end


@pytest.fixture(scope="module")
def stack(runs):
    from workbench.export.stack import AdapterStack

    return AdapterStack([runs["orders"], runs["shout"]])


def test_linear_one_zero_is_the_first_adapter_and_cat_is_the_exact_sum(runs, stack):
    import torch

    ids = torch.tensor(IDS)
    first, second = stack.logits(ids, stack.labels[0]), stack.logits(ids, stack.labels[1])
    assert torch.allclose(first, peft_logits(runs["orders"]), atol=1e-5)
    stack.combine([1.0, 0.0], "linear")
    assert torch.allclose(stack.logits(ids), first, atol=1e-5)
    stack.combine([0.0, 1.0], "linear")
    assert torch.allclose(stack.logits(ids), second, atol=1e-5)
    # cat keeps both updates side by side: weights (1, 1) is both adapters switched on at once.
    stack.model.base_model.set_adapter([stack._keys[label] for label in stack.labels])
    with torch.no_grad():
        both = stack.model(input_ids=ids).logits
    stack.combine([1.0, 1.0], "cat")
    assert torch.allclose(stack.logits(ids), both, atol=1e-5)
    assert not torch.allclose(both, first, atol=1e-3)  # the second adapter really counts
    base = stack.logits(ids, "base")
    assert not torch.allclose(base, first, atol=1e-3)


def test_rslora_adapters_combine_at_the_right_scale(tiny_model_dir, tmp_path):
    """PEFT gives a combination alpha = r, which rsLoRA scales by sqrt(r) instead of 1;
    the stack corrects it. Bare adapter folders (no run) stack too."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from workbench.export.stack import AdapterStack

    folders = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(
            r=8, lora_alpha=16, use_rslora=True, target_modules=["q_proj", "v_proj"],
            init_lora_weights=False))
        model.save_pretrained(tmp_path / f"rs{seed}")
        folders.append(tmp_path / f"rs{seed}")
    stack = AdapterStack(folders)
    ids = torch.tensor(IDS)
    stack.combine([1.0, 0.0], "linear")
    assert torch.allclose(stack.logits(ids), stack.logits(ids, "rs0"), atol=1e-5)


def test_the_stack_panel_answers_side_by_side_and_recombines_when_a_slider_moves(stack):
    from workbench.ui.stack import StackPanel

    asked = []
    generate = stack.generate
    stack.generate = lambda prompts, which="combined", **kw: asked.append(which) or generate(
        prompts, which, **kw)
    try:
        panel = StackPanel(stack, ["Two lattes to Lyon for Ana", "Hi"], max_new_tokens=4)
        assert list(panel.answers) == ["base", *stack.labels, "combined"]
        assert panel.density.disabled and panel.method.value == "linear"
        asked.clear()
        panel.sliders[1].value = 0.0  # linear (1, 0): the first adapter alone
        assert asked == ["combined"]  # base and single adapters are not asked again
        assert panel.answers["combined"] == panel.answers[stack.labels[0]]
        table = panel.table.get_state()["value"]
        assert table.count("<tr>") == 3 and all(f"<th>{c}</th>" in table for c in panel.answers)
        panel.method.value = "dare_ties"
        assert not panel.density.disabled and "dare_ties(" in panel.notice.value
        answers = panel.set(weights=[1.0, 1.0], method="cat")
        assert asked[-1] == "combined" and "cat(" in panel.notice.value and answers["combined"]
        panel.prompt_box.value = "Three teas to Oslo"
        panel.update()
        assert asked[-4:] == ["base", *stack.labels, "combined"]
        panel.close()
    finally:
        del stack.generate


@pytest.mark.parametrize("weights, method, density, problem", [
    ([1.0], "linear", None, "1 weights for 2 adapters"),
    ([1.0, 1.0], "average", None, "'average' is not offered"),
    ([1.0, 1.0], "ties", None, "ties needs a density between 0 and 1"),
    ([1.0, 1.0], "dare_linear", 1.5, "got 1.5"),
])
def test_bad_combinations_are_refused_before_peft_sees_them(stack, weights, method, density,
                                                            problem):
    with pytest.raises(ExportError, match=problem):
        stack.combine(weights, method, density)


def test_every_method_combines_and_linear_needs_equal_ranks(runs, stack):
    import torch

    from workbench.export.stack import METHODS, AdapterStack

    ids = torch.tensor(IDS)
    for method in METHODS:
        stack.combine([0.7, 0.5], method, density=0.5)
        assert torch.isfinite(stack.logits(ids)).all(), method
    mixed = AdapterStack([runs["orders"], runs["rank4"]])
    with pytest.raises(ExportError, match="ranks 4, 8; use cat or svd"):
        mixed.combine([1.0, 1.0], "linear")
    mixed.combine([1.0, 1.0], "svd")  # any ranks


def test_a_combination_exports_merged(runs, stack, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from workbench.export.exporter import export_stack

    stack.combine([0.8, 0.4], "cat")
    expected = stack.logits(torch.tensor(IDS))
    result = export_stack(stack, "hf", out=tmp_path / "combo")
    merged = AutoModelForCausalLM.from_pretrained(result.out).eval()
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=torch.tensor(IDS)).logits, expected, atol=1e-5)
    assert result.source["method"] == "cat" and result.source["weights"] == [0.8, 0.4]
    assert torch.allclose(stack.logits(torch.tensor(IDS)), expected)  # the stack is untouched


# -- GGUF -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    """A tiny Llama with a LoRA update merged in, over a 400-token vocabulary (quick to read
    back: see small_vocab.py)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from small_vocab import small_model, small_tokenizer

    tokenizer = small_tokenizer()
    torch.manual_seed(0)
    model = get_peft_model(small_model(tokenizer), LoraConfig(
        r=4, target_modules="all-linear", init_lora_weights=False)).merge_and_unload()
    return model.eval(), tokenizer


def small_ids(tokenizer):
    from workbench.export.templates import PROBES, render

    return tokenizer(render(tokenizer, PROBES[0]), add_special_tokens=False,
                     return_tensors="pt").input_ids


@pytest.mark.parametrize("quant, atol", [("f32", 1e-5), ("f16", 2e-3), ("q8_0", 5e-2)])
def test_a_gguf_reads_back_with_transformers_and_gives_the_merged_logits(small, tmp_path,
                                                                         quant, atol):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.export.gguf import read_metadata, read_tensor_types, write_gguf

    model, tokenizer = small
    path = tmp_path / f"small-{quant}.gguf"
    summary = write_gguf(model, tokenizer, path, quant)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name,
                                                  dtype=torch.float32).eval()
    ids = small_ids(tokenizer)
    with torch.no_grad():
        ours, theirs = (m(input_ids=ids).logits for m in (model, loaded))
    assert (theirs - ours).abs().max() < atol, (theirs - ours).abs().max()
    types = set(read_tensor_types(path).values())
    assert types == {"f32": {"F32"}, "f16": {"F16", "F32"}, "q8_0": {"Q8_0", "F32"}}[quant]
    meta = read_metadata(path)
    assert meta["general.architecture"] == "llama" and meta["tokenizer.ggml.model"] == "gpt2"
    assert meta["tokenizer.ggml.eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert not meta["tokenizer.ggml.add_bos_token"] and summary["bytes"] == path.stat().st_size
    # GPT-2's regex alone, whatever the vocabulary (test_verify.py: unknown ones).
    assert meta["tokenizer.ggml.pre"] == "gpt-2" and not summary["notes"]
    read_back = AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    assert read_back.chat_template == tokenizer.chat_template
    assert read_back(render_probe(read_back), add_special_tokens=False).input_ids == \
        ids[0].tolist()


def render_probe(tokenizer):
    from workbench.export.templates import PROBES, render

    return render(tokenizer, PROBES[0])


def test_the_demo_tokenizer_is_recognised_for_llama_cpp(merged_tiny, tmp_path):
    from workbench.export.gguf import read_metadata, write_gguf

    model, tokenizer = merged_tiny
    summary = write_gguf(model, tokenizer, tmp_path / "t.gguf", "q8_0")
    meta = read_metadata(tmp_path / "t.gguf")
    assert meta["tokenizer.ggml.pre"] == "smollm" and not summary["notes"]
    assert len(meta["tokenizer.ggml.tokens"]) == 49152 and meta["tokenizer.ggml.token_type"][:3] \
        == [3, 3, 3]  # <|endoftext|>, <|im_start|>, <|im_end|> are control tokens
    assert meta["tokenizer.ggml.merges"][:2] == ["\u0120 t", "\u0120 a"]


@pytest.fixture(scope="module")
def merged_tiny(runs):
    from workbench.export.merge import merged_run

    model, tokenizer, _ = merged_run(runs["orders"])
    return model, tokenizer


def test_the_ollama_export_restates_template_system_prompt_and_stop(runs, tmp_path):
    from workbench.export.exporter import export_run

    result = export_run(runs["orders"], "ollama", "q8_0", tmp_path / "ollama")
    assert result.check.ok and set(result.check.stages) == {"training", "gguf", "ollama"}
    text = (tmp_path / "ollama" / "Modelfile").read_text()
    assert text.startswith(f"FROM ./{runs['orders'].name}-q8_0.gguf\n")
    assert (tmp_path / "ollama" / f"{runs['orders'].name}-q8_0.gguf").is_file()
    assert 'PARAMETER stop "<|im_end|>"' in text
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM' in text  # the demo default
    assert '{{ else if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n' in text


def test_a_template_that_does_not_survive_is_refused_and_nothing_is_left(small, tmp_path):
    """A tokenizer that adds BOS itself, with a template that writes BOS too: a GGUF runtime
    would put two BOS tokens where training had one."""
    import copy

    from tokenizers.processors import TemplateProcessing

    from workbench.data.encoding import CHATML_TEMPLATE
    from workbench.export.exporter import export_model

    model, tokenizer = small
    doubled = copy.deepcopy(tokenizer)
    doubled.chat_template = "{{ bos_token }}" + CHATML_TEMPLATE
    doubled.backend_tokenizer.post_processor = TemplateProcessing(
        single="<|im_start|> $A", special_tokens=[("<|im_start|>", 1)])
    with pytest.raises(ExportError) as refused:
        export_model(model, doubled, "gguf", "f16", tmp_path)
    assert "export refused" in str(refused.value) and "gguf:" in str(refused.value)
    assert "different token ids than in training" in str(refused.value)
    assert not list(tmp_path.iterdir())
    kept = export_model(model, doubled, "gguf", "f16", tmp_path, force=True)
    assert kept.out.is_file() and "WARNING" in kept.notes[-1]


def test_the_round_trip_names_the_stage_whose_template_differs(small, tmp_path):
    import copy

    from workbench.export.gguf import write_gguf
    from workbench.export.templates import round_trip

    model, tokenizer = small
    write_gguf(model, tokenizer, tmp_path / "m.gguf", "f16")
    changed = copy.deepcopy(tokenizer)
    changed.chat_template = tokenizer.chat_template.replace("role'] + '\n'", "role'] + ':\n'")
    assert changed.chat_template != tokenizer.chat_template
    check = round_trip(changed, gguf_path=tmp_path / "m.gguf")
    assert not check.ok and all(p.startswith("gguf:") for p in check.problems)
    assert round_trip(tokenizer, gguf_path=tmp_path / "m.gguf").ok


def test_other_architectures_are_refused_with_the_supported_list(demo_tokenizer, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from workbench.export.gguf import write_gguf

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2,
                                       vocab_size=len(demo_tokenizer)))
    with pytest.raises(ExportError, match="does not support 'gpt2' models yet; it writes llama"):
        write_gguf(model, demo_tokenizer, tmp_path / "x.gguf", "f16")
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A short real fine-tune of the demo model, merged: what `workbench export` ships."""
    from conftest import ORDERS
    from workbench.config import RunConfig
    from workbench.export.merge import merged_run

    root = tmp_path_factory.mktemp("demo-export")
    config = RunConfig.from_dict({
        "model": {"name": "demo"}, "lora": {"r": 8, "alpha": 16},
        "data": {"path": str(ORDERS), "eval_fraction": 0, "max_length": 128},
        "train": {"learning_rate": 1e-3, "max_steps": 2, "batch_size": 4, "save_every": 0},
        "output": {"runs_dir": str(root / "runs"), "name": "demo"}})
    run_dir = Run(config).execute().run_dir
    model, tokenizer, _ = merged_run(run_dir)
    return run_dir, model, tokenizer


@pytest.mark.slow
@pytest.mark.parametrize("quant, max_drift, mean_drift, agree", [
    ("f32", 1e-4, 1e-5, 1.0), ("f16", 0.25, 0.02, 0.98), ("q8_0", 4.0, 0.4, 0.9)])
def test_demo_gguf_reads_back_with_transformers(demo_run, tmp_path, quant, max_drift,
                                                mean_drift, agree):
    """The demo model, fine-tuned and exported as GGUF by `export_run`, read back by
    transformers: logits (the demo's logits spread with a standard deviation of about 7),
    tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.export.exporter import export_run
    from workbench.export.gguf import read_metadata
    from workbench.export.templates import PROBES, render

    run_dir, model, tokenizer = demo_run
    result = export_run(run_dir, "gguf", quant, out=tmp_path / "demo.gguf")
    assert result.check.ok and not result.notes
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="demo.gguf",
                                                  dtype=torch.float32).eval()
    ids = tokenizer(render(tokenizer, PROBES[0]), add_special_tokens=False,
                    return_tensors="pt").input_ids
    with torch.no_grad():
        ours, theirs = model(input_ids=ids).logits, loaded(input_ids=ids).logits
    drift = (theirs - ours).abs()
    agreement = (theirs.argmax(-1) == ours.argmax(-1)).float().mean().item()
    print(f"\n{quant}: max |logit diff| {drift.max():.3g}, mean {drift.mean():.3g}, top-1 "
          f"agreement {agreement:.3f} over {ids.shape[1]} positions, "
          f"{result.out.stat().st_size / 1e6:.0f} MB")
    assert drift.max() < max_drift and drift.mean() < mean_drift and agreement >= agree
    if quant == "q8_0":  # the tokenizer once is enough: it is the same metadata in each file
        read_back = AutoTokenizer.from_pretrained(tmp_path, gguf_file="demo.gguf")
        assert read_back.chat_template == tokenizer.chat_template
        assert read_back(render(read_back, PROBES[0]), add_special_tokens=False).input_ids \
            == ids[0].tolist()
        # transformers' GGUF reader names the BOS token as EOS too; the file says <|im_end|>.
        assert read_metadata(tmp_path / "demo.gguf")["tokenizer.ggml.eos_token_id"] == 2


@pytest.fixture(scope="module")
def demo_reference(demo_run):
    from workbench.export.verify import Reference

    _, model, tokenizer = demo_run
    return Reference.of(model, tokenizer)


# (max |logit diff|, mean, top-1) measured 2026-12-02 on the untuned demo model, 95 positions:
# f32 0.038 / 0.004 / 100%, f16 0.076 / 0.010 / 100%, q8_0 2.0 / 0.29 / 96%,
# q4_k_m 11 / 1.1 / 81% (logits spread with a standard deviation of about 7).
@pytest.mark.slow
@pytest.mark.parametrize("format, quant, max_drift, top1", [
    ("gguf", "f32", 0.2, 0.99), ("gguf", "f16", 0.4, 0.98), ("gguf", "q8_0", 5.0, 0.85),
    ("ollama", "q4_k_m", 25.0, 0.6)])
def test_llama_cpp_judges_the_demo_exports(demo_run, demo_reference, tmp_path, format, quant,
                                           max_drift, top1):
    """What `workbench export --verify` checks, on the real model: llama.cpp splits each
    probe prompt into the training ids (1), its built-in ChatML template renders them (2),
    its greedy answer is the merged model's and stops on <|im_end|> (3; F32/F16 token for
    token), and the Modelfile stops there too (4)."""
    from workbench.export.exporter import export_run
    from workbench.export.verify import report_path

    run_dir, _, _ = demo_run
    result = export_run(run_dir, format, quant, out=tmp_path / "out", verify=True)
    verdict = result.verdict
    print(f"\n{verdict.summary()}")
    assert verdict.ok and result.check.ok
    assert verdict.drift["max"] < max_drift and verdict.drift["top1"] >= top1
    assert report_path(verdict.path) in result.files
    # llama.cpp's ChatML renders the conversation that has a system message exactly; the
    # other lacks SmolLM's default system prompt, which only --jinja adds: a warning.
    assert [w.split(":")[0] for w in verdict.warnings] == ["template"]
    assert "default system prompt" in verdict.warnings[0]
    rows = verdict.generation
    assert all(row["reference_stopped"] for row in rows)
    if quant in ("f32", "f16"):
        assert all(row["equal"] == row["compared"] and row["stopped"] for row in rows)


@pytest.mark.slow
def test_llama_cpp_catches_a_wrong_template_in_a_demo_file(demo_run, demo_reference, tmp_path):
    import copy

    from workbench.export.gguf import write_gguf
    from workbench.export.verify import verify_gguf

    _, model, tokenizer = demo_run
    wrong = copy.deepcopy(tokenizer)  # Llama 2's format in place of ChatML
    wrong.chat_template = ("{% for m in messages %}{% if m['role'] == 'user' %}"
                           "{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}"
                           "{{ m['content'] }}{% endif %}{% endfor %}")
    write_gguf(model, wrong, tmp_path / "wrong.gguf", "f16")
    verdict = verify_gguf(tmp_path / "wrong.gguf", demo_reference)
    assert not verdict.ok and all(p.startswith("template:") for p in verdict.problems)
    assert len(verdict.problems) == 2  # both probe conversations


# -- the command line -----------------------------------------------------------------------

def test_without_llama_cpp_verify_and_small_quants_say_how_to_install(runs, tmp_path,
                                                                      monkeypatch):
    """What a user without the [verify] extra sees, before anything is merged or written."""
    import sys

    from workbench.export.exporter import export_run

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what `import` sees when absent
    for quant, verify, what in (("f16", True, "checking the export with llama.cpp"),
                                ("q4_k_m", False, "the q4_k_m quantization")):
        with pytest.raises(ExportError) as refused:
            export_run(runs["orders"], "gguf", quant, tmp_path / "x.gguf", verify=verify)
        assert str(refused.value).startswith(f"{what}") and 'pip install -e ".[verify]"' in \
            str(refused.value)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ExportError, match="--verify has llama.cpp check a GGUF file"):
        export_run(runs["orders"], "hf", "f16", tmp_path / "hf", verify=True)


def test_cli_exports_a_run_and_a_combination_and_lists_adapters(runs, tmp_path, capsys):
    from workbench.cli import main

    assert main(["export", str(runs["orders"]), "--format", "gguf", "--quant", "q8_0"]) == 0
    printed = capsys.readouterr().out
    written = runs["orders"] / "export" / f"{runs['orders'].name}-q8_0.gguf"
    assert str(written) in printed and written.is_file()
    assert "chat template and stop token checked: training = gguf" in printed
    assert main(["export", str(runs["orders"]), str(runs["shout"]), "--weights", "1", "0.5",
                 "--method", "cat", "--format", "hf", "-o", str(tmp_path / "combo")]) == 0
    assert (tmp_path / "combo" / "model.safetensors").is_file()
    capsys.readouterr()
    assert main(["adapters", "--runs-dir", str(runs["runs_dir"])]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["adapter", "base", "model"]
    row = next(line for line in table if line.startswith(runs["rank4"].name))
    assert " 4 " in row and "q_proj" in row and "orders.jsonl" in row


def test_cli_errors_are_one_line(runs, tmp_path):
    import subprocess
    import sys

    def workbench(*args):
        return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True,
                              text=True, timeout=600)

    missing = workbench("export", str(tmp_path / "no-such-run"), "--format", "gguf")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "is not a run folder" in missing.stderr
    mixed = workbench("export", str(runs["orders"]), str(runs["other"]), "--weights", "1", "1")
    assert mixed.returncode == 2 and "different base models" in mixed.stderr
    assert "Traceback" not in mixed.stderr and mixed.stderr.count("\n") == 1
