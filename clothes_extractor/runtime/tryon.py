"""Try-on's inputs, fitted as serving and training both fit them (numpy + Pillow).

A try-on model dresses a person in a catalog garment. It sees the person letterboxed to
its size, the region it dresses anew (the parser's upper clothes and arms, grown a few
pixels so no trace of the old top's outline survives), the catalog garment letterboxed on
white and the garment's silhouette. The graph paints the region grey itself; everything
outside it is the person's own pixels in the output.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .fitting import Box, letterbox
from .silhouette import garment_silhouette

REGION_NAMES = ("upper", "arms")  # the parser's classes a try-on dresses anew
REGION_GROW_PX = 3  # at the model size


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """A boolean mask grown by ``pixels`` steps to the 4 neighbours (a diamond of that radius)."""
    grown = mask.copy()
    for _ in range(pixels):
        padded = np.pad(grown, 1)
        grown = padded[1:-1, 1:-1] | padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    return grown


def region_from_labels(labels: np.ndarray, names: tuple[str, ...], grow_px: int = REGION_GROW_PX) -> np.ndarray:
    """uint8 [H, W, 1] (255 = dress anew) from a parser's class map [H, W(, 1)] and its class names."""
    labels = np.asarray(labels)
    if labels.ndim == 3:
        labels = labels[..., 0]
    wanted = [names.index(name) for name in REGION_NAMES if name in names]
    if len(wanted) != len(REGION_NAMES):
        raise ValueError(f"a try-on needs a parser with the classes {REGION_NAMES}, this one has {names}")
    region = grow(np.isin(labels, wanted), grow_px)
    return (region.astype(np.uint8) * 255)[:, :, None]


def fit_person(photo: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, Box]:
    """The whole person photo letterboxed on white to ``size`` (h, w), and its window."""
    return letterbox(photo, size, (255, 255, 255))


def fit_labels(labels: Image.Image, photo_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """A class map (mode L) of the photo, letterboxed like it with nearest neighbours: [h, w]."""
    if labels.size != photo_size:
        labels = labels.resize(photo_size, Image.Resampling.NEAREST)
    return letterbox(labels, size, 0, Image.Resampling.NEAREST)[0]


def fit_garment(garment: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The catalog garment letterboxed on white, and its silhouette: ([h, w, 3], [h, w, 1])."""
    image, _ = letterbox(garment, size, (255, 255, 255))
    mask = garment_silhouette(image).astype(np.uint8)[:, :, None] * 255
    return image, mask
