"""`workbench demo --method grpo`: the JSON orders again, learned from rewards, not answers.

From the base model every answer is prose, every reward is 0 and GRPO has nothing to
compare, so the demo first takes a few supervised steps (a start that is right about a
third of the time), then trains on two rewards checked by code: the answer parses as
JSON, and it equals the expected order. Measured on 2 cores (docs/benchmarks.md, row 13):
4 supervised steps, then 30 GRPO steps at 5e-4: held-out json_equal on 20 messages 0%
(base) -> 35% (start) -> 85%, the mean reward 0.25 -> 2.2 of 3, general text +0.9%,
425 s in all. `notebooks/08-rewards.ipynb` trains the same configs.
"""

from __future__ import annotations

from workbench.config import RunConfig

START_STEPS = 4
GRPO_STEPS = 30
REWARDS = ["json_valid", "json_equal=2"]

INTRO = """workbench demo --method grpo: teach SmolLM2-135M-Instruct to turn a customer message into
a JSON order from rewards: {start} supervised steps give it a start, then {steps} GRPO steps
sample 4 answers a message and push towards those that parse as JSON (1 point) and equal
the expected order (2 points). Held-out messages are scored before and after.
"""


def start_config(runs_dir: str = "runs", profile: str = "laptop", steps: int = START_STEPS,
                 model: str = "demo", data: str | None = None) -> RunConfig:
    """A few supervised steps on the orders (or `data`), nothing scored: the start GRPO
    continues."""
    raw = _demo(runs_dir, steps, profile, model, data)
    raw["train"].update(warmup_steps=2, eval_every=0, save_every=0)
    raw["sample"].update(prompts=[], every=0)
    raw["eval"].update(scorers=[], general_text=None)
    raw["output"]["name"] = "demo-grpo-start"
    return RunConfig.from_dict(raw)


def grpo_config(start_dir: str | None, runs_dir: str = "runs", max_steps: int = GRPO_STEPS,
                profile: str = "laptop", model: str = "demo", data: str | None = None,
                rewards: list[str] = tuple(REWARDS), num_generations: int = 4) -> RunConfig:
    """GRPO continuing the start's adapter (None: a fresh one on the base model): two
    messages x `num_generations` answers a step (the workshop profile: one message a pass,
    two passes), scored at the start and the end."""
    raw = _demo(runs_dir, max_steps, profile, model, data)
    if start_dir:
        raw["lora"].update(start_from=str(start_dir), start_mode="continue")
    raw["train"].update(method="grpo", learning_rate=5e-4, warmup_steps=0, scheduler="constant",
                        log_every=2, eval_every=0, save_every=10,
                        batch_size=2 * num_generations // raw["train"]["grad_accum"])
    raw["grpo"] = {"rewards": list(rewards), "num_generations": num_generations,
                   "max_completion_length": 48}
    raw["sample"].update(every=0)
    raw["output"]["name"] = "demo-grpo"
    return RunConfig.from_dict(raw)


def _demo(runs_dir: str, steps: int, profile: str, model: str, data: str | None) -> dict:
    """The supervised demo's config as a dict, on another model or dataset if given (then
    scored on that dataset's own held-out split)."""
    from workbench.demo import demo_config

    raw = demo_config(runs_dir, steps, profile).to_dict()
    raw["model"]["name"] = model
    if data:
        raw["data"]["path"] = str(data)
        raw["eval"]["data"] = None
    return raw
