"""How often does a folder job invent a garment where there is none? Garment-free photos
(``train.scenes.negative_photos``: plain colours, gradients, pixel noise, smooth blotches;
as many busy scenes, ``train.busy.busy_photos``, where the checkout has them, as many
crops of photographed scenes, ``backdrops.scene_backdrop``, where scikit-image is installed,
and as many objects on a plain backdrop, ``an_object``: a disc, a box, a bag, a shoe)
at the segmenter's own aspect and at four others, each given to ``extract_garment`` and to
``dress`` (try-on, with a plain red shirt drawn on white as the catalog garment); a
photo that comes back as a garment or a dressed person, not as an ``InputError``, was
invented. Prints the count per aspect and per kind of photo.

    python scripts/garment_free.py [COUNT_PER_ASPECT] [SEED] [SEGMENTER.onnx]

Needs the training extra (the photos come from the training code); the models are the
bundled ones unless a segmenter file is given.
"""

import sys
from collections import Counter

import numpy as np
from backdrops import SCENES, scene_backdrop, scene_folder  # (scripts/ is this script's folder)
from PIL import Image, ImageDraw

from clothes_extractor import dress, extract_garment, new_session
from clothes_extractor.errors import InputError

try:
    from clothes_extractor.train.scenes import negative_photos
except ImportError:  # a checkout from before 2026-12-02, measured for comparison
    from clothes_extractor.train.augment import negative_photos
try:
    from clothes_extractor.train.busy import busy_photos
    from clothes_extractor.train.busy import texture as busy_texture
except ImportError:  # a checkout from before busy scenes (measured for comparison)
    busy_photos = busy_texture = None

ASPECTS = [(256, 192), (400, 600), (300, 300), (360, 640), (600, 300)]  # (height, width)
KINDS = ("plain", "gradient", "noise", "blotches")  # negative_photos' kinds, in its order


def catalog_shirt() -> Image.Image:
    garment = Image.new("RGB", (192, 256), "white")
    ImageDraw.Draw(garment).polygon(
        [(40, 40), (152, 40), (170, 90), (140, 90), (140, 220), (52, 220), (52, 90), (22, 90)], fill=(200, 30, 40)
    )
    return garment


def garment_free(height: int, width: int, seed: int, count: int):
    """(kind, photo) for ``count`` photos of ``negative_photos``, ``count`` busy scenes,
    ``count`` crops of photographed scenes (each scene in turn) and ``count`` objects."""
    for i in range(count):
        # one generator per photo: each photo is the same whatever COUNT is (its first draw is its kind)
        kind = KINDS[int(np.random.default_rng([seed, height, width, i]).integers(4))]
        yield kind, negative_photos(1, height, width, np.random.default_rng([seed, height, width, i]))[0]
    if busy_photos is not None:
        for i in range(count):
            yield "busy", busy_photos(1, height, width, np.random.default_rng([seed, height, width, i, 5]))[0]
    if scene_folder() is not None:
        for i in range(count):
            name = list(SCENES)[i % len(SCENES)]
            yield "scene", np.asarray(scene_backdrop(name, (width, height), seed * 1000 + i))
    for i in range(count):
        yield "object", an_object(height, width, np.random.default_rng([seed, height, width, i, 7]))


def an_object(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A garment-free object on a plain backdrop, as a product photo shows one (``rng``'s first
    draw picks it): a disc, a box, a bag with its handle, a shoe; in one colour or, half of
    them, a texture (``train.busy.texture``, where the checkout has it); a light backdrop
    mostly, any colour otherwise."""
    kind = int(rng.integers(4))
    backdrop = rng.integers(200, 256, 3) if rng.random() < 0.7 else rng.integers(0, 256, 3)
    image = Image.new("RGB", (width, height), tuple(int(c) for c in backdrop))
    shape = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(shape)
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    s = rng.uniform(0.2, 0.45) * min(width, height)
    if kind == 0:
        draw.ellipse((cx - s, cy - s * rng.uniform(0.5, 1.2), cx + s, cy + s * rng.uniform(0.5, 1.2)), fill=255)
    elif kind == 1:
        draw.rounded_rectangle((cx - s, cy - s * 0.8, cx + s, cy + s * 0.8), radius=int(s * 0.2), fill=255)
    elif kind == 2:
        draw.rectangle((cx - s, cy - s * 0.4, cx + s, cy + s * 0.8), fill=255)
        draw.arc((cx - s * 0.6, cy - s * 1.2, cx + s * 0.6, cy), 180, 360, fill=255, width=max(3, int(s * 0.12)))
    else:
        sole = [(cx - s * 1.2, cy + s * 0.3), (cx + s * 1.1, cy + s * 0.3), (cx + s * 1.2, cy)]
        upper = [(cx + s * 0.2, cy - s * 0.2), (cx - s * 0.5, cy - s * 0.6), (cx - s * 1.2, cy - s * 0.5)]
        draw.polygon(sole + upper, fill=255)
    if busy_texture is not None and rng.random() < 0.5:
        fill = busy_texture(height, width, rng)
    else:
        fill = np.broadcast_to(rng.integers(0, 256, 3).astype(np.uint8), (height, width, 3))
    image.paste(Image.fromarray(np.ascontiguousarray(fill, np.uint8)), (0, 0), shape)
    return np.asarray(image)


def invented(function, *args, **kwargs) -> bool:
    try:
        function(*args, **kwargs)
    except InputError:
        return False
    return True


def main(count: int, seed: int, segmenter_path: str) -> None:
    segmenter = new_session(segmenter_path, provider="cpu")
    generator, tryon = new_session("generator", provider="cpu"), new_session("tryon", provider="cpu")
    garment = catalog_shirt()
    for height, width in ASPECTS:
        found: Counter = Counter()
        kinds = []
        for kind, pixels in garment_free(height, width, seed, count):
            kinds.append(kind)
            photo = Image.fromarray(pixels)
            if invented(extract_garment, photo, generator=generator, segmenter=segmenter):
                found["extract", kind] += 1
            if invented(dress, photo, garment, tryon=tryon, parser=segmenter):
                found["dress", kind] += 1
        for task in ("extract", "dress"):
            total = sum(v for (t, _), v in found.items() if t == task)
            detail = ", ".join(
                f"{kind} {found[task, kind]}/{kinds.count(kind)}"
                for kind in (*KINDS, "busy", "scene", "object")
                if kinds.count(kind)
            )
            print(f"{height}x{width} {task:8s} invents {total}/{len(kinds)} ({detail})", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 40, int(args[1]) if len(args) > 1 else 0, args[2] if len(args) > 2 else "segmenter")
