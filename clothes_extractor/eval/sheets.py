"""Contact sheets: rows of equally sized tiles, for validation, evaluation, ``extract`` and ``tryon``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..runtime.fitting import letterbox
from ..runtime.images import load_mask, load_photo


def _rgb(tile: np.ndarray) -> np.ndarray:
    return np.repeat(tile, 3, axis=-1) if tile.ndim == 3 and tile.shape[-1] == 1 else tile


def contact_sheet(
    rows: Sequence[Sequence[np.ndarray]], gap: int = 4, tile: tuple[int, int] | None = None
) -> Image.Image:
    """Tile rows of uint8 [H, W, 3] (or [H, W, 1]) images on a grey background; every tile is
    resized to ``tile`` (h, w; default: the first tile's size)."""
    if not rows:
        raise ValueError("a contact sheet needs at least one row")
    h, w = tile or rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    sheet = np.full((len(rows) * (h + gap) + gap, cols * (w + gap) + gap, 3), 128, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            image = _rgb(np.asarray(image))
            if image.shape[:2] != (h, w):
                image = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))
            y, x = gap + r * (h + gap), gap + c * (w + gap)
            sheet[y : y + h, x : x + w] = image
    return Image.fromarray(sheet)


# What a garment is shown on to see its silhouette: a mid-grey no garment colour hides in.
SILHOUETTE_BACKDROP = (96, 128, 160)


def on_backdrop(garment: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``garment`` (uint8 [H, W, 3] on white) cut out by ``alpha`` (uint8 [H, W, 1]) and laid
    on ``SILHOUETTE_BACKDROP``: what a transparent output looks like on a coloured page."""
    a = alpha.astype(np.float32) / 255.0
    shown = garment.astype(np.float32) * a + np.asarray(SILHOUETTE_BACKDROP, np.float32) * (1 - a)
    return np.clip(np.rint(shown), 0, 255).astype(np.uint8)


def sheet_row(task: str, inputs: dict[str, np.ndarray], output: np.ndarray) -> list[np.ndarray]:
    """One row: generator input | mask | output | target (and, for a generator that gives its
    silhouette, the output and the target cut out by their silhouettes, on a coloured
    backdrop); try-on person | garment | output | target; segmenter photo | output | target."""
    if task == "generator":
        row = [inputs["image"], inputs["mask"], output, inputs["target"]]
        if "output_alpha" in inputs and "alpha" in inputs:
            row += [on_backdrop(output, inputs["output_alpha"]), on_backdrop(inputs["target"], inputs["alpha"])]
        return row
    if task == "tryon":
        return [inputs["person"], inputs["garment"], output, inputs.get("target", inputs["person"])]
    return [inputs["image"], output, inputs["target"]]


CHECKER_PX, CHECKER_GREYS = 8, (255, 214)  # the squares behind a transparent garment, as image editors show them


def extraction_sheet(results: Sequence, size: tuple[int, int]) -> Image.Image:
    """Rows of photo | mask used (if saved) | garment for finished ``extract`` results. A
    garment written with a transparent background is shown on a checkerboard of white and
    light grey squares (``CHECKER_PX`` in the tile), as image editors show transparency: a white
    garment's outline, and what its alpha keeps, can be seen."""
    rows = []
    for result in results:
        photo, _ = load_photo(Path(result.input))
        row = [letterbox(photo, size, (255, 255, 255))[0]]
        if result.saved_mask:
            mask = load_mask(Path(result.saved_mask)).resize(photo.size)
            row.append(letterbox(mask, size, 0)[0][:, :, None])
        with Image.open(result.output) as garment:  # (a page of another aspect, --output-size 1000x1000: whole)
            shown = _fitted(garment.convert("RGBA"), size)
        tile = Image.new("RGB", (size[1], size[0]), (255, 255, 255))
        tile.paste(Image.alpha_composite(_checkerboard(shown.size), shown).convert("RGB"),
                   ((size[1] - shown.width) // 2, (size[0] - shown.height) // 2))  # fmt: skip
        row.append(np.asarray(tile))
        rows.append(row)
    return contact_sheet(rows)


def dressing_sheet(pairs: Sequence[tuple[Path | Image.Image, ...]], size: tuple[int, int]) -> Image.Image:
    """Rows of person | garment | dressed for finished ``tryon`` pairs (the person photo, the garment
    image, the output written: each a file, or an image read already), each letterboxed on white
    into ``size`` (h, w)."""
    rows = []
    for files in pairs:  # (each read as what it is: a garment image extract wrote is no photo to refuse)
        images = [
            file if isinstance(file, Image.Image) else load_photo(file, role=role)[0]
            for file, role in zip(files, DRESSING_ROLES, strict=True)
        ]
        rows.append([letterbox(image, size, (255, 255, 255))[0] for image in images])
    return contact_sheet(rows)


DRESSING_ROLES = ("person photo", "garment image", "dressed photo")  # a dressing sheet's columns


def _fitted(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` at the largest size of its aspect inside ``size`` (h, w): all of it, not stretched."""
    scale = min(size[0] / image.height, size[1] / image.width)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))


def _checkerboard(size: tuple[int, int]) -> Image.Image:
    """An RGBA image of ``size`` (width, height) in squares of ``CHECKER_GREYS``."""
    ys, xs = np.indices((size[1], size[0])) // CHECKER_PX
    grey = np.where((ys + xs) % 2 == 0, *CHECKER_GREYS).astype(np.uint8)
    return Image.fromarray(np.dstack([grey, grey, grey, np.full_like(grey, 255)]), "RGBA")
