"""The dashboard's live chart: training loss (raw and smoothed), held-out loss, task scores
(eval.scorers, the base model's dashed), the forgetting check, learning rate and grad
norm, redrawn from the event history as a run goes."""

from __future__ import annotations

from workbench.plots import SMOOTH_FROM, empty_note, figure_png, show_axes, smooth, thin

SCORE_COLOURS = ("#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#de2d26")


class LiveChart:
    """Six panels in three rows. The figure and its fixed lines are made once; a redraw only
    swaps the data and renders the PNG, about a third of the cost of rebuilding the figure
    (100 ms vs 330 ms measured). A panel with no data yet says so instead of showing an
    empty axis."""

    PANELS = (("training loss", "#3182bd"), ("held-out loss", "#e6550d"),
              ("scores (dashed: base model) or reward accuracy", None), ("general text loss, change from base", "#de2d26"),
              ("learning rate", "#31a354"), ("grad norm", "#756bb1"))
    WAITING = ("waiting for the first logged step", "no held-out loss yet (set train.eval_every)",
               "no scores yet (eval.scorers, at each evaluation)",
               "no forgetting check yet (at each evaluation)",
               "waiting for the first logged step", "waiting for the first logged step")

    def __init__(self):
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator, PercentFormatter

        self.figure = Figure(figsize=(9, 7), dpi=80)
        self.axes = list(self.figure.subplots(3, 2).ravel())
        self.lines, self.waiting = [], []
        for axes, (label, colour), waiting in zip(self.axes, self.PANELS, self.WAITING):
            axes.set_title(label, fontsize=9)
            axes.grid(alpha=0.3)
            axes.tick_params(labelsize=8)
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
            marker = "o" if "held-out" in label or "general" in label else None
            self.lines.append(axes.plot([], [], color=colour, linewidth=1.2, marker=marker,
                                        markersize=3)[0] if colour else None)
            self.waiting.append(empty_note(axes, waiting))
        self.score_axes, self.general_axes = self.axes[2], self.axes[3]
        self.score_axes.set_ylim(-0.05, 1.05)
        self.general_axes.yaxis.set_major_formatter(PercentFormatter(1.0))
        # learning rates such as 0.0002 would be cut at the figure's left edge
        self.axes[4].ticklabel_format(axis="y", style="sci", scilimits=(0, 0), useOffset=False)
        self.general_axes.axhline(0, color="#bdbdbd", linewidth=0.8)
        self.score_lines: dict = {}  # scorer -> (its line, the base model's level)
        self.smoothed = self.axes[0].plot([], [], color="#3182bd", linewidth=2)[0]
        self.figure.subplots_adjust(left=0.07, right=0.98, bottom=0.05, top=0.92, hspace=0.5,
                                    wspace=0.2)

    def png(self, history: dict, title: str = "") -> bytes:
        """history holds lists: step, loss, learning_rate, grad_norm, eval_step, eval_loss,
        general_step, general_change; and dicts scores (name -> (steps, values): each
        scorer, or a preference run's reward accuracy) and base_scores (scorer -> the base
        model's score)."""
        steps, losses = history["step"], history["loss"]
        norms = [(s, n) for s, n in zip(steps, history["grad_norm"]) if n is not None]
        series = [(steps, losses), (history["eval_step"], history["eval_loss"]),
                  ([s for steps, _ in history["scores"].values() for s in steps], []),
                  (history["general_step"], history["general_change"]),
                  (steps, history["learning_rate"]),
                  ([s for s, _ in norms], [n for _, n in norms])]
        for axes, line, note, (xs, ys) in zip(self.axes, self.lines, self.waiting, series):
            if line is not None:
                line.set_data(*thin(xs, ys))
            has_data = bool(xs) or (axes is self.score_axes and bool(history["base_scores"]))
            note.set_visible(not has_data)
            show_axes(axes, has_data)
        self._draw_scores(history)
        long_enough = len(losses) >= SMOOTH_FROM  # with few points an average only lags
        self.smoothed.set_data(*(thin(steps, smooth(losses)) if long_enough else ([], [])))
        self.lines[0].set_color("#9ecae1" if long_enough else "#3182bd")
        for axes in self.axes:
            if axes is not self.score_axes:
                axes.relim()
                axes.autoscale_view()
        scored = [s for points, _ in history["scores"].values() for s in points]
        self.score_axes.set_xlim(-0.5, max([1] + steps + scored) + 0.5)
        self.figure.suptitle(title, fontsize=10)
        return figure_png(self.figure)

    def _draw_scores(self, history: dict) -> None:
        axes = self.score_axes
        for index, name in enumerate(sorted(set(history["scores"]) | set(history["base_scores"]))):
            if name not in self.score_lines:
                colour = SCORE_COLOURS[index % len(SCORE_COLOURS)]
                line = axes.plot([], [], color=colour, marker="o", markersize=3, linewidth=1.2,
                                 label=name)[0]
                base = axes.axhline(0, color=colour, linestyle="--", linewidth=0.8,
                                    visible=False)
                self.score_lines[name] = (line, base)
                axes.legend(fontsize=7, loc="lower right")
            line, base = self.score_lines[name]
            line.set_data(*thin(*history["scores"].get(name, ([], []))))
            if name in history["base_scores"]:
                base.set_ydata([history["base_scores"][name]] * 2)
                base.set_visible(True)


def live_chart_png(history: dict, title: str = "") -> bytes:
    return LiveChart().png(history, title)
