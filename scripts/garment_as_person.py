"""How often ``tryon`` takes a person photo for a garment shown alone (``alone.no_one_wears``,
the check ``Dresser.parse`` makes), on person photos and on catalog images given as persons.

Runs the bundled parser on each photo's first look (letterboxed, as ``tryon`` sees it) and
prints, per set, how many the check refuses and how many the head alone calls alone:

    python scripts/garment_as_person.py VITON_DIR [VITON_HD_DIR] [DRESSCODE_DIR] [LIMIT]

VITON_DIR: a VITON split (image/, cloth/); its persons, its first LIMIT (500) persons cropped
as shops crop them (headless, from the neck down, the torso, the upper half), and its first
LIMIT catalog images, on white as they are and moved onto a beige backdrop (their silhouette kept).
VITON_HD_DIR: a VITON-HD split (image/); DRESSCODE_DIR: a Dress Code folder (*_0.jpg persons).
"""

import sys
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from clothes_extractor import new_session
from clothes_extractor.runtime.alone import ALONE_AT, no_one_wears
from clothes_extractor.runtime.fitting import letterbox_for, shown_box
from clothes_extractor.runtime.silhouette import garment_silhouette

BEIGE = np.array([236, 226, 208], np.uint8)
CROPS = {  # (x0, y0, x1, y1), shares of the photo
    "headless": (0, 0.22, 1, 1),
    "from the neck down": (0, 0.3, 1, 1),
    "the torso": (0.1, 0.25, 0.9, 0.75),
    "the upper half": (0, 0, 1, 0.6),
}


def judged(parser, photos: list[Path], change: Callable | None = None) -> list[tuple[int, bool]]:
    """(the head's alone, refused) for each photo (``change``d first), 16 at a time."""
    contract, found = parser.contract, []
    for start in range(0, len(photos), 16):
        images = [Image.open(path).convert("RGB") for path in photos[start : start + 16]]
        if change is not None:
            images = [change(image) for image in images]
        planes = [letterbox_for(image, contract.size, contract.fit)[:2] for image in images]
        result = parser.run(image=np.stack([plane for plane, _ in planes]))
        for index, (image, (_, window)) in enumerate(zip(images, planes, strict=True)):
            labels = result["labels"][index, :, :, 0]
            x0, y0, x1, y1 = shown_box(window, image.size, labels.shape)
            alone = int(result["alone"][index].max())
            found.append((alone, no_one_wears(alone, labels[y0:y1, x0:x1], contract.labels)))
    return found


def cropped(box: tuple[float, ...], image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))


def on_beige(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image)
    return Image.fromarray(np.where(garment_silhouette(pixels)[..., None], pixels, BEIGE).astype(np.uint8))


def main() -> None:
    args = sys.argv[1:]
    limit = int(args.pop()) if args and args[-1].isdigit() else 500
    viton = Path(args[0])
    persons = sorted((viton / "image").glob("*.jpg"))
    sets = [("VITON persons", persons, None)]
    sets += [(f"VITON persons, {name}", persons[:limit], partial(cropped, box)) for name, box in CROPS.items()]
    if len(args) > 1:
        sets.append(("VITON-HD persons", sorted((Path(args[1]) / "image").glob("*.jpg")), None))
    if len(args) > 2:
        sets.append(("Dress Code persons", sorted(Path(args[2]).rglob("*_0.jpg")), None))
    catalog = sorted((viton / "cloth").glob("*.jpg"))[:limit]
    sets += [("VITON catalog images, on white", catalog, None), ("the same on a beige backdrop", catalog, on_beige)]
    with new_session("segmenter", "cpu") as parser:
        for name, photos, change in sets:
            found = judged(parser, photos, change)
            refused = sum(flag for _, flag in found)
            head = sum(alone >= ALONE_AT for alone, _ in found)
            print(f"{name}: {refused} of {len(found)} refused as a garment alone (the head alone: {head})")


if __name__ == "__main__":
    main()
