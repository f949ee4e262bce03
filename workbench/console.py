"""A console sink: one readable line per event, for the CLI and headless runs."""

from __future__ import annotations

import sys

from workbench.evaluation.general import flagged
from workbench.events import (CheckpointSaved, EvalLogged, EvalScored, RolloutSampled, RunEnded,
                              RunPaused, RunResumed, RunStarted, SampleGenerated, StepLogged)
from workbench.secrets import redact


class ConsoleSink:
    def __init__(self, stream=None, show_samples: bool = True):
        self.stream = stream or sys.stdout
        self.show_samples = show_samples

    def __call__(self, event) -> None:
        line = self.format(event)
        if line:
            print(redact(line), file=self.stream, flush=True)

    def format(self, event) -> str | None:
        if isinstance(event, RunStarted):
            return (f"run {event.run_dir}: {event.train_examples} training / {event.eval_examples}"
                    f" held-out examples, {event.total_steps} steps on {event.device} "
                    f"({event.backend}){_data_warnings(event)}")
        if isinstance(event, StepLogged):
            grad = f"  grad {event.grad_norm:.2f}" if event.grad_norm is not None else ""
            return (f"step {event.step:>5}/{event.total_steps}  loss {event.loss:.4f}  "
                    f"lr {event.learning_rate:.2e}{grad}{_rewards(event.metrics)}  "
                    f"{event.tokens_per_second:,.0f} tok/s  {event.elapsed_seconds:,.0f}s")
        if isinstance(event, EvalLogged):
            if event.metrics:  # a preference run: its loss is no language-model loss
                return (f"eval at step {event.step}: loss {event.eval_loss:.4f}"
                        f"{_rewards(event.metrics, 'eval_')}")
            return (f"eval at step {event.step}: loss {event.eval_loss:.4f}  "
                    f"perplexity {event.perplexity:.2f}")
        if isinstance(event, EvalScored):
            return scores_line(event)
        if isinstance(event, RolloutSampled) and self.show_samples and event.step % 10 == 1:
            best = max(range(len(event.rewards)), key=lambda i: event.rewards[i]
                       if event.rewards[i] == event.rewards[i] else float("-inf"))
            return (f"sampled (step {event.step}), the best answer of the rollout, reward "
                    f"{event.rewards[best]:.2f}:\n  > {_short(event.prompts[best])}\n    "
                    f"{_short(event.completions[best], 200)}")
        if isinstance(event, SampleGenerated) and self.show_samples:
            who = ("base model" if not event.adapter else
           "the adapter this run continues" if event.step == 0 else f"step {event.step}")
            lines = [f"samples ({who}):"]
            for prompt, answer in zip(event.prompts, event.completions):
                lines.append(f"  > {_short(prompt)}\n    {_short(answer, 200)}")
            return "\n".join(lines)
        if isinstance(event, CheckpointSaved):
            return f"checkpoint saved: {event.path}"
        if isinstance(event, RunPaused):
            return f"paused at step {event.step}"
        if isinstance(event, RunResumed):
            return f"resumed at step {event.step}"
        if isinstance(event, RunEnded):
            if event.status == "failed":
                return f"run failed at step {event.step}: {event.error}\n  folder: {event.run_dir}"
            loss = event.summary.get("final_loss")
            evl = event.summary.get("final_eval_loss")
            tail = f", eval loss {evl:.4f}" if evl is not None else ""
            loss_text = f"loss {loss:.4f}" if loss is not None else "no loss logged"
            return f"run {event.status} at step {event.step}: {loss_text}{tail}\n  folder: {event.run_dir}"
        return None


def _rewards(metrics: dict, prefix: str = "") -> str:
    """`  reward acc 0.75 margin +0.52 (kl 0.10)` for a preference run's metrics; `  reward
    0.62 +- 0.30 (json_valid 0.80) len 21` for a reward-tuning run's."""
    if "reward" in metrics:
        parts = [f"  reward {metrics['reward']:.2f} +- {metrics.get('reward_std', 0):.2f}"]
        functions = [f"{k[7:]} {v:.2f}" for k, v in metrics.items()
                     if k.startswith("reward/") and not k.endswith("/std")]
        if len(functions) > 1:
            parts.append(f"({', '.join(functions)})")
        parts.append(f"len {metrics.get('completion_length', 0):.0f}")
        if metrics.get("kl") is not None:
            parts.append(f"kl {metrics['kl']:.3f}")
        return " ".join(parts)
    accuracy, margin = metrics.get(f"{prefix}reward_accuracy"), metrics.get(f"{prefix}reward_margin")
    text = f"  reward acc {accuracy:.2f}" if accuracy is not None else ""
    text += f" margin {margin:+.2f}" if margin is not None else ""
    kl = metrics.get(f"{prefix}kl")
    return text + (f" (kl {kl:.2f})" if kl is not None else "")


def scores_line(event: EvalScored) -> str:
    """`scores at step 20: json_equal 0.85 (24 answers, 6 s); general text loss +3.1%`."""
    who = ("base model" if not event.adapter else
           "the adapter this run continues" if event.step == 0 else f"step {event.step}")
    parts = [f"scores ({who}): " + ", ".join(f"{name} {value:.2f}" for name, value in
                                              event.scores.items())
             + f" ({event.examples} answers, {event.seconds:.0f} s)"] if event.scores else []
    if event.general_loss is not None:
        text = f"general text loss {event.general_loss:.3f}"
        if event.general_change is not None:
            text += f" ({event.general_change:+.1%} from the base model"
            text += "; a rise this large means the model forgets what it knew)" if flagged(
                event.general_change) else ")"
        parts.append(text)
    return "; ".join(parts) if event.scores else f"forgetting check ({who}): " + parts[0]


def _data_warnings(event: RunStarted) -> str:
    notes = []
    for split, stats in event.data.items():
        if not isinstance(stats, dict):
            continue
        if stats.get("truncated"):
            notes.append(f"{stats['truncated']} {split} examples cut at "
                         f"data.max_length={event.config['data']['max_length']}")
        if stats.get("dropped_nothing_trained"):
            notes.append(f"{stats['dropped_nothing_trained']} {split} examples dropped "
                         "(nothing left to train after cutting)")
    return "".join(f"\n  note: {n}" for n in notes)


def _short(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
