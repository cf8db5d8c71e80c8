"""One garment a photo: the person the photo is of, where it shows several.

A photo of two people standing apart (two models side by side, a couple) gives the
segmenter a garment on each; the box around both is one crop, and the generator turns it
into a blend of both garments that neither wears. A human parser tells the people apart:
where columns of background stand between them, each run of person columns is one person
(``person_spans``). When more than one of them wears a garment of the size ``extract``
takes for a garment, the largest of those (the most person pixels: the one the photo is
of; the one wearing the most garment was tried first, and a tank top on the larger person
lost to long sleeves on the smaller) is kept and the garment pixels of the others are
cleared (``main_person``); ``tryon`` dresses only that person, the others keep every pixel.
People who touch or overlap are one run: nothing changes for them, and nothing changes for
a segmenter without labels (its mask alone cannot tell an arm across a garment from a gap
between two people).
"""

from __future__ import annotations

import numpy as np

# A column belongs to a person where at least this share of its rows is not background
# (a few stray pixels of a backdrop do not join two people)...
PERSON_COLUMN_SHARE = 0.01
# ...and two people are apart where at least this share of the columns between them is background.
MIN_GAP_SHARE = 0.02
# A person wears a garment that covers this share of the frame: also the least ``extract``
# takes for a garment (``stages.MIN_GARMENT_SHARE``).
WEARING_SHARE = 0.004


def person_spans(labels: np.ndarray, background: int = 0) -> list[tuple[int, int]]:
    """The runs of person columns [c0, c1) of a label plane [h, w], left to right; runs
    closer than ``MIN_GAP_SHARE`` of the width are one person."""
    return _spans(np.count_nonzero(labels != background, axis=0), labels.shape[0])


def _spans(per_column: np.ndarray, height: int) -> list[tuple[int, int]]:
    """``person_spans`` from the person pixels of each column of a frame ``height`` tall."""
    w = per_column.size
    occupied = per_column >= max(1, PERSON_COLUMN_SHARE * height)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], occupied.view(np.int8), [0]))))
    spans: list[tuple[int, int]] = []
    for c0, c1 in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        if spans and c0 - spans[-1][1] < max(1, MIN_GAP_SHARE * w):
            spans[-1] = (spans[-1][0], c1)
        else:
            spans.append((c0, c1))
    return spans


def main_person(
    mask: np.ndarray, labels: np.ndarray, threshold: int, min_share: float = WEARING_SHARE, background: int = 0
) -> tuple[int, int] | None:
    """Where two or more people apart wear a garment (at least ``min_share`` of the plane's
    pixels at >= ``threshold`` of ``mask``), the columns [c0, c1) of the largest of them,
    reaching halfway into the gaps beside it; None where one person or none wears one."""
    size = np.count_nonzero(labels != background, axis=0)  # person pixels of each column
    spans = _spans(size, labels.shape[0])
    if len(spans) < 2:
        return None
    per_column = np.count_nonzero(mask >= threshold, axis=0)
    worn = [int(per_column[c0:c1].sum()) for c0, c1 in spans]
    wearing = [i for i, pixels in enumerate(worn) if pixels >= min_share * mask.size]
    if len(wearing) < 2:
        return None
    chosen = max(wearing, key=lambda i: int(size[spans[i][0] : spans[i][1]].sum()))
    left = (spans[chosen - 1][1] + spans[chosen][0]) // 2 if chosen > 0 else 0
    right = (spans[chosen][1] + spans[chosen + 1][0] + 1) // 2 if chosen + 1 < len(spans) else mask.shape[1]
    return left, right


def keep_columns(plane: np.ndarray, columns: tuple[int, int]) -> np.ndarray:
    """A copy of ``plane`` [h, w] that is 0 outside ``columns`` [c0, c1)."""
    kept = np.zeros_like(plane)
    kept[:, columns[0] : columns[1]] = plane[:, columns[0] : columns[1]]
    return kept
