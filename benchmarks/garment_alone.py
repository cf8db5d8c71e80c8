"""Garments shown alone: what the parser's ``alone`` head says, and what ``extract`` makes of them.

    python benchmarks/garment_alone.py VITON_DIR [--segmenter FILE] [--count N] [--extract OUT]

VITON_DIR is what ../shared/data/unpack.sh writes (val/cloth, val/image); the Dress Code and
VITON-HD samples beside it in ../shared/data are read where present. Part one: for each set,
how many images the head takes for a garment alone, how many of those the frame's edge keeps
(``alone.shown_alone``), how many ``extract`` would cut out (``alone.alone_plane``: a backdrop it
can tell the garment from) and of those how many show no one wearing it (``alone.shows_person``;
where one does, ``extract`` generates the garment, after a closer look if its top is narrow).
Sets: the first N validation catalog images on white, on a plain colour, on a wood-like grain
(seeded; the grain is no backdrop the head trained on) and on a light colour with the
garment's soft drop shadow (a flat lay under a lamp); the first N validation photos whole,
headless (top 60 rows off), cut to the torso, and a stop and two stops darker (``lit``, as
``evaluate --light 0.5`` / ``0.25``; the catalog images too); Dress Code and VITON-HD photos and catalog
images; Dress Code's full-length photos cut at the top, padded at the sides and mirrored
(``full_length``: 24 each); the N catalog images laid out as an outfit on white, with Dress
Code's trousers under or beside each (``outfit``), beside or above their mirror image (a
product image of front and back views: ``views``) and with a swatch of their fabric beside them
(``swatch``). With ``--extract OUT``, part two runs ``extract`` (``--background transparent``)
on the catalog sets, the outfits, views and swatches, the photos (whole, darker) and the
full-length ones (there a cut-out is a person cut out whole, the second look included) and scores each catalog output
against its catalog image, boxes aligned (an outfit's against its top's, views' against the
front's: trousers, a back or a swatch taken with it cost IoU and shape): silhouette IoU,
mean colour error inside, GMSD and sharpness (1.0: the catalog image's edge energy).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from clothes_extractor.eval.metrics import gmsd, sharpness_ratio
from clothes_extractor.models import model_for
from clothes_extractor.runtime.alone import ALONE_AT, alone_plane, shown_alone, shows_person
from clothes_extractor.runtime.fitting import letterbox_for, shown_box
from clothes_extractor.runtime.session import ModelSession
from clothes_extractor.runtime.silhouette import garment_silhouette

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SHAPE_OFF = 0.25  # (a garment's own cut-out: its aspect within a few percent of its catalog image's)


def grain(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.integers(60, 230, 3).astype(np.float32)
    wave = np.sin(x * rng.uniform(0.05, 0.4) + 3 * np.sin(y * 0.02)) * 18 + rng.normal(0, 8, (h, w))
    return np.clip(base + wave[..., None], 0, 255).astype(np.uint8)


def on_backdrop(image: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    """The catalog garment on a plain colour, a wood-like grain, or (``shadow``) a light plain
    colour with the garment's soft drop shadow on it (8 px down, 6 right, blurred 6 px, 35%)."""
    pixels = np.asarray(image)
    h, w = pixels.shape[:2]
    silhouette = garment_silhouette(pixels)
    if kind == "shadow":
        cast = Image.fromarray(silhouette.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(6))
        shade = np.roll(np.asarray(cast, np.float32) / 255, (8, 6), (0, 1))[..., None]
        backdrop = np.clip(rng.integers(170, 240, 3).astype(np.float32) * (1 - 0.35 * shade), 0, 255)
    elif kind == "plain":
        backdrop = np.broadcast_to(rng.integers(0, 256, 3).astype(np.uint8), (h, w, 3))
    else:
        backdrop = grain(h, w, rng)
    return Image.fromarray(np.where(silhouette[..., None], pixels, backdrop).astype(np.uint8))


def full_length(stem: str, photo: Image.Image) -> list[tuple[str, Image.Image]]:
    """A full-length studio photo as users send them: the top cut off (0, 5, 10 or 15% of its
    height), padded at the sides in its corner's colour (0, 20 or 40% of its width), mirrored
    or not (24 photos)."""
    w, h = photo.size
    made = []
    for cut, pad, mirrored in itertools.product((0, 0.05, 0.1, 0.15), (0, 0.2, 0.4), (False, True)):
        shown = photo.crop((0, int(cut * h), w, h))
        canvas = Image.new("RGB", (int(w * (1 + pad)), shown.height), shown.getpixel((2, 2)))
        canvas.paste(shown, (int(w * pad / 2), 0))
        made.append((f"{stem}-{cut}-{pad}-{mirrored:d}", ImageOps.mirror(canvas) if mirrored else canvas))
    return made


