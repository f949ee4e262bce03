"""Reward tuning (train.method grpo): group-relative advantages and the loss equal TRL
1.9.2's on fixed rewards, a run logs its rewards and finishes, resume continues, batch
arithmetic is checked with the config, and the reward test bench names every broken or
useless reward before training."""

import json
import math
import subprocess
import sys

import pytest

from conftest import lora_policy, tiny_config
from workbench.engine.rundir import RunDir
from workbench.engine.run import Run
from workbench.errors import ConfigError

trl = pytest.importorskip("trl", reason="TRL 1.9.2 is the reference implementation: "
                                        "pip install -e '.[dev]'")


def grpo_config(model_dir, data, runs_dir, rewards=("json_valid", "max_words:6=2"), **train):
    return tiny_config(model_dir, data, runs_dir,
                       train={"method": "grpo", "max_steps": 4, "batch_size": 8, "log_every": 1,
                              "learning_rate": 1e-2, "save_every": 2, **train},
                       grpo={"rewards": list(rewards), "num_generations": 4,
                             "max_completion_length": 12},
                       eval={"general_text": None})


@pytest.mark.parametrize("rewards,expected", [
    # two groups of four; std with Bessel's correction; + 1e-4 as TRL
    ([1, 0, 0, 0, 2, 2, 2, 2], [0.75 / (0.5 + 1e-4), -0.25 / (0.5 + 1e-4), -0.25 / (0.5 + 1e-4),
                                -0.25 / (0.5 + 1e-4), 0, 0, 0, 0]),
    ([1, 2, 3, 4, 0, 0, 0, 0], [(r - 2.5) / (math.sqrt(5 / 3) + 1e-4) for r in (1, 2, 3, 4)]
     + [0, 0, 0, 0]),
    ([1, float("nan"), 0, 0, float("nan")] + [float("nan")] * 3,  # unscorable answers: 0
     [(1 - 1 / 3) / (math.sqrt(1 / 3) + 1e-4), 0, -(1 / 3) / (math.sqrt(1 / 3) + 1e-4),
      -(1 / 3) / (math.sqrt(1 / 3) + 1e-4), 0, 0, 0, 0]),
])
def test_group_relative_advantages_on_fixed_rewards(rewards, expected):
    import torch

    from workbench.engine.grpo import group_advantages

    found = group_advantages(torch.tensor(rewards, dtype=torch.float32), 4)
    assert found.tolist() == pytest.approx(expected, abs=1e-6)


@pytest.fixture
def tiny_policy(tiny_model_dir):
    return lora_policy(tiny_model_dir, seed=3)


@pytest.mark.parametrize("loss,beta", [("grpo", 0.0), ("bnpo", 0.0), ("dr_grpo", 0.0),
                                       ("grpo", 0.04)])
