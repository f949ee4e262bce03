"""The preference demo's judge: is the answer one sentence of at most 20 words?

    eval:
      scorers: ["workbench.demo.brevity:one_sentence"]

The small instruct model answers everyday questions at length ("Great question! ... I hope
this helps"); after DPO on pairs that prefer the one-sentence answer it answers in one.
"""

from __future__ import annotations

import re

MAX_WORDS = 20
SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+(?=\S)")


def sentences(text: str) -> int:
    text = text.strip()
    return len(SENTENCE_END.split(text)) if text else 0


def one_sentence(prompt: str, answer: str, reference: str) -> float:
    """1 when the answer is a single sentence of 1 to 20 words, else 0."""
    words = len(answer.split())
    return float(1 <= words <= MAX_WORDS and sentences(answer) == 1)
