"""Blind A/B rating: two models answer the same prompts, shown as A and B in an order drawn
at random per prompt; a person picks the better one (or tie, or both bad).

    panel = RatingPanel.between("runs/demo-...")                 # tuned vs its base model
    panel = RatingPanel.between("runs/a-...", "runs/b-...")      # run vs run
    panel = RatingPanel.between("runs/a-...", checkpoint=20, other_checkpoint=60)
    panel                                                         # in a notebook
    panel.rate("a")                                               # the same from code

Each judgement is appended to the first run's `ratings.jsonl` the moment it is made
(`evaluation/ratings.py` has the format), so closing the tab loses nothing; which model
stood behind A is recorded with it, and shown after the choice. The win rate counts every
rating of this pair in the file, with a 95% Wilson interval. Keyboard: click the key box,
then press a, b, t (tie) or x (both bad).
"""

from __future__ import annotations

import html
import random
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets

from workbench.evaluation.ratings import RATINGS, append_rating, rating_row, read_ratings, tally

KEYS = {"a": "a", "b": "b", "t": "tie", "x": "both_bad"}
MAX_PROMPTS = 12


@dataclass(frozen=True)
class Contender:
    """One side of a comparison: a loaded run, with its adapter on or off."""

    label: str
    model: object  # a LoadedRun
    base: bool = False

    def answer(self, prompts: list[str], max_new_tokens: int | None = None) -> list[str]:
        return self.model.generate(prompts, base=self.base, max_new_tokens=max_new_tokens,
                                   temperature=0.0)


