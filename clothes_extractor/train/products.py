"""Product photos of things that are no garment, drawn: a bag, a shoe, a box, a bottle, a mug,
a hat, a plate, a watch, alone on a plain or graded backdrop, as a shop photographs them; for
the parser's ``--objects`` garment-free samples. A parser that saw garments alone on backdrops
(``--catalogs``) and never anything else there finds a top in such a photo, and ``extract``
cuts it out as a garment. Drawn, not photographed (no product dataset can be fetched here):
``scripts/garment_free.py`` draws its own objects (other code: discs, boxes, bags, shoes) to
measure, so the measurement is near what this draws, not what it is.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .busy import texture


def _outline(draw: ImageDraw.ImageDraw, kind: int, cx: float, cy: float, s: float, rng: np.random.Generator) -> None:
    """One object's silhouette (255 on 0), ``s`` its half size, centred at (cx, cy)."""
    r = rng.uniform(0.6, 1.4)  # its aspect
    if kind == 0:  # a plate, a ball, a clock
        draw.ellipse((cx - s, cy - s * r, cx + s, cy + s * r), fill=255)
    elif kind == 1:  # a box, a book, a phone
        draw.rounded_rectangle((cx - s, cy - s * r, cx + s, cy + s * r), radius=int(s * rng.uniform(0, 0.3)), fill=255)
    elif kind == 2:  # a bag with its handle
        body = [(cx - s, cy + s * r), (cx + s, cy + s * r), (cx + s * 0.8, cy - s * 0.3), (cx - s * 0.8, cy - s * 0.3)]
        draw.polygon(body, fill=255)
        handle = (cx - s * 0.5, cy - s * 1.1, cx + s * 0.5, cy + s * 0.1)
        draw.arc(handle, 180, 360, fill=255, width=max(2, int(s * 0.1)))
    elif kind == 3:  # a shoe from the side
        draw.polygon(
            [(cx - s, cy + s * 0.35), (cx + s, cy + s * 0.35), (cx + s, cy + s * 0.05), (cx + s * 0.1, cy - s * 0.15),
             (cx - s * 0.4, cy - s * 0.5), (cx - s, cy - s * 0.45)],
            fill=255,
        )  # fmt: skip
    elif kind == 4:  # a bottle
        draw.rounded_rectangle((cx - s * 0.35, cy - s * 0.4, cx + s * 0.35, cy + s), radius=int(s * 0.1), fill=255)
        draw.rectangle((cx - s * 0.12, cy - s, cx + s * 0.12, cy - s * 0.35), fill=255)
    elif kind == 5:  # a mug
        draw.rectangle((cx - s * 0.6, cy - s * 0.7, cx + s * 0.4, cy + s * 0.7), fill=255)
        draw.ellipse((cx + s * 0.2, cy - s * 0.4, cx + s, cy + s * 0.4), outline=255, width=max(2, int(s * 0.15)))
    elif kind == 6:  # a hat: a crown over a brim
        draw.ellipse((cx - s, cy + s * 0.1, cx + s, cy + s * 0.45), fill=255)
        crown = (cx - s * 0.55, cy - s * 0.6, cx + s * 0.55, cy + s * 0.3)
        draw.rounded_rectangle(crown, radius=int(s * 0.3), fill=255)
    else:  # a watch: a face on a strap
        draw.rectangle((cx - s * 0.2, cy - s, cx + s * 0.2, cy + s), fill=255)
        draw.ellipse((cx - s * 0.45, cy - s * 0.45, cx + s * 0.45, cy + s * 0.45), fill=255)


def product_photos(n: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` photos, uint8 [n, H, W, 3], of one to three objects that are no garment on a plain
    backdrop (light mostly) or a soft gradient, each in one colour or a texture, shaded from one
    side, some with a soft shadow under it."""
    out = np.empty((n, height, width, 3), np.uint8)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    for i in range(n):
        top = rng.integers(185, 256, 3) if rng.random() < 0.7 else rng.integers(0, 256, 3)
        bottom = top * rng.uniform(0.8, 1.0) if rng.random() < 0.5 else top
        canvas = Image.fromarray(np.broadcast_to(top + (bottom - top) * y, (height, width, 3)).astype(np.uint8))
        for _ in range(int(rng.choice([1, 1, 1, 2, 3]))):
            shape = Image.new("L", (width, height), 0)
            cx, cy = rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height
            size = rng.uniform(0.12, 0.42) * min(width, height)
            _outline(ImageDraw.Draw(shape), int(rng.integers(8)), cx, cy, size, rng)
            if rng.random() < 0.4:  # its shadow on the backdrop
                shadow = shape.filter(ImageFilter.GaussianBlur(rng.uniform(3, 8))).point(lambda v: int(v * 0.35))
                canvas.paste((0, 0, 0), (int(rng.integers(-6, 7)), int(rng.integers(2, 9))), shadow)
            if rng.random() < 0.5:
                fill = texture(height, width, rng)
            else:
                fill = np.broadcast_to(rng.uniform(0, 255, 3), (height, width, 3)).astype(np.float32)
            shade = 1 - rng.uniform(0, 0.3) * np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
            shaded = fill * (shade if rng.random() < 0.5 else shade[:, ::-1])
            painted = Image.fromarray(shaded.clip(0, 255).astype(np.uint8))
            canvas.paste(painted, (0, 0), shape.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.0))))
        out[i] = np.asarray(canvas)
    return out
