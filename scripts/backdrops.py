"""``extract`` on persons standing on other backdrops than VITON's pale studio wall.

The first COUNT VITON validation persons, cut out by their parse maps (each row filled from
its first person pixel to its last: the parse maps leave neck and chest skin out; feathered
over a pixel), put on a plain white, black, red, blue, yellow, pink, green and mid-grey
wall, in front of photographed scenes (scikit-image's sample photos, where installed: a
cluttered garage, a table with a cup, a rocket outdoors, a cat's fur, and its brick, grass
and gravel textures tinted; each person on a seeded crop of one, at a seeded scale), in
front of drawn busy scenes as ``train --busy`` draws them (other seeds), and as they are.
``extract`` (the CLI, ``--output-size model``) with the bundled models or the given
segmenter; printed per backdrop: the saved mask's garment IoU against the parse map, the
garment's SSIM against the catalog image, photos with no garment found.

    python scripts/backdrops.py VITON_DIR OUT_DIR [COUNT] [SEGMENTER.onnx] [--only NAME ...]
"""

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from two_people import person  # (scripts/ is this script's folder)

from clothes_extractor.eval.metrics import iou, ssim
from clothes_extractor.runtime.labelmaps import load_label_mask
from clothes_extractor.train.busy import busy_photos

BACKDROPS = {
    "as they are": None,
    "white": (255, 255, 255),
    "black": (20, 20, 20),
    "red": (200, 40, 40),
    "blue": (40, 70, 180),
    "yellow": (240, 210, 60),
    "pink": (245, 190, 200),
    "green": (60, 150, 80),
    "mid-grey": (128, 128, 128),
}
SCENES = {  # scikit-image's sample photos (public domain or CC0): a tint for a grey one
    "scene: garage": ("motorcycle_left.png", None),
    "scene: table": ("coffee.png", None),
    "scene: outdoors": ("rocket.jpg", None),
    "scene: fur": ("chelsea.png", None),
    "scene: brick": ("brick.png", (190, 110, 90)),
    "scene: grass": ("grass.png", (90, 160, 70)),
    "scene: gravel": ("gravel.png", (200, 190, 170)),
}
DRAWN = "drawn busy"  # train.busy's scenes, seeded apart from any run's stream


def scene_folder() -> Path | None:
    """scikit-image's folder of sample photos, or None where it is not installed."""
    spec = importlib.util.find_spec("skimage")
    return Path(spec.submodule_search_locations[0]) / "data" if spec and spec.submodule_search_locations else None


def scene_backdrop(name: str, size: tuple[int, int], seed: int) -> Image.Image:
    """A seeded crop of scene ``name``, of ``size``'s aspect and 45% to 100% of the largest such crop."""
    file, tint = SCENES[name]
    scene = Image.open(scene_folder() / file)
    if tint is not None:
        grey = np.asarray(scene.convert("L"), np.float32)[..., None] / 255
        scene = Image.fromarray((grey * 1.4 * np.array(tint)).clip(0, 255).astype(np.uint8))
    scene = scene.convert("RGB")
    rng = np.random.default_rng(seed)
    width, height = size
    scale = min(scene.width / width, scene.height / height) * rng.uniform(0.45, 1.0)
    w, h = round(width * scale), round(height * scale)
    left, top = int(rng.integers(0, scene.width - w + 1)), int(rng.integers(0, scene.height - h + 1))
    return scene.crop((left, top, left + w, top + h)).resize(size, Image.Resampling.BICUBIC)


def backdrop(name: str, size: tuple[int, int], seed: int) -> Image.Image | None:
    """Backdrop ``name`` at ``size`` (w, h) for person ``seed``; None: the photo as it is."""
    if name in SCENES:
        return scene_backdrop(name, size, seed)
    if name == DRAWN:
        return Image.fromarray(busy_photos(1, size[1], size[0], np.random.default_rng(10_000 + seed))[0])
    return None if BACKDROPS[name] is None else Image.new("RGB", size, BACKDROPS[name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("viton", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("count", type=int, nargs="?", default=100)
    parser.add_argument("segmenter", nargs="?")
    parser.add_argument("--only", nargs="+", help="these backdrops alone (their names as printed)")
    args = parser.parse_args()
    viton, out, count = args.viton, args.out, args.count
    segmenter = ["--segmenter", args.segmenter] if args.segmenter else []
    split = viton / "val"
    pairs = [line.split() for line in open(viton / "val_pairs.txt")][:count]
    truths = {}
    for i, (photo, cloth) in enumerate(pairs):
        parse_map = split / "image-parse" / f"{Path(photo).stem}.png"
        catalog = np.asarray(Image.open(split / "cloth" / cloth).convert("RGB"))
        truths[f"{i:03d}"] = (np.asarray(load_label_mask("parse", parse_map)), catalog, photo, parse_map)
    scenes = list(SCENES) if scene_folder() else []
    if not scenes:
        print("scikit-image is not installed: no scenes (pip install scikit-image)", flush=True)
    for name in [*BACKDROPS, *scenes, DRAWN]:
        if args.only and name not in args.only:
            continue
        folder = out / name.replace(": ", "-").replace(" ", "-")
        folder.mkdir(parents=True, exist_ok=True)
        for key, (_, _, photo, parse_map) in truths.items():
            image = Image.open(split / "image" / photo).convert("RGB")
            wall = backdrop(name, image.size, int(key))
            if wall is not None:
                wall.paste(image, (0, 0), person(parse_map, grow=3, blur=1.0))
                image = wall
            image.save(folder / f"{key}.png")
        garments, masks = Path(f"{folder}-garments"), Path(f"{folder}-masks")
        command = [sys.executable, "-m", "clothes_extractor", "extract", str(folder), "-o", str(garments)]
        command += ["--save-masks", str(masks), "--overwrite", "--output-size", "model", *segmenter]
        subprocess.run(command, check=False, stderr=subprocess.DEVNULL)
        ious, ssims, missing = [], [], 0
        for key, (mask, catalog, _, _) in truths.items():
            if not (garments / f"{key}.png").exists():
                missing += 1
                ious.append(0.0)
                continue
            garment = np.asarray(Image.open(garments / f"{key}.png").convert("RGB"))
            ssims.append(float(ssim(garment[None], catalog[None])[0]))
            saved = Image.open(masks / f"{key}.png").convert("L").resize(mask.shape[::-1], Image.Resampling.BILINEAR)
            ious.append(float(iou(np.asarray(saved)[None], mask[None])[0]))
        print(f"{name:16s} IoU {np.mean(ious):.4f}  SSIM {np.mean(ssims):.4f}  no garment found {missing}", flush=True)


if __name__ == "__main__":
    main()
