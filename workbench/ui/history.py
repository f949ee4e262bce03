"""The runs in a runs folder: their status and final metrics, loss curves overlaid, and a
button that opens a finished run in the Chat tab."""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets

from workbench.engine.rundir import RunDir, list_runs
from workbench.plots.loss import overlay_png
from workbench.ui.render import runs_table_html


class HistoryPanel(widgets.VBox):
    def __init__(self, runs_dir: str | Path = "runs", on_open=None, **kwargs):
        """`on_open(run_dir)` is called by "Chat with this run" (none: no such button)."""
        super().__init__(**kwargs)
        self.runs_dir = Path(runs_dir)
        self.table = widgets.HTML()
        self.select = widgets.SelectMultiple(description="compare", rows=6,
                                             layout=widgets.Layout(width="40em"))
        self.chart = widgets.Image(format="png")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.open_button = widgets.Button(description="Chat with this run", icon="comments",
                                          tooltip="load the selected run's adapter and talk "
                                          "to it in the Chat tab", disabled=True)
        self._on_open = on_open
        self.open_button.on_click(lambda _: self.open_selected())
        self.select.observe(lambda _: self._selected(), names="value")
        buttons = [self.refresh_button] + ([self.open_button] if on_open else [])
        self.children = [widgets.HBox(buttons), self.table, self.select, self.chart]
        self.refresh()

    def refresh(self, runs_dir: str | Path | None = None) -> None:
        if runs_dir is not None:
            self.runs_dir = Path(runs_dir)
        runs = list_runs(self.runs_dir)
        self.table.value = runs_table_html(runs)
        chosen = [name for name in self.select.value if any(r["run"] == name for r in runs)]
        self.select.options = [r["run"] for r in runs]
        self.select.value = tuple(chosen)
        self._selected()

    def open_selected(self) -> None:
        """Open the first selected run (the one the button names)."""
        if self.select.value and self._on_open is not None:
            self._on_open(self.runs_dir / self.select.value[0])

    def _selected(self) -> None:
        self.open_button.disabled = not self.select.value
        if self.select.value:
            self.open_button.description = f"Chat with {self.select.value[0]}"[:40]
        else:
            self.open_button.description = "Chat with this run"
        self.draw()

    def draw(self) -> None:
        curves = {}
        for name in self.select.value:
            rows = [r for r in RunDir(self.runs_dir / name).metrics() if "loss" in r]
            curves[name] = ([r["step"] for r in rows], [r["loss"] for r in rows])
        self.chart.value = overlay_png(curves, empty="select runs to compare")
