"""A garment shown alone under a lamp: how much of its drop shadow its silhouette takes in.

    python scripts/shadow_silhouettes.py VITON_DIR [VITON_HD_SPLIT] [--count N] [--out DIR]

Part one, at the first look (the bundled parser on the letterboxed image, ``alone``'s
``backdrop_silhouette`` on its garment plane, as ``alone.alone_plane`` finds it): the first N
(200) VITON validation catalog images on white, a plain colour, a wood-like grain and a light
colour with their soft drop shadow (``benchmarks/garment_alone.py``'s ``on_backdrop``, the same
seed), IoU against the white original's silhouette with the shadow left on the backdrop
(``backdrop.without_shadow``) and without that step. Part two, with VITON_HD_SPLIT (cloth/): its
catalog images at 1024x768 under a shadow four times as wide (32 px down, 24 right, blurred
24 px, 35% darker; beige and a pale blue in turn), cut out by ``extract --save-masks``: IoU of
the mask over the photo against the catalog image's silhouette. A checkout from before
``without_shadow`` measures the silhouettes as they were (part one then prints one column).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

import clothes_extractor.runtime.alone as alone
from clothes_extractor import new_session
from clothes_extractor.runtime.fitting import letterbox_for, shown_box
from clothes_extractor.runtime.silhouette import garment_silhouette

try:
    import clothes_extractor.runtime.backdrop as backdrop
except ImportError:  # a checkout from before runtime/backdrop.py: the silhouette lived in alone
    backdrop = alone

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from garment_alone import on_backdrop  # noqa: E402

LAMP_BACKDROPS = ((236, 226, 208), (210, 225, 240))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def first_look(parser, image: Image.Image, truth: np.ndarray) -> float | None:
    contract = parser.contract
    plane, window, _ = letterbox_for(image, contract.size, contract.fit)
    out = parser.run(image=plane[None])
    x0, y0, x1, y1 = shown_box(window, image.size, contract.size)
    threshold = contract.fit.mask_threshold
    garment = alone.parsed_garment(out["mask"][0, ..., 0], out["labels"][0, ..., 0], threshold)
    found = backdrop.backdrop_silhouette(plane[y0:y1, x0:x1], garment[y0:y1, x0:x1] >= threshold)
    if found is None:
        return None
    fitted = Image.fromarray(truth).resize((x1 - x0, y1 - y0), Image.Resampling.NEAREST)
    return iou(found, np.asarray(fitted))


def part_one(viton: Path, count: int) -> None:
    cloth = sorted((viton / "val" / "cloth").glob("*.jpg"))[:count]
    shipped = getattr(backdrop, "without_shadow", None)
    steps = (
        {"now": shipped, "without the shadow step": (lambda rgb, found, *rest: found)}
        if shipped
        else {"as it was": None}
    )
    with new_session("segmenter", "cpu") as parser:
        for kind in ("white", "plain", "grain", "shadow"):
            scores = {}
            for name, step in steps.items():
                if step is not None:
                    backdrop.without_shadow = step
                rng = np.random.default_rng(123)
                found = []
                for path in cloth:
                    white = Image.open(path).convert("RGB")
                    image = white if kind == "white" else on_backdrop(white, kind, rng)
                    found.append(first_look(parser, image, garment_silhouette(np.asarray(white))))
                scores[name] = found
            if shipped:
                backdrop.without_shadow = shipped
            both = [i for i in range(len(cloth)) if all(s[i] is not None for s in scores.values())]
            line = ", ".join(f"{name} {np.mean([s[i] for i in both]):.4f}" for name, s in scores.items())
            if len(scores) == 2:
                now, before = (np.array([s[i] for i in both]) for s in scores.values())
                line += f"; {(now > before + 0.005).sum()} better, {(now < before - 0.005).sum()} worse by 0.005"
            print(f"first look, {kind}: {len(both)} of {len(cloth)} silhouettes found; IoU {line}", flush=True)


def under_a_wide_lamp(image: np.ndarray, truth: np.ndarray, backdrop) -> np.ndarray:
    h, w = truth.shape
    cast = np.zeros((h, w), np.uint8)
    cast[32:, 24:] = truth[:-32, :-24] * 255
    shade = np.asarray(Image.fromarray(cast).filter(ImageFilter.GaussianBlur(24)), np.float32)[..., None] / 255
    floor = np.asarray(backdrop, np.float32) * (1 - 0.35 * shade)
    return np.where(truth[..., None], image, floor.round().astype(np.uint8))


def part_two(split: Path, out: Path) -> None:
    folder, truths = out / "in", {}
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(sorted((split / "cloth").glob("*.jpg"))):
        image = np.asarray(Image.open(path).convert("RGB"))
        truths[path.stem] = truth = garment_silhouette(image)
        lamp = under_a_wide_lamp(image, truth, LAMP_BACKDROPS[i % 2])
        Image.fromarray(lamp).save(folder / f"{path.stem}.jpg", quality=92)
    cmd = [sys.executable, "-m", "clothes_extractor", "extract", str(folder), "-o", str(out / "out")]
    cmd += ["--save-masks", str(out / "masks"), "--overwrite"]
    print(subprocess.run(cmd, capture_output=True, text=True).stderr.strip().splitlines()[-1])
    scores = []
    for stem, truth in truths.items():
        mask = (
            Image.open(out / "masks" / f"{stem}.png").convert("L").resize(truth.shape[::-1], Image.Resampling.BILINEAR)
        )
        scores.append(iou(np.asarray(mask) >= 128, truth))
    print(
        f"1024x768 under a wide shadow, as extract cuts them out: IoU {np.mean(scores):.3f}",
        [round(s, 3) for s in scores],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("viton", type=Path)
    parser.add_argument("vitonhd", type=Path, nargs="?")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    part_one(args.viton, args.count)
    if args.vitonhd is not None:
        with tempfile.TemporaryDirectory() as tmp:
            part_two(args.vitonhd, args.out or Path(tmp))


if __name__ == "__main__":
    main()
