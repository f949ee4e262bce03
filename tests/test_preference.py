"""Preference tuning (train.method dpo / kto): the losses equal TRL 1.9.2's on the same
batches, reward accuracy rises, the reference is the model the run started from, resume
continues the curve, a DPO run stacks on an SFT run, and bad preference data is refused by
line through training and the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import lora_policy, tiny_config, write_jsonl
from workbench.engine.rundir import REFERENCE, RunDir
from workbench.engine.run import Run
from workbench.errors import DataError

trl = pytest.importorskip("trl", reason="TRL 1.9.2 is the reference implementation: "
                                        "pip install -e '.[dev]'")
CORPUS = Path(__file__).resolve().parent / "data_corpus"


def pairs(count: int = 24) -> list[dict]:
    """Short, direct answers preferred over chatty ones (easy for a tiny model to learn)."""
    return [{"prompt": f"Order {i}: send {i % 5 + 1} lamps to Lyon",
             "chosen": f"{i % 5 + 1} lamps to Lyon.",
             "rejected": f"Sure! I would be delighted to help you with that order, number {i}."}
            for i in range(count)]


def perturb(model, seed: int) -> None:
    """Move the trainable adapter (B != 0), as training would."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name and ".default." in name:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)


@pytest.fixture
def policy(tiny_model_dir):
    """A LoRA model whose adapter is not a no-op (as a stacked run's earlier adapter)."""
    model, tokenizer = lora_policy(tiny_model_dir, seed=1)
    return model.eval(), tokenizer


def examples_of(rows, tmp_path, name="p.jsonl"):
    from workbench.data import check

    return check(write_jsonl(tmp_path / name, rows)).raise_if_problems().examples


def with_reference(model, batch):
    """The batch with the model's log-probabilities as they are now: the reference, as a run
    computes it before its first step."""
    import torch

    from workbench.engine.preference import sequence_logps

    with torch.no_grad():
        reference, _ = sequence_logps(model, batch)
    return {**batch, "ref_logps": reference}


def test_dpo_and_ipo_losses_equal_trl_on_the_same_batch(policy, tmp_path):
    """Padding (answers and prompts of different lengths) and a prompt cut at
    max_prompt_length are in the batch."""
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from workbench.data.preference import PairCollator, encode_pairs
    from workbench.engine.preference import dpo_loss, sequence_logps

    model, tokenizer = policy
    rows = pairs(3) + [{"prompt": "a very long prompt " * 20 + "so: how many lamps?",
                        "chosen": "Two.", "rejected": "I could not say."}]
    encoded, stats = encode_pairs(examples_of(rows, tmp_path), tokenizer, max_length=96,
                                  max_prompt_length=40)
    assert stats.truncated == 1  # only the long prompt
    lengths = {len(r["chosen_input_ids"]) for r in encoded} | {
        len(r["rejected_input_ids"]) for r in encoded}
    assert len(lengths) > 2  # rows of several lengths: padding is exercised
    dataset = Dataset.from_dict({k: [r[k] for r in rows] for k in ("prompt", "chosen",
                                                                    "rejected")})
    for number, (loss_type, sft) in enumerate((("sigmoid", 0.0), ("ipo", 0.0),
                                               ("sigmoid", 0.5))):
        # TRL keeps a copy of the adapter it was given as its reference ("ref"); the run
        # computes its reference log-probabilities at the same moment. Then both train.
        args = DPOConfig(output_dir=str(tmp_path / f"{loss_type}{number}"), bf16=False,
                         use_cpu=True, beta=0.1, report_to="none",
                         loss_type=[loss_type] + (["sft"] if sft else []),
                         loss_weights=[1.0] + ([sft] if sft else []))
        if "ref" in model.peft_config:  # the copy the last loop's trainer made
            model.delete_adapter("ref")
        reference = DPOTrainer(model=model, args=args, processing_class=tokenizer,
                               train_dataset=dataset)
        batch = with_reference(model, PairCollator(tokenizer.pad_token_id)(encoded))
        perturb(model, seed=number)
        with torch.no_grad():
            logps, counts = sequence_logps(model, batch)
            ours, metrics = dpo_loss(logps, batch["ref_logps"], counts, beta=0.1, loss=loss_type,
                                     sft_weight=sft)
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                  "completion_mask": (batch["labels"] != -100).long()}
        with torch.no_grad():
            theirs = reference._compute_loss(model, inputs, return_outputs=False)
        logged = reference._metrics["eval"]
        # within 1e-5, or float32's rounding of IPO's squared (larger) values
        assert ours.item() == pytest.approx(theirs.item(), abs=1e-5, rel=1e-6), loss_type
        assert metrics["reward_accuracy"].item() == pytest.approx(
            logged["rewards/accuracies"][-1], abs=1e-6)
        assert metrics["reward_margin"].item() == pytest.approx(logged["rewards/margins"][-1],
                                                                abs=1e-5)
        assert metrics["logp_chosen"].item() == pytest.approx(logged["logps/chosen"][-1],
                                                              abs=1e-4)
        assert metrics["logp_rejected"].item() == pytest.approx(logged["logps/rejected"][-1],
                                                                abs=1e-4)
    assert ours.item() != pytest.approx(0.6931, abs=1e-3)  # the adapter changed the logps


