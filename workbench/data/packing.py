"""Exact packing: several examples per row, none of them seeing another.

Short examples padded to the longest in a batch waste most of a CPU's time on padding.
Packing puts several examples into one row of at most `max_length` tokens. Resetting
position ids alone does not keep them apart under SDPA or eager attention in
transformers 5.x (measured: the second example's logits moved by about 0.6), so the
collator also builds an additive block-diagonal causal mask: a token attends only to
earlier tokens of its own example. Packed logits then equal unpacked ones (tested to
1e-5 for both attention implementations).
"""

from __future__ import annotations

import bisect

from workbench.data.encoding import IGNORE


def pack_rows(rows: list[dict], capacity: int) -> list[dict]:
    """Best-fit-decreasing packing of encoded rows into rows of at most `capacity` tokens.

    Deterministic: the same rows always give the same packs. Each packed row keeps the
    lengths of its pieces in `segments`.
    """
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["input_ids"]))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin index), kept sorted for best fit
    for index in order:
        size = len(rows[index]["input_ids"])
        slot = bisect.bisect_left(free, (size, -1))
        if slot < len(free):
            room, bin_index = free.pop(slot)
            bins[bin_index].append(index)
            bisect.insort(free, (room - size, bin_index))
        else:
            bins.append([index])
            bisect.insort(free, (capacity - size, len(bins) - 1))
    return [_join([rows[i] for i in members]) for members in bins]


def _join(pieces: list[dict]) -> dict:
    ids, labels, segments = [], [], []
    for piece in pieces:
        piece_labels = list(piece["labels"])
        piece_labels[0] = IGNORE  # never predicted from the previous example's last token
        ids += piece["input_ids"]
        labels += piece_labels
        segments.append(len(piece["input_ids"]))
    return {"input_ids": ids, "labels": labels, "segments": segments}


def padding_share(rows: list[dict], batch_size: int) -> float:
    """Fraction of a padded batch that is padding, for rows taken in order."""
    padded = real = 0
    for start in range(0, len(rows), batch_size):
        batch = [len(r["input_ids"]) for r in rows[start:start + batch_size]]
        padded += max(batch) * len(batch)
        real += sum(batch)
    return 1 - real / max(padded, 1)


class PackedCollator:
    """Pads packed rows and adds reset position ids and a block-diagonal causal mask."""

    def __init__(self, pad_token_id: int, dtype=None):
        self.pad_token_id = pad_token_id
        self.dtype = dtype  # the model's dtype: the additive mask must match it

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        dtype = self.dtype or torch.float32
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        segment_of = torch.full((len(rows), width), -1, dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            ids[i, :n] = torch.tensor(row["input_ids"])
            labels[i, :n] = torch.tensor(row["labels"])
            start = 0
            for number, length in enumerate(row.get("segments", [n])):
                positions[i, start:start + length] = torch.arange(length)
                segment_of[i, start:start + length] = number
                start += length
        same = segment_of[:, :, None] == segment_of[:, None, :]
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        allowed = same & causal & (segment_of[:, :, None] >= 0)
        # Padding rows attend to themselves only, so no row of the mask is all -inf (NaNs).
        allowed |= torch.eye(width, dtype=torch.bool)
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed,
                                                                   torch.finfo(dtype).min)
        return {"input_ids": ids, "labels": labels, "position_ids": positions,
                "attention_mask": mask[:, None], "real_tokens": (segment_of >= 0).sum(dim=1)}