def test_the_loss_equals_trl_on_a_fixed_rollout(tiny_policy, tmp_path, loss, beta):
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from workbench.config import GrpoSettings
    from workbench.engine.grpo import grpo_loss, sample_rollout, token_logps

    model, tokenizer = tiny_policy
    settings = GrpoSettings(rewards=["max_words:6"], num_generations=4,
                            max_completion_length=10, temperature=0.7, beta=beta, loss=loss)
    batch = {"messages": [[{"role": "user", "content": "Two lattes to Lyon"}],
                          [{"role": "user", "content": "A much longer message about lamps"}]],
             "raw": [None, None], "prompts": ["a", "b"], "columns": {}}
    rollout = sample_rollout(model, tokenizer, batch, settings, [], chat=True, seed=0)
    rollout.advantages = torch.tensor([1.0, -0.5, 0.25, -0.75, 0.5, 0.0, -1.0, 0.5])
    # answers of several lengths, as if each had stopped at its end token (padding after)
    lengths = torch.tensor([10, 3, 7, 1, 5, 10, 2, 8])
    rollout.completion_mask = (torch.arange(10).unsqueeze(0) < lengths.unsqueeze(1)).long()
    rollout.attention_mask = torch.cat([rollout.attention_mask[:, :rollout.prompt_width],
                                        rollout.completion_mask], dim=1)
    model.train()  # dropout 0: the same numbers, and gradients as in training
    logps = token_logps(model, rollout, settings.temperature)
    reference = None
    if beta:
        with torch.no_grad(), model.disable_adapter():
            reference = token_logps(model, rollout, settings.temperature)
    ours, kl = grpo_loss(logps, rollout, settings, reference)
    args = GRPOConfig(output_dir=str(tmp_path), bf16=False, use_cpu=True, num_generations=4,
                      per_device_train_batch_size=4, max_completion_length=10, temperature=0.7,
                      beta=beta, loss_type=loss, report_to="none")
    theirs = GRPOTrainer(model=model, reward_funcs=[lambda prompts, completions, **_: [0.0] * len(
        completions)], args=args, processing_class=tokenizer,
        train_dataset=Dataset.from_dict({"prompt": ["a", "b"]}))
    width = rollout.prompt_width
    inputs = {"prompt_ids": rollout.input_ids[:, :width],
              "prompt_mask": rollout.attention_mask[:, :width],
              "completion_ids": rollout.input_ids[:, width:],
              "completion_mask": rollout.completion_mask, "advantages": rollout.advantages,
              "num_items_in_batch": rollout.completion_mask.sum()}
    if beta:
        inputs["ref_per_token_logps"] = reference
    theirs.current_gradient_accumulation_steps = 1  # set by TRL's training loop; no accumulation
    expected = theirs._compute_loss(model, inputs)
    assert ours.item() == pytest.approx(expected.item(), abs=1e-6)
    ours.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters()
               if "lora_" in n)
    if beta:
        assert kl.item() > 0


def test_a_grpo_run_logs_rewards_and_rollouts_and_finishes(tiny_model_dir, orders_subset,
                                                            tmp_path):
    result = Run(grpo_config(tiny_model_dir, orders_subset, tmp_path / "runs")).execute()
    assert result.status == "finished" and result.summary["method"] == "grpo"
    rows = [r for r in RunDir(result.run_dir).metrics() if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for key in ("reward", "reward_std", "reward/json_valid", "reward/max_words:6",
                "completion_length", "truncated", "zero_std_groups",
                "rollout_tokens_per_second"):
        assert key in rows[-1], key
    assert all(0 <= r["truncated"] <= 1 and r["completion_length"] <= 12 for r in rows)
    rollouts = [json.loads(l) for l in (result.run_dir / "rollouts.jsonl").read_text()
                .splitlines()]
    assert len(rollouts) == 4 * 8 and {"prompt", "completion", "reward"} <= set(rollouts[0])
    env = json.loads((result.run_dir / "environment.json").read_text())
    assert [f["name"] for f in env["reward_check"]["functions"]] == ["json_valid",
                                                                     "max_words:6"]


def test_a_grpo_run_accumulates_with_gradient_checkpointing(tiny_model_dir, orders_subset,
                                                             tmp_path):
    """The workshop profile's memory savers: one prompt's group per pass, two passes a step,
    and gradient checkpointing in the passes (sampling still uses the KV cache)."""
    config = grpo_config(tiny_model_dir, orders_subset, tmp_path / "runs", max_steps=2,
                         batch_size=4, grad_accum=2, gradient_checkpointing=True, save_every=0)
    result = Run(config).execute()
    rows = [r for r in RunDir(result.run_dir).metrics() if "loss" in r]
    assert result.status == "finished" and [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) and "reward" in r and r["grad_norm"] is not None
               for r in rows)


def test_a_grpo_run_resumes_and_continues(tiny_model_dir, orders_subset, tmp_path):
    from workbench.events import Control, StepLogged

    control = Control()

    def stop_after_1(event):  # logged at step 1: honoured at the end of step 2
        if isinstance(event, StepLogged) and event.step == 1:
            control.stop()

    first = Run(grpo_config(tiny_model_dir, orders_subset, tmp_path / "runs"),
                sinks=[stop_after_1], control=control).execute()
    assert first.status == "stopped" and first.summary["step"] == 2
    resumed = Run.resume(first.run_dir).execute()
    assert resumed.status == "finished" and resumed.summary["step"] == 4
    steps = [r["step"] for r in RunDir(first.run_dir).metrics() if "loss" in r]
    assert steps == [1, 2, 3, 4]


