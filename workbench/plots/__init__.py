"""Every chart the workbench draws, with matplotlib's object API (a bare `Figure` renders
with Agg and never touches pyplot, so it is safe off the main thread and leaves the
notebook's plotting backend alone).

    loss.py     the run folder's loss.png (and its sink), loss curves of several runs
    live.py     the dashboard's four-panel live chart
    lengths.py  a data report's token-length histogram

This module holds what they share; matplotlib loads only when a chart is drawn.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

SMOOTH_FROM = 20  # logged points before a smoothed curve is drawn
MAX_POINTS = 400  # per curve: keeps a redraw's cost flat however long the run
EMPTY_COLOUR = "#969696"


def smooth(values: list[float], weight: float = 0.8) -> list[float]:
    """Debiased exponential moving average (as TensorBoard's smoothing)."""
    result, average = [], 0.0
    for count, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        result.append(average / (1 - weight ** count))
    return result


def thin(xs: list, ys: list, limit: int = MAX_POINTS) -> tuple[list, list]:
    """At most `limit` evenly spaced points, always keeping the last one."""
    if len(xs) <= limit:
        return list(xs), list(ys)
    stride = math.ceil(len(xs) / limit)
    keep = list(range(0, len(xs), stride))
    if keep[-1] != len(xs) - 1:
        keep.append(len(xs) - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]


def figure_png(figure, path: str | Path | None = None) -> bytes:
    """The figure as PNG bytes; also written to `path` (atomically) when given."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    data = buffer.getvalue()
    if path is not None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp.png")
        tmp.write_bytes(data)
        tmp.replace(path)
    return data


def empty_note(axes, note: str):
    """A panel with nothing to plot yet: a short note in the middle and no axes (an empty
    axis would show a meaningless -0.05 to 0.05). Returns the note, to hide once data comes."""
    show_axes(axes, False)
    return axes.text(0.5, 0.5, note, ha="center", va="center", color=EMPTY_COLOUR,
                     transform=axes.transAxes)


def show_axes(axes, visible: bool) -> None:
    axes.xaxis.set_visible(visible)
    axes.yaxis.set_visible(visible)
