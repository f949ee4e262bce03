"""Teach the model what you prefer, in the notebook: it drafts answers, you judge them, and
a preference run learns from your judgements.

    panel = FeedbackPanel(lambda: dash.chat_model(), on_train=dash.start_config)
    panel.draft()                 # two sampled answers per prompt, beside a greedy "before"
    panel.best(0, 1)              # prompt 0: the second answer is the better one
    panel.thumb(1, 0, up=False)   # prompt 1: the first answer is bad
    panel.train()                 # DPO on the pairs (KTO when there are only thumbs)
    panel.compare()               # after the run: before and after, prompt by prompt

Every judgement is appended at once to the judged run's folder: `feedback/pairs.jsonl`
({prompt, chosen, rejected}, for DPO) and `feedback/labels.jsonl` ({prompt, completion,
label}, for KTO); `keep_liked()` writes the liked answers as chat examples
(`feedback/sft.jsonl`), a dataset drafted by the model and curated by you. Training starts
a run stacked on the judged run's adapter (`lora.start_from`, continue), so the reference
is the model you judged.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import ipywidgets as widgets

from workbench.evaluation.ratings import append_rating
from workbench.ui.rate import default_prompts

FEEDBACK = "feedback"
PAIRS, LABELS, KEPT = "pairs.jsonl", "labels.jsonl", "sft.jsonl"
MAX_PROMPTS = 6


class FeedbackPanel(widgets.VBox):
    def __init__(self, model, on_train, candidates: int = 2, temperature: float = 0.8,
                 steps: int = 30, **kwargs):
        """`model()` returns the LoadedRun to judge; `on_train(config)` starts a run."""
        super().__init__(**kwargs)
        self._model, self._on_train = model, on_train
        self.candidates, self.temperature, self.steps = candidates, temperature, steps
        self.loaded = None
        self.prompts: list[str] = []
        self.answers: list[list[str]] = []  # per prompt: the sampled candidates
        self.before: list[str] = []  # per prompt: the greedy answer before training
        self.judged: dict[int, dict] = {}  # per prompt: {"best": i} and/or {"thumbs": {i: up}}
        self.folder: Path | None = None
        self.draft_button = widgets.Button(description="Draft answers", icon="pencil",
                                           button_style="primary")
        self.train_button = widgets.Button(description="Train on my feedback", icon="graduation-cap",
                                           button_style="success", disabled=True)
        self.keep_button = widgets.Button(description="Keep liked answers", icon="bookmark",
                                          tooltip="write the thumbs-up answers as chat examples "
                                          "(feedback/sft.jsonl) to train on with sft",
                                          disabled=True)
        self.compare_button = widgets.Button(description="Answer again", icon="refresh",
                                             tooltip="the trained model's answers beside the "
                                             "earlier ones", disabled=True)
        self.draft_button.on_click(lambda _: self._guard(self.draft))
        self.train_button.on_click(lambda _: self._guard(self.train))
        self.keep_button.on_click(lambda _: self._guard(self.keep_liked))
        self.compare_button.on_click(lambda _: self._guard(self.compare))
        self.notice, self.items, self.comparison = widgets.HTML(), widgets.VBox(), widgets.HTML()
        self.add_class("workbench-feedback")
        self.children = [
            widgets.HTML("<p>The model drafts two answers per prompt. Pick the better one, or "
                         "mark answers good or bad; then train on what you said.</p>"),
            widgets.HBox([self.draft_button, self.train_button, self.keep_button,
                          self.compare_button]), self.notice, self.items, self.comparison]

    # -- drafting ---------------------------------------------------------------------------

    def draft(self, prompts: list[str] | None = None) -> list[list[str]]:
        """Sample `candidates` answers per prompt (and a greedy one, the "before")."""
        self.loaded = self._model()
        self.prompts = list(prompts or default_prompts(self.loaded, MAX_PROMPTS))
        self.notice.value = "<i>the model is drafting answers…</i>"
        self.before = self.loaded.generate(self.prompts, temperature=0.0)
        drafts = [self.loaded.generate(self.prompts, temperature=self.temperature)
                  for _ in range(self.candidates)]
        self.answers = [list(dict.fromkeys(column)) for column in zip(*drafts)]
        self.judged = {}
        self.folder = (self.loaded.run_dir or self.loaded.adapter) / FEEDBACK
        self._show_items()
        self.notice.value = html.escape(f"{len(self.prompts)} prompts; judgements go to "
                                        f"{self.folder}")
        return self.answers

    # -- judging ----------------------------------------------------------------------------

    def best(self, prompt: int, answer: int) -> None:
        """Prefer `answer` of `prompt` over its other answers (DPO pairs)."""
        for other, text in enumerate(self.answers[prompt]):
            if other != answer:
                append_rating(self.folder / PAIRS, {
                    "prompt": self.prompts[prompt], "chosen": self.answers[prompt][answer],
                    "rejected": text})
        self.judged.setdefault(prompt, {})["best"] = answer
        self._after_judging()

    def thumb(self, prompt: int, answer: int, up: bool) -> None:
        """Mark one answer good or bad (KTO rows)."""
        append_rating(self.folder / LABELS, {"prompt": self.prompts[prompt],
                                             "completion": self.answers[prompt][answer],
                                             "label": up})
        self.judged.setdefault(prompt, {}).setdefault("thumbs", {})[answer] = up
        self._after_judging()

    def _after_judging(self) -> None:
        self.train_button.disabled = not self._rows(PAIRS) and not self._rows(LABELS)
        self.keep_button.disabled = not any(row["label"] for row in self._rows(LABELS))
        self._show_items()

    def _rows(self, name: str) -> list[dict]:
        path = self.folder / name if self.folder else None
        if path is None or not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]

    def keep_liked(self) -> Path:
        """The liked answers as chat examples, for an SFT run: a dataset the model drafted."""
        rows = [{"messages": [{"role": "user", "content": r["prompt"]},
                              {"role": "assistant", "content": r["completion"]}]}
                for r in self._rows(LABELS) if r["label"]]
        path = self.folder / KEPT
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                        encoding="utf-8")
        self.notice.value = html.escape(f"kept {len(rows)} liked answers in {path}")
        return path

    # -- training ---------------------------------------------------------------------------

    def train_config(self, method: str | None = None, steps: int | None = None):
        """The run that learns from the judgements: DPO on the pairs when there are any,
        else KTO on the thumbs; stacked on the judged run's adapter."""
        from workbench.config import RunConfig

        method = method or ("dpo" if self._rows(PAIRS) else "kto")
        data = self.folder / (PAIRS if method == "dpo" else LABELS)
        raw = self.loaded.config.to_dict()
        raw["lora"].update(start_from=str(self.loaded.run_dir or self.loaded.adapter),
                           start_mode="continue")
        raw["data"].update(path=str(data), train_path=None, eval_path=None, format="auto",
                           eval_fraction=0, packing=False, group_by_length=False)
        raw["train"].update(method=method, max_steps=steps or self.steps, learning_rate=5e-4,
                            warmup_steps=0, eval_every=0, save_every=0, log_every=1,
                            batch_size=min(4, raw["train"]["batch_size"]), grad_accum=1)
        raw["sample"].update(prompts=list(self.prompts), every=0)
        if not raw["eval"]["data"]:  # no held-out file: score nothing (there is no split)
            raw["eval"]["scorers"] = []
        raw["output"]["name"] = f"feedback-{method}"
        return RunConfig.from_dict(raw)

    def train(self, method: str | None = None, steps: int | None = None):
        """Start the run (through the dashboard, which charts its rewards)."""
        config = self.train_config(method, steps)
        self.compare_button.disabled = False
        self.notice.value = html.escape(f"training {config.train.method} on your feedback "
                                        f"({config.data.path}); see the Training tab")
        return self._on_train(config)

    def compare(self) -> dict[str, list[str]]:
        """The newly trained model's answers beside the ones before training."""
        now = self._model()
        after = now.generate(self.prompts, temperature=0.0)
        rows = "".join(
            f"<tr><td>{_cell(p)}</td><td>{_cell(b)}</td><td>{_cell(a)}</td></tr>"
            for p, b, a in zip(self.prompts, self.before, after))
        self.comparison.value = (
            '<table class="workbench-feedback-compare"><thead><tr><th>prompt</th><th>before '
            f"({html.escape(self.loaded.name)})</th><th>after ({html.escape(now.name)})</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>")
        return {"before": self.before, "after": after}

    # -- display ----------------------------------------------------------------------------

    def _show_items(self) -> None:
        boxes = []
        for p, (prompt, answers) in enumerate(zip(self.prompts, self.answers)):
            judged = self.judged.get(p, {})
            rows = [widgets.HTML(f"<b>{p + 1}.</b> <pre style='white-space:pre-wrap;"
                                 f"display:inline'>{_cell(prompt)}</pre>")]
            for a, answer in enumerate(answers):
                thumbs = judged.get("thumbs", {})
                mark = {True: " 👍", False: " 👎"}.get(thumbs.get(a), "")
                star = " ★ best" if judged.get("best") == a else ""
                best = widgets.Button(description="Better", layout=widgets.Layout(width="6em"),
                                      button_style="info")
                up = widgets.Button(description="👍", layout=widgets.Layout(width="3.5em"))
                down = widgets.Button(description="👎", layout=widgets.Layout(width="3.5em"))
                best.add_class("workbench-feedback-best")
                best.on_click(lambda _, p=p, a=a: self._guard(lambda: self.best(p, a)))
                up.on_click(lambda _, p=p, a=a: self._guard(lambda: self.thumb(p, a, True)))
                down.on_click(lambda _, p=p, a=a: self._guard(lambda: self.thumb(p, a, False)))
                text = widgets.HTML(f"<pre style='white-space:pre-wrap;margin:0'>{_cell(answer)}"
                                    f"</pre><b>{html.escape(mark + star)}</b>",
                                    layout=widgets.Layout(width="60%"))
                rows.append(widgets.HBox([best, up, down, text]))
            boxes.append(widgets.VBox(rows, layout=widgets.Layout(border="1px solid #d9d9d9",
                                                                  padding="4px",
                                                                  margin="2px 0")))
        self.items.children = boxes

    def _guard(self, action) -> None:
        from workbench.errors import WorkbenchError

        try:
            action()
        except WorkbenchError as exc:
            self.notice.value = f'<span style="color:#de2d26">{html.escape(str(exc))}</span>'


def _cell(value: str) -> str:
    return html.escape(value) if value else '<i style="color:#969696">(empty)</i>'
