"""Deterministic synthetic triplets: a figure wearing a patterned top, its mask, the flat top.

Licence-clean data for fast tests and examples. Each sample depends only on (seed, index):
the figure's pose and proportions, the background, the top's colours and pattern (solid,
stripes, checks, dots). The catalog image shows the same top laid flat on white, so a
generator can learn the mapping in a few hundred steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..runtime.files import filled_folder

PATTERNS = ("solid", "stripes", "checks", "dots")


def _pattern(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A full-size RGB texture: the fabric the top is cut from."""
    w, h = size
    base = tuple(int(c) for c in rng.integers(20, 236, 3))
    accent = tuple(int(c) for c in rng.integers(20, 236, 3))
    kind = PATTERNS[int(rng.integers(len(PATTERNS)))]
    fabric = Image.new("RGB", size, base)
    draw = ImageDraw.Draw(fabric)
    period = int(rng.integers(6, 16))
    if kind == "stripes":
        for y in range(0, h, period):
            draw.rectangle((0, y, w, y + period // 2), fill=accent)
    elif kind == "checks":
        for y in range(0, h, period):
            for x in range(0, w, period):
                if (x // period + y // period) % 2:
                    draw.rectangle((x, y, x + period - 1, y + period - 1), fill=accent)
    elif kind == "dots":
        r = max(1, period // 4)
        for y in range(period // 2, h, period):
            for x in range(period // 2, w, period):
                draw.ellipse((x - r, y - r, x + r, y + r), fill=accent)
    return fabric


def _top_polygon(cx: float, top: float, width: float, length: float, sleeve: float) -> list[tuple[float, float]]:
    """Outline of a short-sleeved top, sleeves angled down, centred on ``cx``."""
    half = width / 2
    return [
        (cx - half * 0.35, top),
        (cx + half * 0.35, top),
        (cx + half, top + length * 0.05),
        (cx + half + sleeve, top + length * 0.35),
        (cx + half + sleeve * 0.55, top + length * 0.45),
        (cx + half * 0.92, top + length * 0.3),
        (cx + half * 0.92, top + length),
        (cx - half * 0.92, top + length),
        (cx - half * 0.92, top + length * 0.3),
        (cx - half - sleeve * 0.55, top + length * 0.45),
        (cx - half - sleeve, top + length * 0.35),
        (cx - half, top + length * 0.05),
    ]


def synth_sample(
    index: int, seed: int = 0, size: tuple[int, int] = (256, 192)
) -> tuple[Image.Image, Image.Image, Image.Image]:
    """(photo RGB, mask L, catalog garment RGB) of one synthetic sample; ``size`` is (h, w)."""
    h, w = size
    rng = np.random.default_rng([seed, index])
    fabric = _pattern((w, h), rng)
    background = tuple(int(c) for c in rng.integers(200, 250, 3))
    skin = tuple(int(c) for c in rng.integers([150, 100, 80], [240, 190, 160]))
    trousers = tuple(int(c) for c in rng.integers(10, 90, 3))

    photo = Image.new("RGB", (w, h), background)
    draw = ImageDraw.Draw(photo)
    cx = w / 2 + rng.uniform(-0.08, 0.08) * w
    shoulders = rng.uniform(0.42, 0.55) * w
    top_y = rng.uniform(0.2, 0.26) * h
    length = rng.uniform(0.36, 0.44) * h
    sleeve = rng.uniform(0.08, 0.14) * w
    head_r = 0.09 * w
    draw.ellipse((cx - head_r, top_y - 2.3 * head_r, cx + head_r, top_y - 0.3 * head_r), fill=skin)
    draw.rectangle((cx - head_r * 0.35, top_y - 0.5 * head_r, cx + head_r * 0.35, top_y + 2), fill=skin)
    for side in (-1, 1):  # arms hanging from the sleeves
        x = cx + side * (shoulders / 2 + sleeve * 0.7)
        arm = (x, top_y + length * 0.35, x + side * 0.03 * w, top_y + length * 1.05)
        draw.line(arm, fill=skin, width=int(0.06 * w))
    draw.rectangle((cx - shoulders * 0.45, top_y + length * 0.9, cx + shoulders * 0.45, h), fill=trousers)
    outline = _top_polygon(cx, top_y, shoulders, length, sleeve)
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).polygon(outline, fill=255)
    photo.paste(fabric, (0, 0), mask)
    noise = rng.normal(0, 3, (h, w, 3))
    photo = Image.fromarray(np.clip(np.asarray(photo, np.float32) + noise, 0, 255).astype(np.uint8))

    # The catalog image: the same top laid flat, frontal, centred on white, sleeves out.
    garment = Image.new("RGB", (w, h), (255, 255, 255))
    flat = _top_polygon(w / 2, 0.12 * h, 0.62 * w, 0.72 * h, 0.16 * w)
    flat_mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(flat_mask).polygon(flat, fill=255)
    garment.paste(fabric, (0, 0), flat_mask)
    return photo, mask, garment


def write_synthetic(dest: Path, count: int, seed: int = 0, size: tuple[int, int] = (256, 192)) -> int:
    """Write ``count`` triplets to ``dest/{photo,mask,garment}/NNNNNN.*``, a new (or empty)
    folder made whole or not at all; returns the count."""
    with filled_folder(dest, "the dataset folder") as temp:
        folders = [temp / name for name in ("photo", "mask", "garment")]
        for folder in folders:
            folder.mkdir()
        for index in range(count):
            name = f"{index:06d}"
            photo, mask, garment = synth_sample(index, seed, size)
            photo.save(folders[0] / f"{name}.jpg", quality=92)
            mask.save(folders[1] / f"{name}.png")
            garment.save(folders[2] / f"{name}.jpg", quality=92)
    return count
