"""Exact and near duplicate rows.

Exact: rows whose text is equal after Unicode NFKC, case folding and collapsing
whitespace (a hash of that normal form).

Near: MinHash over character 5-gram shingles of the same normal form, with LSH banding
to find candidate pairs, then each candidate's exact Jaccard similarity (shared
shingles / all shingles) checked against the threshold, so no pair below it is
reported. Character shingles rather than word shingles: a one-word edit in a
ten-word answer changes most word 3-grams, and languages written without spaces have
no words to shingle. 25 bands of 5 bins (125 in all) make a pair with Jaccard 0.8 a
candidate with probability 1 - (1 - 0.8**5)**25 = 0.99995 (0.93 at 0.6, 0.55 at 0.5).

The text of a chat example is its user and assistant turns: a system prompt shared by
every row would make unrelated rows look alike.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field

from workbench.data.formats import Example

NEAR_THRESHOLD = 0.8
SHINGLE = 5
BANDS, BAND_ROWS = 25, 5
MAX_BUCKET = 200  # a larger LSH bucket is checked against its first member only


def normalize(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def example_text(example: Example) -> str:
    """The text that makes an example what it is (system turns left out)."""
    if example.messages is not None:
        text = "\n".join(f"{m['role']}: {m['content']}" for m in example.messages
                         if m["role"] != "system")
        if example.chosen is not None:
            return f"{text}\nchosen: {example.chosen}\nrejected: {example.rejected}"
        if example.label is not None:
            return f"{text}\nanswer ({'good' if example.label else 'bad'}): {example.completion}"
        return text
    return f"{example.prompt}\n{example.completion}" if example.prompt else example.completion


def exact_groups(texts: list[str], normalized: bool = False) -> list[list[int]]:
    """Indices of rows with equal normal forms, one list per repeated text, in file order."""
    seen: dict[bytes, list[int]] = {}
    for index, text in enumerate(texts):
        text = text if normalized else normalize(text)
        key = hashlib.blake2b(text.encode(), digest_size=16).digest()
        seen.setdefault(key, []).append(index)
    return [group for group in seen.values() if len(group) > 1]


@dataclass
class Duplicates:
    exact: list[list[int]] = field(default_factory=list)  # groups of indices
    near: list[tuple[int, int, float]] = field(default_factory=list)  # (i, j, Jaccard), i < j
    threshold: float | None = NEAR_THRESHOLD  # None: near duplicates not searched
    # index -> (kind, index of the kept row it repeats, similarity): what clean drops
    drop: dict[int, tuple[str, int, float]] = field(default_factory=dict)


def find_duplicates(texts: list[str], threshold: float | None = NEAR_THRESHOLD,
                    seed: int = 0) -> Duplicates:
    """Exact groups and near pairs (Jaccard >= threshold; None: exact only). `drop` keeps
    the first row of each exact group, then drops a row when it is near a kept earlier one,
    so a chain a~b~c never drops a row for resembling a row that was itself dropped."""
    texts = [normalize(text) for text in texts]
    result = Duplicates(exact=exact_groups(texts, normalized=True), threshold=threshold)
    for group in result.exact:
        for index in group[1:]:
            result.drop[index] = ("exact", group[0], 1.0)
    if threshold is None or len(texts) < 2:
        return result
    singles = [i for i in range(len(texts)) if i not in result.drop]
    pairs = near_pairs([texts[i] for i in singles], threshold, seed, normalized=True)
    result.near = [(singles[i], singles[j], similarity) for i, j, similarity in pairs]
    for i, j, similarity in sorted(result.near, key=lambda pair: (pair[1], pair[0])):
        if i not in result.drop and j not in result.drop:
            result.drop[j] = ("near", i, similarity)
    return result


def near_pairs(texts: list[str], threshold: float, seed: int = 0, normalized: bool = False
               ) -> list[tuple[int, int, float]]:
    """Pairs (i, j, Jaccard) of texts whose shingle sets have Jaccard >= threshold."""
    import numpy as np

    normal = texts if normalized else [normalize(text) for text in texts]
    signatures = signatures_of(normal, seed)
    candidates = lsh_candidates(signatures)
    if not len(candidates):
        return []
    # Agreement of the signatures estimates Jaccard (standard error <= 0.045 with 125
    # bins): only pairs plausibly above the threshold get the exact count.
    estimate = (signatures[candidates[:, 0]] == signatures[candidates[:, 1]]).mean(axis=1)
    sets: dict[int, object] = {}
    found = []
    for i, j in candidates[estimate >= threshold - 0.25].tolist():
        a = sets[i] if i in sets else sets.setdefault(i, shingle_hashes(normal[i]))
        b = sets[j] if j in sets else sets.setdefault(j, shingle_hashes(normal[j]))
        shared = len(np.intersect1d(a, b, assume_unique=True))
        similarity = shared / (len(a) + len(b) - shared)
        if similarity >= threshold:
            found.append((i, j, round(similarity, 4)))
    return sorted(found)


def _mix(hashes):
    """Spread the bits of 64-bit hashes (splitmix64's finaliser), in place."""
    import numpy as np

    hashes ^= hashes >> np.uint64(30)
    hashes *= np.uint64(0xBF58476D1CE4E5B9)
    hashes ^= hashes >> np.uint64(27)
    hashes *= np.uint64(0x94D049BB133111EB)
    hashes ^= hashes >> np.uint64(31)
    return hashes


def _rolling(codes, size: int):
    """Polynomial hash of every window of `size` codes (wrapping at 2**64)."""
    import numpy as np

    count = len(codes) - size + 1
    hashes = np.zeros(count, dtype=np.uint64)
    for offset in range(size):
        hashes *= np.uint64(0x100000001B3)
        hashes += codes[offset:offset + count]
    return hashes


def shingle_hashes(text: str, size: int = SHINGLE):
    """Sorted unique 64-bit hashes of a normalized text's character n-grams (the whole text
    when shorter than n). Deterministic across processes, unlike Python's hash()."""
    import numpy as np

    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    return np.unique(_mix(_rolling(codes, min(size, len(codes)))))


def signatures_of(normal: list[str], seed: int = 0, size: int = SHINGLE):
    """(rows, BANDS * BAND_ROWS) uint64 signatures by one-permutation MinHash: each shingle
    hash falls in one of the bins by its top bits and a bin keeps its smallest hash; an
    empty bin borrows from the next full one to its right (rotation densification,
    Shrivastava and Li 2014), so a bin agrees between two rows with probability about
    their Jaccard. One hash per shingle instead of one per shingle and bin: all rows at
    once in a few array passes."""
    import numpy as np

    bins = BANDS * BAND_ROWS
    lengths = np.array([len(text) for text in normal], dtype=np.int64)
    codes = np.frombuffer("".join(normal).encode("utf-32-le"), dtype=np.uint32)
    codes = codes.astype(np.uint64) ^ np.uint64(seed * 0x9E3779B97F4A7C15 % 2**64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    row_of = np.repeat(np.arange(len(normal)), lengths)
    hashes = _rolling(codes, size) if len(codes) >= size else np.empty(0, np.uint64)
    keep = np.flatnonzero(np.arange(len(hashes)) + size <= (starts + lengths)[row_of[:len(hashes)]])
    rows, hashes = row_of[keep], _mix(hashes[keep])
    short = np.flatnonzero(lengths < size)  # too short for one window: the whole text
    if len(short):
        extra = np.array([_mix(_rolling(codes[starts[r]:starts[r] + lengths[r]],
                                        int(lengths[r]))) [0] if lengths[r] else 0
                          for r in short.tolist()], dtype=np.uint64)
        rows, hashes = np.concatenate([rows, short]), np.concatenate([hashes, extra])
    bin_of = ((hashes >> np.uint64(32)) * np.uint64(bins)) >> np.uint64(32)
    empty = np.iinfo(np.uint64).max
    table = np.full((len(normal), bins), empty, dtype=np.uint64)
    np.minimum.at(table, (rows, bin_of.astype(np.int64)), hashes & np.uint64(2**32 - 1))
    return _densify(table, empty)


def _densify(table, empty):
    import numpy as np

    full = table != empty
    if full.all():
        return table
    width = table.shape[1]
    doubled = np.concatenate([table, table], axis=1)  # circular: wrap to the left end
    index = np.where(np.concatenate([full, full], axis=1), np.arange(2 * width), 2 * width)
    nearest = np.minimum.accumulate(index[:, ::-1], axis=1)[:, ::-1][:, :width]
    nearest = np.minimum(nearest, 2 * width - 1)  # rows with no shingle at all stay empty
    borrowed = np.take_along_axis(doubled, nearest, axis=1)
    distance = (nearest - np.arange(width)).astype(np.uint64)
    # the distance keeps a borrowed value from matching the bin it was borrowed from
    return np.where(full, table, borrowed + distance * np.uint64(2**32))


def lsh_candidates(signatures):
    """(n, 2) array of index pairs i < j that agree on all rows of at least one band."""
    import numpy as np

    pairs = []
    for band in range(BANDS):
        block = np.ascontiguousarray(signatures[:, band * BAND_ROWS:(band + 1) * BAND_ROWS])
        keys = block.view(np.dtype((np.void, block.shape[1] * block.itemsize))).ravel()
        _, bucket = np.unique(keys, return_inverse=True)
        order = np.argsort(bucket.ravel(), kind="stable")
        starts = np.flatnonzero(np.diff(bucket.ravel()[order], prepend=-1))
        sizes = np.diff(starts, append=len(order))
        two = starts[sizes == 2]  # most shared buckets hold a pair: no loop for those
        pairs.append(np.stack([order[two], order[two + 1]], axis=1))
        for start, size in zip(starts[sizes > 2].tolist(), sizes[sizes > 2].tolist()):
            members = order[start:start + size]
            if len(members) > MAX_BUCKET:
                pairs.append(np.stack([np.full(len(members) - 1, members[0]), members[1:]], 1))
                continue
            i, j = np.triu_indices(len(members), k=1)
            pairs.append(np.stack([members[i], members[j]], axis=1))
    if not pairs:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.sort(np.concatenate(pairs), axis=1), axis=0)