def test_kto_loss_equals_trl_on_the_same_batch(policy, tmp_path):
    import torch
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    from workbench.data.preference import UnpairedCollator, encode_unpaired, kto_examples
    from workbench.engine.preference import kto_loss, sequence_logps

    model, tokenizer = policy
    rows, _ = kto_examples(examples_of(pairs(3), tmp_path))  # 3 good and 3 bad answers
    encoded, stats = encode_unpaired(rows, tokenizer, max_length=96)
    assert (stats.desirable, stats.undesirable) == (3, 3)
    args = KTOConfig(output_dir=str(tmp_path / "kto"), bf16=False, use_cpu=True, beta=0.1,
                     desirable_weight=1.0, undesirable_weight=1.3, report_to="none",
                     per_device_train_batch_size=2, train_sampling_strategy="sequential")
    reference = KTOTrainer(model=model, args=args, processing_class=tokenizer,
                           train_dataset=Dataset.from_dict({
                               "prompt": ["a", "b"], "completion": ["x", "y"],
                               "label": [True, False]}))
    batch = with_reference(model, UnpairedCollator(tokenizer.pad_token_id)(encoded))
    perturb(model, seed=7)
    with torch.no_grad():
        logps, _ = sequence_logps(model, batch)
        ours, metrics = kto_loss(logps, batch["ref_logps"], batch["desirable"], beta=0.1,
                                 desirable_weight=1.0, undesirable_weight=1.3)
    half = len(encoded)
    mask = (batch["labels"] != -100).long()
    inputs = {"input_ids": batch["input_ids"][:half], "attention_mask":
              batch["attention_mask"][:half], "completion_mask": mask[:half],
              "label": batch["desirable"], "KL_input_ids": batch["input_ids"][half:],
              "KL_attention_mask": batch["attention_mask"][half:],
              "KL_completion_mask": mask[half:]}
    with torch.no_grad():
        theirs = reference._compute_loss(model, inputs, return_outputs=False)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)
    assert metrics["kl"].item() == pytest.approx(reference._metrics["eval"]["kl"][-1], abs=1e-5)


def test_a_long_prompt_keeps_its_end_and_the_answer(policy, tmp_path):
    from workbench.data.preference import encode_side

    model, tokenizer = policy
    (example,) = examples_of([{"prompt": "filler " * 50 + "How many lamps?",
                               "chosen": "Two.", "rejected": "No idea."}], tmp_path)
    side = encode_side(example, example.chosen, tokenizer, max_length=200, max_prompt_length=12)
    prompt = [i for i, label in zip(side.input_ids, side.labels) if label == -100]
    assert len(prompt) == 12 and side.truncated
    assert "assistant" in tokenizer.decode(prompt)  # the end of the prompt is kept
    assert tokenizer.decode([i for i, l in zip(side.input_ids, side.labels) if l != -100]
                            ).startswith("Two.")


def dpo_config(model_dir, data, runs_dir, **train):
    return tiny_config(model_dir, data, runs_dir,
                       train={"method": "dpo", "max_steps": 8, "learning_rate": 1e-2,
                              "log_every": 2, "eval_every": 4, "save_every": 4, **train},
                       data={"eval_fraction": 0.2}, eval={"general_text": None})


def test_dpo_training_raises_reward_accuracy_and_keeps_the_reference_fixed(
        tiny_model_dir, tmp_path):
    import torch

    from workbench import load_run
    from workbench.data.preference import PairCollator
    from workbench.engine.preference import reference_logps

    data = write_jsonl(tmp_path / "pairs.jsonl", pairs())
    result = Run(dpo_config(tiny_model_dir, data, tmp_path / "runs")).execute()
    folder = RunDir(result.run_dir)
    train = [r for r in folder.metrics() if "loss" in r]
    assert train[0]["reward_accuracy"] < 0.5 and train[-1]["reward_accuracy"] == 1.0
    assert train[-1]["loss"] < train[0]["loss"] and train[-1]["reward_margin"] > 0
    evals = [r for r in folder.metrics() if "eval_loss" in r]
    assert [r["step"] for r in evals] == [4, 8] and evals[-1]["eval_reward_accuracy"] == 1.0
    assert result.summary["method"] == "dpo"
    assert result.summary["final_metrics"]["reward_accuracy"] == 1.0
    # The reference is the model the run started from: a fresh adapter is a no-op, so it is
    # the base model, which the trained adapter switched off still is.
    saved = json.loads(folder.file(REFERENCE).read_text())
    trained = load_run(result.run_dir)
    from workbench.data.splits import encode_splits, load_splits

    config = trained.config
    encoded = encode_splits(load_splits(config.data, config.train.seed), trained.tokenizer,
                            config.data, "dpo")
    with trained.model.disable_adapter():
        again = reference_logps(trained.model, encoded.train,
                                PairCollator(trained.tokenizer.pad_token_id))
    assert torch.allclose(torch.tensor(saved["train"]), torch.tensor(again), atol=1e-4)
    now = reference_logps(trained.model, encoded.train,
                          PairCollator(trained.tokenizer.pad_token_id))
    assert not torch.allclose(torch.tensor(saved["train"]), torch.tensor(now), atol=1e-2)


