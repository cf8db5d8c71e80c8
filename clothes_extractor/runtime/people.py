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
between two people). Given the parser's class names, garment pixels count for a person
only where they join a part of one (``person_pixels``): a blob of the wall the parser takes for a
top, between two people, is nobody's, and does not join them into one.
"""

from __future__ import annotations

import numpy as np

from .silhouette import reached_from

# A column belongs to a person where at least this share of its rows is not background
# (a few stray pixels of a backdrop do not join two people)...
PERSON_COLUMN_SHARE = 0.01
# ...and two people are apart where at least this share of the columns between them is background.
MIN_GAP_SHARE = 0.02
# A person wears a garment that covers this share of the frame: also the least ``extract``
# and ``tryon`` take for a garment (``garment_found``).
WEARING_SHARE = 0.004
# A segmentation counts as a garment when enough of the photo is confidently garment.
# Measured with the bundled parser (trained with garment-free photos): 200 plain, gradient,
# noise and blotch photos all stay under the share; of 60 synthetic figures 58 pass it, with
# a mean probability of 0.70-0.99 (VITON photos: 0.91-0.99), so the confidence bar is 0.6.
MIN_GARMENT_SHARE = WEARING_SHARE  # 0.4% of the photo's area at >= the mask threshold
MIN_GARMENT_CONFIDENCE = 0.6  # mean probability over those pixels
# The parser's classes of garments: their pixels are a person's where they join another class's,
# or lie under the head: a parse map calls the neck between chin and collar background...
GARMENT_CLASSES = ("upper", "other-upper")
HEAD_CLASSES = ("hair", "face")
NECK_SHARE = 0.1  # ...over up to this share of the frame's height


def garment_found(mask: np.ndarray, threshold: int) -> bool:
    """Whether a segmentation's garment plane (uint8 probabilities, ``threshold``: its mask's)
    shows a garment: ``MIN_GARMENT_SHARE`` of it at the threshold, ``MIN_GARMENT_CONFIDENCE`` sure
    there on average. ``extract`` asks it of each photo, ``tryon`` of each garment image."""
    on = mask >= threshold
    if on.mean() < MIN_GARMENT_SHARE:
        return False
    return float(mask[on].mean()) >= MIN_GARMENT_CONFIDENCE * 255


def upper_garment(top: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """A parse's upper garment plane: its top's probability ``top`` (uint8), sure (255) wherever
    ``labels`` call a pixel a top or another upper garment (a dress, a coat)."""
    return np.where(_any_of(labels, _classes(names, GARMENT_CLASSES)), np.uint8(255), top)


def garment_seen(top: np.ndarray, labels: np.ndarray | None, names: tuple[str, ...], shown, threshold: int) -> bool:
    """Whether the parser sees a garment where a garment image shows (``shown``: (x0, y0, x1, y1),
    the plane's pixels it covers), by ``extract``'s own bar (``garment_found``), on its
    ``upper_garment`` plane (not lower clothes: try-on dresses the upper body). A plain colour
    filling the frame or a square drawn on white (which the parser calls lower clothes) is no
    garment to dress in (``dressing``)."""
    x0, y0, x1, y1 = (int(v) for v in shown)
    plane = top if labels is None else upper_garment(top, labels, names)
    return garment_found(plane[y0:y1, x0:x1], threshold)


def _classes(names: tuple[str, ...], wanted: tuple[str, ...]) -> list[int]:
    return [names.index(name) for name in wanted if name in names]


def _any_of(labels: np.ndarray, classes: list[int]) -> np.ndarray:
    """Where ``labels`` is one of ``classes`` (a few comparisons: ten times ``np.isin``'s speed here)."""
    found = np.zeros(labels.shape, bool)
    for index in classes:
        found |= labels == index
    return found


def person_pixels(labels: np.ndarray, names: tuple[str, ...] = (), background: int = 0) -> np.ndarray:
    """The person pixels of a label plane [h, w] (bool): every pixel not ``background``, but
    a garment's (``GARMENT_CLASSES`` of ``names``) only where it joins, 4-connected through
    person pixels, a pixel of a person's other classes (hair, face, arms, legs, lower
    clothes) or one of the garment's within ``NECK_SHARE`` of the height below the head.
    Without ``names`` every pixel not background."""
    person = labels != background
    garments = _classes(names, GARMENT_CLASSES)
    if not garments:
        return person
    garment = _any_of(labels, garments)
    head = _any_of(labels, _classes(names, HEAD_CLASSES))
    below_head = head.copy()
    for shift in range(1, max(1, round(NECK_SHARE * labels.shape[0])) + 1):
        below_head[shift:] |= head[:-shift]
    return reached_from((person & ~garment) | (garment & below_head), person)


def person_spans(labels: np.ndarray, names: tuple[str, ...] = (), background: int = 0) -> list[tuple[int, int]]:
    """The runs of person columns [c0, c1) of a label plane [h, w] (``person_pixels``), left to
    right; runs closer than ``MIN_GAP_SHARE`` of the width are one person."""
    return _spans(np.count_nonzero(person_pixels(labels, names, background), axis=0), labels.shape[0])


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
    mask: np.ndarray,
    labels: np.ndarray,
    threshold: int,
    min_share: float = WEARING_SHARE,
    names: tuple[str, ...] = (),
    background: int = 0,
) -> tuple[int, int] | None:
    """Where two or more people apart wear a garment (at least ``min_share`` of the plane's
    pixels at >= ``threshold`` of ``mask``), the columns [c0, c1) of the largest of them,
    reaching halfway into the gaps beside it; None where one person or none wears one.
    ``names``: the parser's classes, for ``person_pixels``, which runs only where the columns
    of all person pixels, or of those not a garment's, show more than one person (1.5 ms a
    photo on a 2-core CPU: most photos of one person skip it)."""
    person, height = labels != background, labels.shape[0]
    size = np.count_nonzero(person, axis=0)  # person pixels of each column
    spans = _spans(size, height)
    garments = _classes(names, GARMENT_CLASSES)
    body = np.count_nonzero(person & ~_any_of(labels, garments), axis=0) if garments else None
    if body is not None and (len(spans) > 1 or len(_spans(body, height)) > 1):
        size = np.count_nonzero(person_pixels(labels, names, background), axis=0)
        spans = _spans(size, height)
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
