"""Photographed scenes with no one in them, for a parser's busy scenes (``train --scene-photos``).

``busy.py`` draws rooms, textures and lights out of focus; a photographed scene (a garage, a
table with a cup, a meadow) is something else, and a parser taught only drawn ones finds a
garment in half the crops of real scenes (the segmenter card's "Busy backgrounds"). Given a
folder of garment-free photos, ``ScenePhotos.crops`` cuts seeded crops of them at any size:
a share of the busy scenes behind persons and among the negatives is then photographed.
The folder is the user's: no scene photos ship with this project.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from ..runtime.images import load_photo

log = logging.getLogger(__name__)

SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MAX_SIDE = 1024  # photos are kept at most this large: crops go down to the model size anyway
MIN_SIDE = 64
SMALLEST_CROP = 0.3  # of the largest crop of a frame's aspect that the photo holds
GAIN = (0.75, 1.2)  # range of each colour channel's gain on a crop (another exposure, another white balance)


@dataclass(frozen=True)
class ScenePhotos:
    """Garment-free photos in memory (uint8 RGB, at most ``MAX_SIDE`` on a side) and where they came from."""

    photos: tuple[np.ndarray, ...]
    names: tuple[str, ...] = field(default=())

    @classmethod
    def load(cls, folder: str | Path) -> ScenePhotos:
        """The photos in ``folder`` (and its subfolders). A file that cannot be read is logged
        and left out; ``ValueError`` when the folder is missing or holds no photo to use."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"--scene-photos {folder}: no such folder (give a folder of photos with no one in them)")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        photos, names = [], []
        for path in files:
            try:
                photo = load_photo(path, role="scene photo")[0]  # upright RGB, as extract decodes photos
            except InputError as exc:
                log.warning("--scene-photos: left out %s", exc)
                continue
            if min(photo.size) < MIN_SIDE:
                log.warning("--scene-photos: left out %s: %dx%d, smaller than %d px", path, *photo.size, MIN_SIDE)
                continue
            photo.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            photos.append(np.asarray(photo))
            names.append(path.relative_to(folder).as_posix())
        if not photos:
            raise ValueError(
                f"--scene-photos {folder}: no photo to use (of {len(files)} image file(s); JPEG, PNG, WebP, BMP or "
                f"TIFF, at least {MIN_SIDE} px on a side)"
            )
        log.info("--scene-photos: %d photo(s) from %s", len(photos), folder)
        return cls(tuple(photos), tuple(names))

    def crops(self, n: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` seeded crops, uint8 [n, H, W, 3]: each of a photo chosen at random, of the frame's
        aspect, ``SMALLEST_CROP`` to all of the largest such crop, anywhere in it, mirrored half the
        time, each colour channel given a gain in ``GAIN``."""
        out = np.empty((n, height, width, 3), np.uint8)
        for i in range(n):
            photo = self.photos[int(rng.integers(len(self.photos)))]
            ph, pw = photo.shape[:2]
            scale = min(pw / width, ph / height) * rng.uniform(SMALLEST_CROP, 1.0)
            w, h = max(1, min(pw, round(width * scale))), max(1, min(ph, round(height * scale)))
            left, top = int(rng.integers(0, pw - w + 1)), int(rng.integers(0, ph - h + 1))
            crop = Image.fromarray(photo[top : top + h, left : left + w]).resize(
                (width, height), Image.Resampling.BICUBIC
            )
            pixels = np.asarray(crop, np.float32)
            if rng.random() < 0.5:
                pixels = pixels[:, ::-1]
            out[i] = np.clip(pixels * rng.uniform(*GAIN, 3), 0, 255).astype(np.uint8)
        return out