def test_a_dpo_run_resumes_and_continues_its_curve(tiny_model_dir, tmp_path):
    from workbench.events import Control, StepLogged

    data = write_jsonl(tmp_path / "pairs.jsonl", pairs())
    # every step logged: a log row is then one step's loss, whichever session trained it
    whole = Run(dpo_config(tiny_model_dir, data, tmp_path / "whole", log_every=1)).execute()
    control = Control()

    def stop_after_4(event):  # logged at step 4: honoured at the end of step 5
        if isinstance(event, StepLogged) and event.step == 4:
            control.stop()

    first = Run(dpo_config(tiny_model_dir, data, tmp_path / "parts", log_every=1),
                sinks=[stop_after_4], control=control).execute()
    assert first.status == "stopped" and first.summary["step"] == 5
    resumed = Run.resume(first.run_dir).execute()
    assert resumed.status == "finished" and resumed.summary["step"] == 8
    steps = [r["step"] for r in RunDir(first.run_dir).metrics() if "loss" in r]
    assert steps == list(range(1, 9))
    ours = {r["step"]: r["loss"] for r in RunDir(first.run_dir).metrics() if "loss" in r}
    reference = {r["step"]: r["loss"] for r in RunDir(whole.run_dir).metrics() if "loss" in r}
    assert ours == pytest.approx(reference, rel=1e-4)


def test_a_dpo_run_stacked_on_an_sft_run_loads_and_exports(tiny_model_dir, orders_subset,
                                                           tmp_path):
    from transformers import AutoModelForCausalLM

    from workbench import load_run
    from workbench.export.exporter import export_run

    sft = Run(tiny_config(tiny_model_dir, orders_subset, tmp_path / "runs",
                          train={"max_steps": 3}, eval={"general_text": None})).execute()
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs())
    config = dpo_config(tiny_model_dir, data, tmp_path / "runs", max_steps=4).with_overrides(
        [f"lora.start_from={sft.run_dir}", "lora.start_mode=merge"])
    stacked = Run(config).execute()
    assert stacked.status == "finished"
    loaded = load_run(stacked.run_dir)
    assert loaded.generate(["Order 1: send 2 lamps to Lyon"], max_new_tokens=4)
    exported = export_run(stacked.run_dir, "hf", out=tmp_path / "hf")
    assert AutoModelForCausalLM.from_pretrained(exported.out) is not None


def test_kto_trains_on_ratings_with_both_bad_as_two_bad_answers(tiny_model_dir, tmp_path):
    from workbench.data import check
    from workbench.data.preference import kto_examples

    rows, skipped = kto_examples(check(CORPUS / "pref_ratings.jsonl").examples)
    assert skipped == 1 and [r.label for r in rows] == [True, False, True, False]
    ratings = [json.loads(line) for line in (CORPUS / "pref_ratings.jsonl").read_text()
               .splitlines()]
    both_bad = {**ratings[0], "choice": "both_bad"}
    rows, _ = kto_examples(check(write_jsonl(tmp_path / "r.jsonl", [both_bad])).examples)
    assert [r.label for r in rows] == [False, False]
    data = write_jsonl(tmp_path / "ratings.jsonl", ratings * 8)
    config = dpo_config(tiny_model_dir, data, tmp_path / "runs", method="kto", max_steps=4)
    result = Run(config).execute()
    assert result.status == "finished" and "kl" in result.summary["final_metrics"]


@pytest.mark.parametrize("method,name,words", [
    ("dpo", "pref_bad.jsonl", "pref_bad.jsonl line 2: 'chosen' and 'rejected' are the same"),
    ("kto", "pref_bad_labels.jsonl", "pref_bad_labels.jsonl line 2: 'label' must be true"),
    ("dpo", "pref_bad_ratings.jsonl", "pref_bad_ratings.jsonl line 2: 'choice' must be one of"),
    ("dpo", "pref_unpaired.jsonl", "DPO needs a better and a worse answer"),
    ("sft", "pref_pairs.jsonl", "train.method sft cannot learn from"),
    ("dpo", "prompt_completion.jsonl", "train.method dpo needs preference rows"),
])
def test_bad_preference_data_is_refused_by_line_before_a_model_loads(method, name, words,
                                                                      tmp_path):
    config = tiny_config("/nonexistent/model", CORPUS / name, tmp_path / "runs",
                         train={"method": method}, data={"eval_fraction": 0},
                         eval={"general_text": None})
    with pytest.raises(DataError, match=words.replace("(", r"\(").replace("'", ".")):
        Run(config).execute()
    assert not (tmp_path / "runs").exists()
    config_file = tmp_path / "c.yaml"
    config_file.write_text(f"model: {{name: /nonexistent/model}}\ndata: {{path: "
                           f"{CORPUS / name}, eval_fraction: 0}}\ntrain: {{method: {method}}}\n")
    done = subprocess.run([sys.executable, "-m", "workbench", "train", str(config_file)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr and words in done.stderr
