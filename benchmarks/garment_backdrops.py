"""A garment image given to ``tryon --garment`` on a backdrop or framed loosely: fitted as it is,
or cut out onto white first (``alone.on_white``, which ``Dresser.garment`` asks) and cut from
its image as VITON frames a catalog garment (``tryon.framed_garment``).

    python benchmarks/garment_backdrops.py VITON_DIR [VITON_HD_SPLIT] [--count N]

VITON_DIR is what ../shared/data/unpack.sh writes (val/cloth). Part one: the first N (200)
validation catalog images on white as they are and laid on the backdrops of
``garment_alone.on_backdrop`` (a random plain colour, a wood-like grain, a light colour with a
drop shadow; seeded), and laid out as an outfit with Dress Code's trousers (``garment_alone.outfit``,
where ../shared/data has them): how many the dresser cuts out onto white, the fitted garment's silhouette
IoU against the white original's with and without that (the mean, the median, how many got
worse) and the milliseconds ``Dresser.garment`` takes. Part two, with VITON_HD_SPLIT (a
VITON-HD split: image/, cloth/, image-parse-v3/): its first ten persons dressed in their own
garments on white, on those backdrops and framed loosely (centred in a square image on their
own backdrop colour, a shop's framing; in a 1.5 times larger image; in the corner of a 2 times
larger one), as they are and as the dresser fits them now, scored as
``scripts/tryon_resolution.py`` scores (the box of the truth's upper clothes and arms).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import clothes_extractor.runtime.dressing as dressing
import clothes_extractor.runtime.tryon as fitting
from clothes_extractor import dress, new_session
from clothes_extractor.eval.metrics import image_metrics
from clothes_extractor.runtime.dressing import Dresser
from clothes_extractor.runtime.fitting import border_colour
from clothes_extractor.runtime.tryon import fit_garment

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from garment_alone import on_backdrop, outfit, trousers  # noqa: E402
from tryon_resolution import pairs_of, region_box  # noqa: E402

KINDS = ("white", "plain", "grain", "shadow")
FRAMINGS = ("square", "1.5x centred", "2x in a corner")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def silhouettes(dresser: Dresser, catalog: list[Path]) -> None:
    rng = np.random.default_rng(0)
    pairs = trousers()
    for kind in KINDS + (("outfit",) if pairs else ()):
        rows, seconds = [], 0.0
        for k, path in enumerate(catalog):
            white = Image.open(path).convert("RGB")
            truth = fit_garment(white, dresser.size)[1][..., 0] > 127
            if kind == "outfit":  # the top with trousers on white (garment_alone's outfits): the top is the garment
                image = outfit(white, pairs[k // 4 % len(pairs)], k % 4)
            else:
                image = white if kind == "white" else on_backdrop(white, kind, rng)
            as_it_is = fit_garment(image, dresser.size)
            started = time.perf_counter()
            garment = dresser.garment(image)
            seconds += time.perf_counter() - started
            cut = not np.array_equal(garment.image, as_it_is[0])
            rows.append((cut, iou(as_it_is[1][..., 0] > 127, truth), iou(garment.mask[..., 0] > 127, truth)))
        found = np.array(rows, float)
        worse = int((found[:, 2] < found[:, 1] - 0.01).sum())
        print(
            f"{kind}: {int(found[:, 0].sum())} of {len(found)} cut out onto white; silhouette IoU against the white "
            f"original's {found[:, 1].mean():.3f} -> {found[:, 2].mean():.3f} (median {np.median(found[:, 1]):.3f} -> "
            f"{np.median(found[:, 2]):.3f}), {worse} worse; {1000 * seconds / len(found):.0f} ms a garment"
        )


def framed(image: Image.Image, framing: str) -> Image.Image:
    """The catalog image framed loosely, on its own border colour."""
    w, h = image.size
    size, at = {
        "square": ((h, h), ((h - w) // 2, 0)),
        "1.5x centred": ((w * 3 // 2, h * 3 // 2), (w // 4, h // 4)),
        "2x in a corner": ((2 * w, 2 * h), (0, 0)),
    }[framing]
    canvas = Image.new("RGB", size, border_colour(np.asarray(image)))
    canvas.paste(image, at)
    return canvas


def dressed(tryon, parser, split: Path) -> None:
    pairs = pairs_of(split, 10)
    rng = np.random.default_rng(0)
    kept = dressing.on_white, fitting.FRAME_FILL, fitting.backdrop_of
    for kind in KINDS + FRAMINGS:
        garments = [Image.open(cloth).convert("RGB") for _, cloth, _, _ in pairs]
        if kind in FRAMINGS:
            garments = [framed(garment, kind) for garment in garments]
        elif kind != "white":
            garments = [on_backdrop(garment, kind, rng) for garment in garments]
        for mode in ("as it is", "fitted now"):
            if mode == "as it is":  # (what the dresser did before 2026-12-03)
                dressing.on_white, fitting.FRAME_FILL, fitting.backdrop_of = lambda *a: None, 0.0, lambda g: (255,) * 3
            else:
                dressing.on_white, fitting.FRAME_FILL, fitting.backdrop_of = kept
            outputs = dress([str(pair[0]) for pair in pairs], garments, tryon=tryon, parser=parser)
            scores = []
            for (person, _, parsing, labels), output in zip(pairs, outputs, strict=True):
                truth = Image.open(person).convert("RGB")
                box = region_box(parsing, labels, truth.size)
                found = image_metrics(np.asarray(output)[box][None], np.asarray(truth)[box][None])
                scores.append({k: float(np.mean(v)) for k, v in found.items()})
            means = "  ".join(f"{k} {np.mean([s[k] for s in scores]):.4f}" for k in scores[0])
            print(f"{kind}, {mode}: {means}")
    dressing.on_white, fitting.FRAME_FILL, fitting.backdrop_of = kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("viton", type=Path)
    parser.add_argument("split", type=Path, nargs="?")
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    catalog = sorted((args.viton / "val" / "cloth").glob("*.jpg"))[: args.count]
    with new_session("tryon", "cpu") as tryon, new_session("segmenter", "cpu") as segmenter:
        silhouettes(Dresser(tryon, segmenter), catalog)
        if args.split is not None:
            dressed(tryon, segmenter, args.split)


if __name__ == "__main__":
    main()
