"""A garment's silhouette in a catalog image: what is not the white background around it.

Used where the runtime needs a garment's shape from a catalog image (try-on's garment
mask) and by training and ``evaluate`` (the warping generator's alpha target and its score).
"""

from __future__ import annotations

import numpy as np

# A catalog pixel counts as background when every channel is within this of the background
# colour (JPEG noise around a white background stays within ~8 levels).
SILHOUETTE_TOLERANCE = 12


def _runs_touching(seed: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Every ``free`` pixel in a row run of ``free`` pixels that holds a ``seed`` pixel."""
    starts = free & ~np.pad(free, ((0, 0), (1, 0)))[:, :-1]
    labels = np.cumsum(starts.ravel()).reshape(free.shape) * free
    hit = np.zeros(int(labels.max()) + 1, bool)
    hit[labels[seed & free]] = True
    hit[0] = False
    return hit[labels]


def garment_silhouette(garment: np.ndarray, background=(255, 255, 255), tolerance: int = SILHOUETTE_TOLERANCE):
    """The garment's silhouette in a catalog image (uint8 [H, W, 3]): bool [H, W].

    Background is every near-background pixel connected to the image's border (through
    row and column runs, repeated until nothing changes); everything else, white prints
    and a white garment's inside included, is the garment. Training learns the generator's
    alpha from it, and ``evaluate`` scores that alpha against it.
    """
    rgb = np.asarray(garment, dtype=np.int16)
    free = np.all(np.abs(rgb - np.asarray(background, np.int16)) <= tolerance, axis=-1)
    reached = np.zeros_like(free)
    reached[0], reached[-1], reached[:, 0], reached[:, -1] = free[0], free[-1], free[:, 0], free[:, -1]
    while True:
        grown = _runs_touching(reached, free)
        grown = _runs_touching(grown.T, free.T).T
        if np.array_equal(grown, reached):
            return ~reached
        reached = grown