def trousers() -> list[Image.Image]:
    """Dress Code's trousers (label 6 of its label maps), cut out of its full-length photos (RGBA)."""
    found = []
    for path in sorted((SHARED / "dresscode-sample").glob("*/images/*_0.jpg")):
        labels = np.asarray(Image.open(path.parent.parent / "label_maps" / f"{path.stem[:-2]}_4.png"))
        pants = labels == 6
        if pants.sum() >= 2000:
            rgba = np.dstack([np.asarray(Image.open(path).convert("RGB")), pants.astype(np.uint8) * 255])
            found.append(Image.fromarray(rgba, "RGBA").crop(Image.fromarray(pants).getbbox()))
    return found


def outfit(top: Image.Image, pair: Image.Image, layout: int) -> Image.Image:
    """A flat lay of an outfit on white: the catalog top (its garment, cut out of its white)
    with trousers (``pair``, RGBA) under it overlapping its hem by 12 px, touching it, 16 px below it
    (``layout`` 0, 1, 2; a 512x384 frame) or beside it (3; 384x512)."""
    w, h = (384, 512) if layout < 3 else (512, 384)
    canvas = Image.new("RGB", (w, h), (255, 255, 255))
    garment = top.resize((170, 227), Image.Resampling.BICUBIC)
    shape = Image.fromarray(garment_silhouette(np.asarray(garment)))
    garment, shape = garment.crop(shape.getbbox()), shape.crop(shape.getbbox())
    tall = int(h * (0.5 if layout < 3 else 0.8))
    pair = pair.resize((max(1, pair.width * tall // pair.height), tall), Image.Resampling.BICUBIC)
    if layout < 3:
        canvas.paste(pair, ((w - pair.width) // 2, min(h - tall - 8, 20 + garment.height + (-12, 0, 16)[layout])), pair)
        canvas.paste(garment, ((w - garment.width) // 2, 20), shape)
    else:
        canvas.paste(garment, (w // 4 - garment.width // 2, (h - garment.height) // 2), shape)
        canvas.paste(pair, (3 * w // 4 - pair.width // 2, (h - tall) // 2), pair)
    return canvas


def views(image: Image.Image, layout: int) -> Image.Image:
    """A product image of a garment's front and back views on white: the catalog image (the
    front) and its mirror image (standing in for the back: no back views here) side by side
    (``layout`` 0) or one above the other (1), as shops show both; the front first."""
    w, h = image.size
    canvas = Image.new("RGB", (2 * w, h) if layout == 0 else (w, 2 * h), (255, 255, 255))
    canvas.paste(image, (0, 0))
    canvas.paste(ImageOps.mirror(image), (w, 0) if layout == 0 else (0, h))
    return canvas


def swatch(image: Image.Image, corner: int) -> Image.Image:
    """A catalog image with a swatch of its fabric beside the garment, as shops show a colour: a
    square cut from the garment's middle, a fifth of the image's width, in a bottom corner of a
    frame widened by a quarter (``corner`` 0: right, 1: left)."""
    w, h = image.size
    side = w // 5
    piece = image.crop((w // 2 - side // 2, h // 2 - side // 2, w // 2 + side // 2, h // 2 + side // 2))
    canvas = Image.new("RGB", (w + w // 4, h), (255, 255, 255))
    canvas.paste(image, (0 if corner == 0 else w // 4, 0))
    canvas.paste(piece, (w + w // 4 - side - 4 if corner == 0 else 4, h - side - 4))
    return canvas


def lit(image: Image.Image, gain: float) -> Image.Image:
    """``image`` as ``evaluate --light GAIN`` shows it (0.5: a stop darker, 0.25: two)."""
    return Image.fromarray(np.floor(np.asarray(image).astype(np.float32) * np.float32(gain)).astype(np.uint8))


def image_sets(viton: Path, count: int) -> dict[str, list[tuple[str, Image.Image]]]:
    rng = np.random.default_rng(123)
    cloth = sorted((viton / "val" / "cloth").glob("*.jpg"))[:count]
    photos = sorted((viton / "val" / "image").glob("*.jpg"))[:count]
    catalogs = [(p.stem, Image.open(p).convert("RGB")) for p in cloth]
    worn = [(p.stem, Image.open(p).convert("RGB")) for p in photos]
    sets = {
        "catalog white": catalogs,
        "catalog plain": [(n, on_backdrop(i, "plain", rng)) for n, i in catalogs],
        "catalog grain": [(n, on_backdrop(i, "grain", rng)) for n, i in catalogs],
        "catalog shadow": [(n, on_backdrop(i, "shadow", rng)) for n, i in catalogs],
        "photo whole": worn,
        "photo headless": [(n, i.crop((0, 60, i.width, i.height))) for n, i in worn],
        "photo torso": [(n, i.crop((24, 64, 168, 192))) for n, i in worn],
        "photo dark": [(n, lit(i, 0.5)) for n, i in worn],
        "photo dim": [(n, lit(i, 0.25)) for n, i in worn],
        "catalog dark": [(n, lit(i, 0.5)) for n, i in catalogs],
        "catalog dim": [(n, lit(i, 0.25)) for n, i in catalogs],
    }
    for name, pattern in (("dresscode photo", "*_0.jpg"), ("dresscode catalog", "*_1.jpg")):
        found = sorted((SHARED / "dresscode-sample").glob(f"*/images/{pattern}"))
        sets[name] = [(p.stem, Image.open(p).convert("RGB")) for p in found]
    sets["dresscode full length"] = [one for stem, photo in sets["dresscode photo"] for one in full_length(stem, photo)]
    sets["views"] = [(n, views(i, k % 2)) for k, (n, i) in enumerate(catalogs)]
    sets["swatch"] = [(n, swatch(i, k % 2)) for k, (n, i) in enumerate(catalogs)]
    pairs = trousers()
    if pairs:
        sets["outfit"] = [(n, outfit(i, pairs[k // 4 % len(pairs)], k % 4)) for k, (n, i) in enumerate(catalogs)]
    for name, folder in (("viton-hd photo", "image"), ("viton-hd catalog", "cloth")):
        found = sorted((SHARED / "viton-hd-sample").glob(f"*/{folder}/*.jpg"))
        sets[name] = [(p.stem, Image.open(p).convert("RGB")) for p in found]
    return {name: images for name, images in sets.items() if images}


def answers(segmenter: ModelSession, images: list[Image.Image]) -> tuple[int, int, int, int]:
    """(the head says alone, shown alone, cut out, of those whose parse shows no one) counts."""
    contract, threshold = segmenter.contract, segmenter.contract.fit.mask_threshold
    said = kept = cut = nobody = 0
    for start in range(0, len(images), 32):
        chunk = images[start : start + 32]
        planes = [letterbox_for(image, contract.size, contract.fit) for image in chunk]
        out = segmenter.run(image=np.stack([plane for plane, _, _ in planes]))
        for row, (image, (plane, window, _)) in enumerate(zip(chunk, planes, strict=True)):
            shown = shown_box(window, image.size, contract.size)
            x0, y0, x1, y1 = shown
            alone = int(out["alone"][row].max()) if "alone" in out else None
            said += alone is not None and alone >= ALONE_AT
            garment = out["mask"][row, y0:y1, x0:x1, 0] >= threshold
            kept += shown_alone(alone, garment)
            labels = out["labels"][row, ..., 0] if "labels" in out else None
            parsed = alone_plane(plane, shown, out["mask"][row, ..., 0], labels, alone, threshold, contract.labels)
            if parsed:
                cut += 1
                band = parsed[2] if len(parsed) > 2 else None  # (a checkout before views: two answers)
                if band is not None:  # one of several views: its parse alone is asked
                    garment = in_band(out["mask"][row, ..., 0], band)[y0:y1, x0:x1] >= threshold
                    labels = None if labels is None else in_band(labels, band)
                nobody += not shows_person(garment, None if labels is None else labels[y0:y1, x0:x1], contract.labels)
    return said, kept, cut, nobody


def in_band(plane: np.ndarray, band: tuple[int, int, int, int]) -> np.ndarray:
    """``plane`` cleared outside ``band`` (x0, y0, x1, y1): ``fitting.within``, written out here so
    that this benchmark runs on checkouts from before it."""
    out = np.zeros_like(plane)
    out[band[1] : band[3], band[0] : band[2]] = plane[band[1] : band[3], band[0] : band[2]]
    return out


def box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1) if len(rows) else None


def score(output: np.ndarray, truth: np.ndarray) -> tuple[float, float, float, float, float]:
    """(IoU, mean colour error, GMSD, sharpness, shape off) of a garment output (RGBA) against its
    catalog image, the output's garment box resized onto the catalog garment's; shape off: 1.0
    where the boxes' aspects (width / height) differ by over ``SHAPE_OFF`` (two views taken as one
    garment: about twice as wide, or half), else 0.0."""
    silhouette = garment_silhouette(truth)
    alpha = output[..., 3] >= 128
    ours, theirs = box(alpha), box(silhouette)
    if ours is None:
        return 0.0, float("nan"), float("nan"), float("nan"), 1.0
    size = (ours[2] - ours[0], ours[3] - ours[1])
    same = np.asarray(Image.fromarray(silhouette).crop(theirs).resize(size)) > 0
    got = alpha[ours[1] : ours[3], ours[0] : ours[2]]
    colours = np.asarray(Image.fromarray(truth).crop(theirs).resize(size, Image.Resampling.BICUBIC))
    rgb = output[ours[1] : ours[3], ours[0] : ours[2], :3]
    inside = same & got
    a = np.where(inside[..., None], rgb, 255).astype(np.uint8)[None]
    b = np.where(inside[..., None], colours, 255).astype(np.uint8)[None]
    error = float(np.abs(rgb.astype(np.float32) - colours)[inside].mean())
    aspect = (size[0] / size[1]) / ((theirs[2] - theirs[0]) / (theirs[3] - theirs[1]))
    return (
        float(inside.sum() / max(1, (same | got).sum())),
        error,
        float(gmsd(a, b)[0]),
        float(sharpness_ratio(a, b)[0]),
        float(abs(np.log(aspect)) > np.log(1 + SHAPE_OFF)),
    )


def extract_part(sets: dict, viton: Path, segmenter: Path, out: Path) -> None:
    folder = out / "in"
    folder.mkdir(parents=True, exist_ok=True)
    kinds = {"catalog white": "white", "catalog plain": "plain", "catalog grain": "grain", "catalog shadow": "shadow"}
    kinds |= {"outfit": "outfit"}  # scored against the top's catalog image: the trousers are no part of it
    kinds |= {"views": "views"}  # scored against the front's (the catalog image): the back is no part of it
    kinds |= {"swatch": "swatch"}  # scored against the catalog image: the swatch is no part of it
    kinds |= {"photo whole": "whole", "dresscode full length": "fulllength"}  # worn: not scored
    kinds |= {"photo dark": "dark", "photo dim": "dim"}  # worn, a stop and two darker: not scored
    for name, kind in kinds.items():
        for stem, image in sets.get(name, []):
            image.save(folder / f"{kind}-{stem}.png")
    report = out / "report.jsonl"
    cmd = [sys.executable, "-m", "clothes_extractor", "extract", str(folder), "-o", str(out / "out")]
    cmd += ["--segmenter", str(segmenter), "--background", "transparent", "--report", str(report), "--overwrite"]
    print(subprocess.run(cmd, capture_output=True, text=True).stderr.strip().splitlines()[-1])
    scored(report, viton)


def scored(report: Path, viton: Path) -> None:
    """Score the outputs an ``extract --report`` of the sets' images lists (``extract_part``)."""
    rows: dict[str, list] = {}
    for line in report.read_text().splitlines():
        record = json.loads(line)
        kind, stem = Path(record["input"]).stem.split("-", 1)
        found = rows.setdefault(kind, [0, 0, []])
        found[0] += 1
        if record["status"] != "ok":
            continue
        found[1] += record["mask"].endswith("+alone")
        if kind not in ("whole", "fulllength", "dark", "dim"):
            truth = np.asarray(Image.open(viton / "val" / "cloth" / f"{stem}.jpg").convert("RGB"))
            found[2].append(score(np.asarray(Image.open(record["output"]).convert("RGBA")), truth))
    print("\nextract --background transparent | photos | cut out | IoU | colour error | GMSD | sharpness | shape off")
    for kind, (n, cut, scores) in rows.items():
        means = np.nanmean(np.array(scores), axis=0) if scores else [float("nan")] * 5
        off = int(round(means[4] * len(scores))) if scores else 0
        print(f"{kind} | {n} | {cut} | " + " | ".join(f"{v:.3f}" for v in means[:4]) + f" | {off}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("viton", type=Path)
    parser.add_argument("--segmenter", type=Path, default=model_for("segmenter", gpu=False))
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--extract", type=Path, default=None)
    args = parser.parse_args()
    sets = image_sets(args.viton, args.count)
    segmenter = ModelSession(args.segmenter, "cpu")
    print(f"{args.segmenter.name}: set | images | the head says alone | shown alone | cut out | the parse shows no one")
    for name, images in sets.items():
        said, kept, cut, nobody = answers(segmenter, [image for _, image in images])
        print(f"{name} | {len(images)} | {said} | {kept} | {cut} | {nobody}")
    if args.extract is not None:
        extract_part(sets, args.viton, args.segmenter, args.extract)


if __name__ == "__main__":
    main()
