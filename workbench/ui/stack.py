"""Sliders over an AdapterStack: one weight per adapter and the combination method; each
change recombines the adapters and answers the prompts again, beside the answers of the
base model and of each adapter alone (computed once, they do not change).

    panel = StackPanel(AdapterStack([run_a, run_b]), prompts=["Two lattes to Lyon"])
    panel                        # in a notebook
    panel.set(weights=[1.0, 0.5], method="cat")   # the same from code
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from workbench.export.stack import BASE, COMBINED, METHODS, NEEDS_DENSITY


class StackPanel(widgets.VBox):
    def __init__(self, stack, prompts: list[str], max_new_tokens: int = 48,
                 weights: list[float] | None = None, method: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self._quiet = False  # set() changes several controls, then answers once
        self.stack, self.max_new_tokens = stack, max_new_tokens
        ranks = {info.rank for info in stack.adapters}
        method = method or ("linear" if len(ranks) == 1 else "cat")
        weights = weights or [1.0] * len(stack.labels)
        self.sliders = [widgets.FloatSlider(value=w, min=-1.0, max=2.0, step=0.05,
                                            description=label, continuous_update=False,
                                            style={"description_width": "initial"},
                                            layout=widgets.Layout(width="32em"))
                        for label, w in zip(stack.labels, weights)]
        self.method = widgets.Dropdown(options=METHODS, value=method, description="method",
                                       tooltip="cat: the exact weighted sum; linear: mixes A "
                                       "and B separately (same ranks); svd: the sum cut to "
                                       "a rank; ties / dare_*: prune each update to `density`")
        self.density = widgets.FloatSlider(value=0.5, min=0.05, max=1.0, step=0.05,
                                           description="density", continuous_update=False)
        self.prompt_box = widgets.Textarea(value="\n".join(prompts), rows=max(3, len(prompts)),
                                           layout=widgets.Layout(width="40em"),
                                           description="prompts")
        self.answer_button = widgets.Button(description="Answer again", icon="refresh")
        self.notice = widgets.HTML()
        self.table = widgets.HTML()
        self.answers: dict[str, list[str]] = {}
        self._fixed_for: tuple = ()
        for control in self.sliders + [self.method, self.density]:
            control.observe(lambda _: self.update(), names="value")
        self.answer_button.on_click(lambda _: self.update(refresh=True))
        self.children = [widgets.HBox([widgets.VBox(self.sliders),
                                       widgets.VBox([self.method, self.density])]),
                         widgets.HBox([self.prompt_box, self.answer_button]),
                         self.notice, self.table]
        self.update()

    @property
    def prompts(self) -> list[str]:
        return [line.strip() for line in self.prompt_box.value.splitlines() if line.strip()]

    def set(self, weights: list[float] | None = None, method: str | None = None,
            density: float | None = None) -> dict[str, list[str]]:
        """Change several controls at once, answer once; returns the answers by model."""
        self._quiet = True
        try:
            for slider, weight in zip(self.sliders, weights or []):
                slider.value = weight
            if method is not None:
                self.method.value = method
            if density is not None:
                self.density.value = density
        finally:
            self._quiet = False
        return self.update()

    def update(self, refresh: bool = False) -> dict[str, list[str]]:
        """Recombine with the current controls and answer; the base model and single adapters
        answer again only when the prompts change (or `refresh`)."""
        from workbench.errors import WorkbenchError

        if self._quiet:
            return self.answers
        self.density.disabled = self.method.value not in NEEDS_DENSITY
        prompts = self.prompts
        try:
            if refresh or tuple(prompts) != self._fixed_for:
                fixed = [BASE] + self.stack.labels
                self.answers = self.stack.answers(prompts, which=fixed,
                                                  max_new_tokens=self.max_new_tokens)
                self._fixed_for = tuple(prompts)
            self.stack.combine([s.value for s in self.sliders], self.method.value,
                               self.density.value)
            self.answers[COMBINED] = self.stack.generate(prompts, COMBINED,
                                                         max_new_tokens=self.max_new_tokens)
        except WorkbenchError as exc:
            self.notice.value = f'<span style="color:#de2d26">{html.escape(str(exc))}</span>'
            self.answers.pop(COMBINED, None)
        else:
            self.notice.value = html.escape(self.describe())
        self.table.value = answers_html(prompts, self.answers)
        return self.answers

    def describe(self) -> str:
        weights = ", ".join(f"{s.description} x {s.value:g}" for s in self.sliders)
        density = f", density {self.density.value:g}" if not self.density.disabled else ""
        return f"combined = {self.method.value}({weights}{density})"

    def close(self) -> None:
        for child in self.sliders + [self.method, self.density, self.prompt_box,
                                     self.answer_button, self.notice, self.table]:
            child.close()
        super().close()


def answers_html(prompts: list[str], answers: dict[str, list[str]]) -> str:
    """A table: one row per prompt, one column per model (escaped: model text is untrusted)."""
    columns = list(answers)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["prompt"] + columns)
    rows = []
    for index, prompt in enumerate(prompts):
        cells = [prompt] + [answers[c][index] if index < len(answers[c]) else ""
                            for c in columns]
        rows.append("<tr>" + "".join(
            f'<td style="vertical-align:top;text-align:left;white-space:pre-wrap">'
            f"{html.escape(cell)}</td>" for cell in cells) + "</tr>")
    return (f'<table class="workbench-stack"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")
