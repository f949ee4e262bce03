"""A run's evaluations from its metrics.jsonl: task scores over the steps (the base model
dashed) and the forgetting check's general-text loss change, on one PNG."""

from __future__ import annotations

from pathlib import Path

from workbench.plots import empty_note, figure_png

COLOURS = ("#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#de2d26")


def scores_png(rows: list[dict], path: str | Path | None = None, title: str = "") -> bytes:
    """rows are metrics.jsonl rows; those with `scored_examples` are evaluations."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    scored = [r for r in rows if "scored_examples" in r]
    base = next((r for r in scored if not r["adapter"]), {})
    tuned = [r for r in scored if r["adapter"]]
    names = sorted({k[6:] for r in scored for k in r if k.startswith("score/")})
    figure = Figure(figsize=(9, 3.4), dpi=90)
    left, right = figure.subplots(1, 2)
    left.set_title("scores (dashed: base model)", fontsize=9)
    right.set_title("general text loss, change from the base model", fontsize=9)
    if names:
        for index, name in enumerate(names):
            colour = COLOURS[index % len(COLOURS)]
            points = [(r["step"], r[f"score/{name}"]) for r in tuned if f"score/{name}" in r]
            left.plot([s for s, _ in points], [v for _, v in points], "o-", color=colour,
                      label=name, markersize=3)
            if f"score/{name}" in base:
                left.axhline(base[f"score/{name}"], color=colour, linestyle="--", linewidth=0.8)
        left.set_ylim(-0.05, 1.05)
        left.legend(fontsize=8)
        left.xaxis.set_major_locator(MaxNLocator(integer=True))
        left.grid(alpha=0.3)
    else:
        empty_note(left, "no scores (set eval.scorers)")
    changes = [(r["step"], r["general_loss_change"]) for r in tuned
               if r.get("general_loss_change") is not None]
    if changes:
        right.plot([s for s, _ in changes], [c for _, c in changes], "o-", color="#de2d26",
                   markersize=3)
        right.axhline(0, color="#bdbdbd", linewidth=0.8)
        right.yaxis.set_major_formatter(PercentFormatter(1.0))
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
        right.grid(alpha=0.3)
    else:
        empty_note(right, "no forgetting check (eval.general_text)")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure_png(figure, path)
