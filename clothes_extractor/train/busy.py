"""Busy backdrops, drawn: what stands behind a person outside a studio (a room with a floor
and furniture, shelves, a brick or tiled wall, stripes, wood, foliage, lights out of
focus), for the parser's ``--busy`` samples and busy garment-free photos. Drawn, not
photographed: no scene dataset can be fetched here, and ``scripts/backdrops.py`` measures
the parser on real photographed scenes that training never sees.

Each backdrop is a base (a room's wall over its floor, or a texture filling the frame),
some objects (boxes, panels, poles, discs; some textured), then perhaps an out-of-focus
blur and sensor noise. About 10 ms each at 256 x 192 on one core (measured on the dev machine).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A colour, mostly muted (rooms and streets are), sometimes saturated."""
    if rng.random() < 0.7:
        grey = rng.uniform(30, 230)
        return np.clip(grey + rng.normal(0, 25, 3), 0, 255)
    return rng.uniform(0, 255, 3)


def _noise(height: int, width: int, rng: np.random.Generator, octaves: int = 4) -> np.ndarray:
    """Smooth fractal noise in [0, 1], [H, W]: each octave a bicubic blow-up of a random grid."""
    out = np.zeros((height, width), np.float32)
    size, weight, total = int(rng.integers(2, 6)), 1.0, 0.0
    for _ in range(octaves):
        grid = rng.random((size, max(2, size * width // height))).astype(np.float32)
        up = Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC)
        out += weight * np.asarray(up)
        total += weight
        size, weight = size * 2, weight * 0.55
    out /= total
    return (out - out.min()) / max(float(np.ptp(out)), 1e-6)


def _coordinates(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Pixel coordinates along a random direction, [H, W]."""
    angle = rng.choice([0.0, np.pi / 2]) if rng.random() < 0.6 else rng.uniform(0, np.pi)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    return cols * np.cos(angle) + rows * np.sin(angle)


def texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A texture, float [H, W, 3] in 0..255: stripes, tiles or bricks, wood grain, stone or
    foliage (fractal noise), or lights out of focus."""
    a, b = _colour(rng), _colour(rng)
    kind = int(rng.integers(5))
    if kind == 0:  # stripes, hard or soft
        period = rng.uniform(4, 40)
        wave = np.sin(2 * np.pi * _coordinates(height, width, rng) / period)
        mix = (wave > rng.uniform(-0.5, 0.5)).astype(np.float32) if rng.random() < 0.6 else (wave + 1) / 2
    elif kind == 1:  # tiles or bricks: blocks with joints, rows offset for bricks
        bh, bw = rng.uniform(6, 30), rng.uniform(10, 60)
        rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
        row = np.floor(rows / bh)
        shifted = cols + (row % 2) * bw / 2 * (rng.random() < 0.6)
        joint = rng.uniform(1, 3)
        mix = (((rows % bh) < joint) | ((shifted % bw) < joint)).astype(np.float32)
        mix = np.maximum(mix, 0.25 * _noise(height, width, rng))
    elif kind == 2:  # wood grain: rings bent by smooth noise
        bend = _noise(height, width, rng, 3) * rng.uniform(20, 80)
        mix = (np.sin(2 * np.pi * (_coordinates(height, width, rng) + bend) / rng.uniform(5, 25)) + 1) / 2
    elif kind == 3:  # stone, gravel, foliage, plaster: fractal noise through two colours
        mix = _noise(height, width, rng, int(rng.integers(3, 7)))
        if rng.random() < 0.5:
            mix = (mix > rng.uniform(0.35, 0.65)).astype(np.float32) * 0.7 + 0.3 * mix
    else:  # lights out of focus: blurred discs of a few colours over a dark or light base
        image = Image.new("RGB", (width, height), tuple(int(v) for v in a))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(8, 40))):
            r = rng.uniform(3, max(4.0, width / 6))
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in _colour(rng)))
        blurred = image.filter(ImageFilter.GaussianBlur(rng.uniform(2, 8)))
        return np.asarray(blurred, np.float32)
    return a + (b - a) * mix[..., None]


def _room(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A wall over a floor, the horizon somewhere in the lower half, each plain, shaded or
    textured."""
    horizon = int(height * rng.uniform(0.45, 0.95))
    out = np.empty((height, width, 3), np.float32)
    for rows in (slice(0, horizon), slice(horizon, height)):
        n = len(range(height)[rows])
        if rng.random() < 0.5:
            shade = np.linspace(rng.uniform(0.7, 1.1), rng.uniform(0.7, 1.1), n, dtype=np.float32)
            out[rows] = _colour(rng) * shade[:, None, None]
        else:
            out[rows] = texture(n, width, rng)
    return out


def _objects(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boxes (shelves, doors, windows, furniture, frames), poles and discs over ``image``,
    some filled with a texture, some with an edge."""
    height, width = image.shape[:2]
    canvas = Image.fromarray(image.clip(0, 255).astype(np.uint8))
    for _ in range(int(rng.integers(0, 9))):
        shape = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(shape)
        x0, y0 = rng.uniform(-0.2, 1.0) * width, rng.uniform(-0.2, 1.0) * height
        kind = rng.random()
        if kind < 0.6:  # a box
            box = (x0, y0, x0 + rng.uniform(0.05, 0.6) * width, y0 + rng.uniform(0.05, 0.7) * height)
            draw.rectangle(box, fill=255)
        elif kind < 0.8:  # a pole or a shelf's edge
            thick = rng.uniform(1, 8)
            vertical = rng.random() < 0.5
            box = (x0, 0, x0 + thick, height) if vertical else (0, y0, width, y0 + thick)
            draw.rectangle(box, fill=255)
        else:  # a disc: a lamp, a plate, a clock
            r = rng.uniform(0.03, 0.2) * width
            draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=255)
        if rng.random() < 0.4:
            fill = texture(height, width, rng)
        else:
            fill = np.broadcast_to(_colour(rng), (height, width, 3)).astype(np.float32)
        painted = Image.fromarray(fill.clip(0, 255).astype(np.uint8))
        canvas.paste(painted, (0, 0), shape.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2))))
        if rng.random() < 0.3:  # its edge, darker or lighter
            edge = shape.filter(ImageFilter.FIND_EDGES)
            canvas.paste(tuple(int(v) for v in _colour(rng)), (0, 0), edge)
    return np.asarray(canvas, np.float32)


def busy_photos(n: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` busy backdrops, uint8 [n, H, W, 3], with no person and no garment."""
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        base = _room(height, width, rng) if rng.random() < 0.5 else texture(height, width, rng)
        image = Image.fromarray(_objects(base, rng).clip(0, 255).astype(np.uint8))
        if rng.random() < 0.4:  # out of focus behind the person
            image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 4)))
        pixels = np.asarray(image, np.float32)
        if rng.random() < 0.3:
            pixels = pixels + rng.normal(0, rng.uniform(1, 6), pixels.shape)
        out[i] = pixels.clip(0, 255).astype(np.uint8)
    return out