class RatingPanel(widgets.VBox):
    def __init__(self, first: Contender, second: Contender, prompts: list[str], path,
                 seed: int | None = None, max_new_tokens: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if first.label == second.label:
            second = Contender(f"{second.label} (2)", second.model, second.base)
        self.first, self.second, self.path = first, second, Path(path)
        self.prompts = [p for p in dict.fromkeys(prompts) if p.strip()]
        self.max_new_tokens = max_new_tokens
        self._random = random.Random(seed)
        self.index = 0
        self.answers: dict[str, list[str]] = {}
        self.order: list[bool] = []  # per prompt: True when the second model is shown as A
        self.heading = widgets.HTML()
        self.prompt_box = widgets.HTML()
        self.answer_a, self.answer_b = widgets.HTML(), widgets.HTML()
        self.buttons = {choice: widgets.Button(description=text, button_style=style)
                        for choice, text, style in (("a", "A better", "info"),
                                                    ("b", "B better", "info"),
                                                    ("tie", "Tie", ""),
                                                    ("both_bad", "Both bad", "warning"))}
        for choice, button in self.buttons.items():
            button.on_click(lambda _, c=choice: self.rate(c))
            button.add_class(f"workbench-rate-{choice}")
        self.key_box = widgets.Text(placeholder="keys: click here, then a, b, t (tie), x (both bad)",
                                 continuous_update=True, layout=widgets.Layout(width="24em"))
        self.key_box.add_class("workbench-rate-keys")
        self.key_box.observe(self._key, names="value")
        self.notice, self.score = widgets.HTML(), widgets.HTML()
        self.add_class("workbench-rate")
        cell = widgets.Layout(width="50%", border="1px solid #d9d9d9", padding="4px")
        self.children = [self.heading, self.prompt_box,
                         widgets.HBox([widgets.VBox([widgets.HTML("<b>A</b>"), self.answer_a],
                                                    layout=cell),
                                       widgets.VBox([widgets.HTML("<b>B</b>"), self.answer_b],
                                                    layout=cell)]),
                         widgets.HBox(list(self.buttons.values()) + [self.key_box]),
                         self.notice, self.score]
        self._show()

    # -- building from run folders ----------------------------------------------------------

    @classmethod
    def between(cls, run, other=None, *, checkpoint: int | None = None,
                other_checkpoint: int | None = None, prompts: list[str] | None = None,
                seed: int | None = None, path=None) -> "RatingPanel":
        """Compare a run with its base model (`other` None or "base"), with another run
        folder, or with another checkpoint of itself (`other_checkpoint`). Prompts default
        to the run's sample prompts and held-out prompts."""
        from workbench.engine.loaded import load_run

        model = load_run(run, checkpoint=checkpoint)
        first = Contender(_label(model, checkpoint), model)
        if other_checkpoint is not None and other in (None, "base"):
            second_model = load_run(run, checkpoint=other_checkpoint)
            second = Contender(_label(second_model, other_checkpoint), second_model)
        elif other in (None, "base"):
            second = Contender("base", model, base=True)
        else:
            second_model = load_run(other, checkpoint=other_checkpoint)
            second = Contender(_label(second_model, other_checkpoint), second_model)
        folder = model.run_dir or model.adapter
        return cls(first, second, prompts or default_prompts(model), path or folder / RATINGS,
                   seed=seed)

    # -- rating -----------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.index >= len(self.prompts)

    def current(self) -> dict | None:
        """The prompt on screen and who is A and B (hidden from the screen until rated)."""
        if self.done:
            return None
        self._prepare()
        swap = self.order[self.index]
        a, b = (self.second, self.first) if swap else (self.first, self.second)
        prompt = self.prompts[self.index]
        return {"prompt": prompt, "a": (a.label, self.answers[a.label][self.index]),
                "b": (b.label, self.answers[b.label][self.index])}

    def rate(self, choice: str) -> dict | None:
        """Record `choice` (a, b, tie, both_bad) for the prompt on screen and move on; returns
        the row written (None when every prompt is rated)."""
        shown = self.current()
        if shown is None:
            return None
        row = rating_row(shown["prompt"], shown["a"], shown["b"], choice)
        append_rating(self.path, row)
        self.index += 1
        verdict = {"a": "A", "b": "B", "tie": "a tie", "both_bad": "both bad"}[choice]
        self.notice.value = html.escape(f"saved: {verdict}. A was {shown['a'][0]}, B was "
                                        f"{shown['b'][0]}.")
        self._show()
        return row

    def tally(self):
        """The first model against the second over every rating of this pair in the file."""
        return tally(read_ratings(self.path), self.first.label, self.second.label)

    # -- display ----------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Both models answer every prompt once (batched), on first need."""
        if self.answers:
            return
        self.notice.value = "<i>both models are answering…</i>"
        for side in (self.first, self.second):
            self.answers[side.label] = side.answer(self.prompts, self.max_new_tokens)
        self.order = [self._random.random() < 0.5 for _ in self.prompts]
        self.notice.value = ""

    def _show(self) -> None:
        total = len(self.prompts)
        self.score.value = html.escape(self.tally().describe())
        for button in self.buttons.values():
            button.disabled = self.done
        self.key_box.disabled = self.done
        if self.done:
            self.heading.value = (f"<b>All {total} prompts rated</b> (saved in "
                                  f"{html.escape(str(self.path))})")
            self.prompt_box.value = self.answer_a.value = self.answer_b.value = ""
            return
        shown = self.current()
        self.heading.value = (f"<b>Prompt {self.index + 1} of {total}</b>: which answer is "
                              "better? The models are hidden until you choose.")
        self.prompt_box.value = f"<pre style='white-space:pre-wrap'>{_text(shown['prompt'])}</pre>"
        self.answer_a.value = _answer(shown["a"][1])
        self.answer_b.value = _answer(shown["b"][1])

    def _key(self, change) -> None:
        typed = (change["new"] or "").strip().lower()
        if not typed:
            return
        self.key_box.value = ""
        choice = KEYS.get(typed[-1])
        if choice is not None:
            self.rate(choice)

    def close(self) -> None:
        for child in list(self.buttons.values()) + [self.key_box, self.heading, self.prompt_box,
                                                    self.answer_a, self.answer_b, self.notice,
                                                    self.score]:
            child.close()
        super().close()


def default_prompts(model, limit: int = MAX_PROMPTS) -> list[str]:
    """A run's sample prompts, then its held-out prompts (what it never trained on)."""
    from workbench.data.splits import load_splits
    from workbench.errors import DataError
    from workbench.evaluation.cases import cases_from

    config = model.config
    prompts = list(config.sample.prompts)
    if config.data.path or config.data.train_path:
        try:
            held_out = load_splits(config.data, config.train.seed).eval
        except DataError:  # the data moved since: the sample prompts must do
            held_out = []
        prompts += [case.prompt for case in cases_from(held_out)]
    return list(dict.fromkeys(prompts))[:limit]


def _label(model, checkpoint) -> str:
    return model.name + (f"@{checkpoint}" if checkpoint is not None else "")


def _text(value: str) -> str:
    return html.escape(value) if value else '<i style="color:#969696">(empty)</i>'


def _answer(value: str) -> str:
    return f"<pre style='white-space:pre-wrap;margin:0'>{_text(value)}</pre>"
