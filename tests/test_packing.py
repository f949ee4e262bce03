"""Packing is exact: packed examples give the same logits and loss as unpacked ones."""

import pytest
import torch

from conftest import tiny_config
from workbench.data.encoding import IGNORE, PaddingCollator
from workbench.data.packing import PackedCollator, pack_rows, padding_share
from workbench.engine.rundir import RunDir
from workbench.engine.run import Run


def rows_of(lengths, seed=0):
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for length in lengths:
        ids = torch.randint(5, 1000, (length,), generator=generator).tolist()
        labels = [IGNORE] * (length // 2) + ids[length // 2:]
        rows.append({"input_ids": ids, "labels": labels})
    return rows


def test_best_fit_packing_respects_capacity_and_keeps_every_token():
    rows = rows_of([50, 7, 33, 64, 12, 3, 29, 40, 9])
    packed = pack_rows(rows, capacity=64)
    assert all(len(p["input_ids"]) <= 64 for p in packed)
    assert sorted(sum((p["segments"] for p in packed), [])) == sorted(len(r["input_ids"]) for r in rows)
    assert len(packed) == 4  # 237 tokens need at least 4 rows of 64, and best fit finds 4
    assert pack_rows(rows, 64) == packed  # deterministic


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_logits_and_loss_equal_unpacked(tiny_model_dir, attention):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attention)
    model.eval()
    rows = rows_of([11, 23, 5, 17])
    packed = PackedCollator(pad_token_id=0)([_join_all(rows)])
    with torch.no_grad():
        logits = model(input_ids=packed["input_ids"], attention_mask=packed["attention_mask"],
                       position_ids=packed["position_ids"]).logits[0]
        start = 0
        for row in rows:
            n = len(row["input_ids"])
            alone = model(input_ids=torch.tensor([row["input_ids"]])).logits[0]
            assert torch.allclose(logits[start:start + n], alone, atol=1e-5), \
                (attention, (logits[start:start + n] - alone).abs().max())
            start += n

    # Without the block mask (position ids reset only) examples leak into each other.
    with torch.no_grad():
        leaky = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits[0]
        second = torch.tensor([rows[1]["input_ids"]])
        n0, n1 = len(rows[0]["input_ids"]), len(rows[1]["input_ids"])
        assert not torch.allclose(leaky[n0:n0 + n1], model(input_ids=second).logits[0], atol=1e-3)


def _join_all(rows):
    from workbench.data.packing import _join

    return _join(rows)


def test_packed_loss_equals_padded_loss(tiny_model_dir, orders_subset, tmp_path):
    """Same examples, same weights: the engine's loss on packed rows equals padded batches."""
    from workbench.backends.hf import HFBackend
    from workbench.data import encode_splits, load_splits
    from workbench.engine.rundir import RunDir
    from workbench.engine.run import training_arguments
    from workbench.engine.trainer import WorkbenchTrainer

    config = tiny_config(tiny_model_dir, orders_subset, tmp_path, data={"eval_fraction": 0})
    bundle = HFBackend().load(config)
    encoded = encode_splits(load_splits(config.data, 0), bundle.tokenizer, config.data)
    rows = encoded.train[:10]
    args = training_arguments(config, RunDir.create(tmp_path, "t"), bundle, has_eval=False)
    trainer = WorkbenchTrainer(model=bundle.model, args=args, train_dataset=rows,
                               data_collator=PaddingCollator(0))
    assert trainer.selective_head  # the loss under test
    bundle.model.eval()

    def loss_of(batch):
        count = (batch["labels"][:, 1:] != IGNORE).sum()
        return trainer.compute_loss(bundle.model, batch, num_items_in_batch=count)

    with torch.no_grad():
        padded = loss_of(PaddingCollator(0)(rows))
        packed = loss_of(PackedCollator(0)(pack_rows(rows, 512)))
    assert packed.item() == pytest.approx(padded.item(), abs=1e-5)


def test_packing_and_length_grouping_train_end_to_end(tiny_model_dir, orders_subset, tmp_path):
    for name, data in (("packed", {"packing": True}), ("grouped", {"group_by_length": True})):
        result = Run(tiny_config(tiny_model_dir, orders_subset, tmp_path / name, data=data,
                                 train={"max_steps": 6, "eval_every": 3})).execute()
        rows = RunDir(result.run_dir).metrics()
        assert result.status == "finished", name
        assert all(r["loss"] == r["loss"] for r in rows if "loss" in r)  # no NaN
        assert [r["step"] for r in rows if "eval_loss" in r] == [3, 6]


def test_padding_share_measures_waste():
    rows = rows_of([10, 100, 10, 100])
    assert padding_share(rows, 2) == pytest.approx(1 - 220 / 400)
    assert padding_share(sorted(rows, key=lambda r: len(r["input_ids"])), 2) == 0
