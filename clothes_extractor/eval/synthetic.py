"""Seeded synthetic model inputs: export checks, benchmarks and tests feed these (one home)."""

from __future__ import annotations

import numpy as np

from ..runtime.contract import ModelContract


def seeded_photos(size: tuple[int, int], count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic photos (smooth colour fields + noise) and soft rectangular masks:
    uint8 [count, h, w, 3] and [count, h, w, 1]."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    images = np.empty((count, h, w, 3), np.uint8)
    masks = np.zeros((count, h, w, 1), np.uint8)
    for i in range(count):
        phase = rng.uniform(0, 2 * np.pi, 3)
        freq = rng.uniform(0.02, 0.2, 3)
        field = np.stack([np.sin(xx * freq[c] + yy * freq[(c + 1) % 3] + phase[c]) for c in range(3)], -1)
        noisy = 127.5 + 100 * field + rng.normal(0, 12, (h, w, 3))
        images[i] = np.clip(noisy, 0, 255).astype(np.uint8)
        y0, x0 = rng.integers(0, h // 3), rng.integers(0, w // 3)
        y1, x1 = rng.integers(2 * h // 3, h + 1), rng.integers(2 * w // 3, w + 1)
        masks[i, y0:y1, x0:x1, 0] = 255
        masks[i, y0:y1, x0, 0] = 128  # a soft edge
    return images, masks


def synthetic_feeds(
    contract: ModelContract, batch: int, seed: int = 0, photo_size: tuple[int, int] | None = None
) -> dict[str, np.ndarray]:
    """A batch of seeded inputs for every input the contract names. ``photo`` (catalog
    resolution) is the same window as ``image`` (a try-on's ``person``) at ``photo_size``
    (default: the model size); a try-on's garment is a second seeded photo, and its
    ``garment_photo`` that photo at ``photo_size``."""
    images, masks = seeded_photos(contract.size, batch, seed)
    feeds = {"image": images, "mask": masks}
    if contract.task == "tryon":  # a person with the region to dress, and a second photo as the garment
        garments, garment_masks = seeded_photos(contract.size, batch, seed + 1)
        feeds = {"person": images, "region": masks, "garment": garments, "garment_mask": garment_masks}
    if contract.catalog_resolution:  # (a try-on's garment too, at the same size)
        sources = {"photo": feeds.get("person", images), "garment_photo": feeds.get("garment")}
        for name, source in sources.items():
            if source is not None:
                feeds[name] = _at_size(source, photo_size or contract.size)
    return {spec.name: feeds[spec.name] for spec in contract.inputs}


def _at_size(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A batch of uint8 images [N, h, w, 3] at ``size`` (h, w): a copy, bicubic where it differs."""
    if tuple(size) == images.shape[1:3]:
        return images.copy()
    from PIL import Image

    h, w = size
    return np.stack([np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BICUBIC)) for a in images])
