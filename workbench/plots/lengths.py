"""A data report's token-length histogram, as PNG bytes."""

from __future__ import annotations

from pathlib import Path

from workbench.plots import figure_png

KEPT, CUT = "#3182bd", "#de2d26"


def length_histogram_png(report, path: str | Path | None = None, bins: int = 40) -> bytes:
    """Token lengths (before the cut) with max_length marked; the part of the histogram
    beyond it, which training cuts, in red. Written to `path` too when given."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    lengths, limit = report.tokens, report.max_length
    figure = Figure(figsize=(7, 3.4), dpi=100)
    axes = figure.subplots()
    top = max(lengths, default=1)
    edges = _edges(min(lengths, default=0), top, bins, limit)
    kept = [n for n in lengths if n <= limit]
    cut = [n for n in lengths if n > limit]
    axes.hist([kept, cut], bins=edges, stacked=True, color=[KEPT, CUT],
              label=[f"fits ({len(kept)})", f"cut at max_length ({len(cut)})"])
    if limit <= 2 * top:  # far beyond the longest example, the line would squash the bars
        axes.axvline(limit, color=CUT, linestyle="--", linewidth=1,
                     label=f"max_length {limit}")
    else:
        axes.plot([], [], " ", label=f"max_length {limit} (off the chart)")
    p = report.percentiles()
    for key, style in (("p50", ":"), ("p95", "-.")):
        if key in p:
            axes.axvline(p[key], color="#636363", linestyle=style, linewidth=1,
                         label=f"{key} {p[key]}")
    axes.set_xlabel(f"tokens per example ({report.tokenizer}, chat template included)")
    axes.set_ylabel("examples")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(f"{Path(report.path).name}: {len(lengths)} examples", fontsize=10)
    axes.legend(fontsize=8, loc="upper right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure_png(figure, path)


def _edges(low: int, high: int, bins: int, limit: int) -> list[float]:
    """Whole-number bin edges, one of them at max_length + 0.5 so no bar straddles it."""
    width = max(1, -(-(high - low + 1) // bins))
    start = limit + 0.5 - width * (-(-(limit + 0.5 - low) // width))
    edges = [start]
    while edges[-1] <= high:
        edges.append(edges[-1] + width)
    return edges