def test_the_config_refuses_indivisible_batches_with_the_numbers():
    with pytest.raises(ConfigError) as refused:
        tiny_config("m", "d.jsonl", "runs", train={"method": "grpo", "batch_size": 6},
                    grpo={"rewards": ["json_valid"], "num_generations": 4})
    (problem,) = refused.value.problems
    assert problem.key == "train.batch_size"
    assert "train.batch_size 6 is not a multiple of grpo.num_generations 4" in problem.message
    assert "use 4 or 8" in problem.message
    with pytest.raises(ConfigError, match="needs at least one reward function"):
        tiny_config("m", "d.jsonl", "runs", train={"method": "grpo", "batch_size": 4})


BROKEN = {
    "raises": ("def f(prompts, completions, **kw):\n    raise KeyError('answer')\n",
               "reward 'f' (broken_raises:f) raised KeyError"),
    "short": ("def f(prompts, completions, **kw):\n    return [1.0]\n",
              "returned 1 values for 16 answers"),  # the check: 4 prompts x 4
    "strings": ("def f(prompts, completions, **kw):\n    return ['good'] * len(completions)\n",
                "returned 'good' for the answer"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_the_reward_bench_names_a_broken_function_and_training_refuses_it(
        name, tiny_model_dir, orders_subset, tmp_path, monkeypatch):
    source, words = BROKEN[name]
    (tmp_path / f"broken_{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = grpo_config(tiny_model_dir, orders_subset, tmp_path / "runs",
                         rewards=("max_words:6", f"broken_{name}:f"))
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Run(config).execute()


def test_a_constant_reward_is_reported_and_training_refuses_when_all_are(
        tiny_model_dir, orders_subset, tmp_path, monkeypatch):
    from workbench.backends.hf import HFBackend
    from workbench.data import load_splits
    from workbench.data.rollouts import prompt_rows
    from workbench.engine.reward_check import check_rewards

    (tmp_path / "always.py").write_text("def zero(prompts, completions, **kw):\n"
                                        "    return [0.0] * len(completions)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = grpo_config(tiny_model_dir, orders_subset, tmp_path / "runs",
                         rewards=("always:zero", "max_words:6"))
    bundle = HFBackend().load(config)
    rows = prompt_rows(load_splits(config.data, 0).train)
    report = check_rewards(bundle.model, bundle.tokenizer, rows, config)
    zero, short = report.functions
    assert zero.constant and zero.mean == 0 and zero.zero_variance_groups == 1.0
    assert not report.all_constant  # max_words varies: training may go on
    assert "always" not in report.summary() or "<- constant: no learning signal" in report.summary()
    only_zero = grpo_config(tiny_model_dir, orders_subset, tmp_path / "runs",
                            rewards=("always:zero",))
    with pytest.raises(ConfigError, match="every reward is constant within every group"):
        Run(only_zero).execute()


def test_workbench_rewards_check_prints_the_report(tiny_model_dir, orders_subset, tmp_path):
    import os

    (tmp_path / "lengthy.py").write_text("def score(prompts, completions, **kw):\n"
                                         "    return [len(c) % 5 for c in completions]\n")

    def check(rewards: str):
        config_file = tmp_path / "grpo.yaml"
        config_file.write_text(
            f"model: {{name: {tiny_model_dir}}}\ndata: {{path: {orders_subset}}}\n"
            "train: {method: grpo, batch_size: 4}\n"
            f"grpo: {{rewards: {rewards}, num_generations: 2, max_completion_length: 8}}\n")
        return subprocess.run([sys.executable, "-m", "workbench", "rewards", "check",
                               str(config_file), "--prompts", "2"], capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                  filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))})

    done = check("[json_valid, 'lengthy:score']")
    assert done.returncode == 0, done.stderr
    assert "reward check: 4 answers (2 prompts x 2)" in done.stdout
    assert "json_valid (weight 1): mean 0.000" in done.stdout
    assert "<- constant: no learning signal" in done.stdout  # json_valid's line
    assert "score (weight 1): mean" in done.stdout
    useless = check("[json_valid]")
    assert useless.returncode == 2 and "every reward is constant" in useless.stderr
    assert "Traceback" not in useless.stderr
