"""The runs in a runs folder: their status and final metrics, and loss curves overlaid."""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets

from workbench.engine.rundir import RunDir, list_runs
from workbench.ui.render import overlay_png, runs_table_html


class HistoryPanel(widgets.VBox):
    def __init__(self, runs_dir: str | Path = "runs", **kwargs):
        super().__init__(**kwargs)
        self.runs_dir = Path(runs_dir)
        self.table = widgets.HTML()
        self.select = widgets.SelectMultiple(description="compare", rows=6,
                                             layout=widgets.Layout(width="40em"))
        self.chart = widgets.Image(format="png")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.select.observe(lambda _: self.draw(), names="value")
        self.children = [self.refresh_button, self.table, self.select, self.chart]
        self.refresh()

    def refresh(self, runs_dir: str | Path | None = None) -> None:
        if runs_dir is not None:
            self.runs_dir = Path(runs_dir)
        runs = list_runs(self.runs_dir)
        self.table.value = runs_table_html(runs)
        chosen = [name for name in self.select.value if any(r["run"] == name for r in runs)]
        self.select.options = [r["run"] for r in runs]
        self.select.value = tuple(chosen)
        self.draw()

    def draw(self) -> None:
        curves = {}
        for name in self.select.value:
            rows = [r for r in RunDir(self.runs_dir / name).metrics() if "loss" in r]
            curves[name] = ([r["step"] for r in rows], [r["loss"] for r in rows])
        self.chart.value = overlay_png(curves)
