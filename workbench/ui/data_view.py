"""Notebook views of a dataset: one example as the model reads it, trained tokens
highlighted (the dashboard's preview renderer), and the token-length histogram.

    rep = report("my.jsonl", tokenizer)
    show_lengths(rep)
    show_example(rep, tokenizer, "longest")    # or an index, or "line 12"
"""

from __future__ import annotations

from workbench.data.encoding import trained_segments
from workbench.plots.lengths import length_histogram_png
from workbench.errors import DataError
from workbench.ui.render import preview_html


def example_html(example, tokenizer, max_length: int = 512, train_on: str = "responses") -> str:
    """HTML of one example: green where trained, grey where only read, struck where cut."""
    return preview_html([(example.where, trained_segments(example, tokenizer, max_length,
                                                          train_on))])


def pick(report, which=0):
    """An example of a report by index, by where it is (`"line 12"`), or `"longest"`."""
    examples = report.examples
    if which == "longest":
        return examples[max(range(len(examples)), key=report.tokens.__getitem__)]
    if isinstance(which, int):
        if not -len(examples) <= which < len(examples):
            raise DataError(f"example {which} does not exist; the report has {len(examples)}")
        return examples[which]
    found = [e for e in examples if which in (str(e.where), e.where.place)]
    if not found:
        raise DataError(f"no example at {which!r}; give an index, 'longest', or a place such "
                        f"as {examples[0].where.place!r}")
    return found[0]


def show_example(report, tokenizer, which=0) -> None:
    """Display one example of a data report with its trained tokens highlighted."""
    from IPython.display import HTML, display

    display(HTML(example_html(pick(report, which), tokenizer, report.max_length,
                              report.train_on)))


def show_lengths(report) -> None:
    """Display the token-length histogram of a data report."""
    from IPython.display import Image, display

    display(Image(length_histogram_png(report)))
