"""A photo of two people: does ``extract`` give the larger person's garment, or a blend of both?

Two-person photos made of VITON validation pairs: person A (pair 2i) at full size and
person B (pair 2i+1) scaled by SCALE, each cut out by its parse map (feathered) and placed
side by side on a studio grey, GAP pixels apart, A on SIDE. ``extract`` (the CLI, the
bundled models, ``--output-size model``) runs on them and on A's photo alone; printed: the
saved mask's garment IoU against A's parse-map garment where A stands, and the garment's
SSIM / GMSD against A's catalog image (the same for A alone: the reference).

    python scripts/two_people.py VITON_DIR OUT_DIR [COUNT] [SCALE] [SIDE] [GAP]

e.g. ``python scripts/two_people.py /work/data/viton /tmp/two 40 0.8 left 24``. Measures the
checkout in the current folder (``cd OLD_CHECKOUT && PYTHONPATH=. python .../two_people.py``
measures another).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from clothes_extractor.eval.metrics import gmsd, iou, ssim
from clothes_extractor.runtime.labelmaps import load_label_mask

BACKDROP = (236, 236, 236)


def person(parse_map: Path, size: tuple[int, int] | None = None, grow: int = 5, blur: float = 1.5) -> Image.Image:
    """The person's pixels of a VITON photo (parse map not background, each row filled from
    its first to its last: the parse maps leave the neck out), grown and feathered; at
    ``size`` (w, h), else the map's own."""
    labels = Image.open(parse_map)
    found = np.asarray(labels.resize(size, Image.Resampling.NEAREST) if size else labels) != 0
    columns = np.arange(found.shape[1])
    first = np.where(found.any(1), found.argmax(1), found.shape[1])
    last = found.shape[1] - 1 - found[:, ::-1].argmax(1)
    filled = (columns >= first[:, None]) & (columns <= last[:, None])
    cut = Image.fromarray((filled * 255).astype(np.uint8))
    return cut.filter(ImageFilter.MaxFilter(grow)).filter(ImageFilter.GaussianBlur(blur))


def make_photos(viton: Path, out: Path, count: int, scale: float, side: str, gap: int) -> dict:
    split = viton / "val"
    pairs = [line.split() for line in open(viton / "val_pairs.txt")][: 2 * count]
    truths = {}
    for folder in ("two", "alone"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (a, cloth), (b, _) = pairs[2 * i], pairs[2 * i + 1]
        photo_a = Image.open(split / "image" / a).convert("RGB")
        photo_b = Image.open(split / "image" / b).convert("RGB")
        photo_b = photo_b.resize((round(192 * scale), round(256 * scale)), Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (192 + gap + photo_b.width, 256), BACKDROP)
        xa, xb = (0, 192 + gap) if side == "left" else (photo_b.width + gap, 0)
        parse_a, parse_b = (split / "image-parse" / f"{Path(name).stem}.png" for name in (a, b))
        canvas.paste(photo_a, (xa, 0), person(parse_a, (192, 256)))
        canvas.paste(photo_b, (xb, 256 - photo_b.height), person(parse_b, photo_b.size))
        truth = Image.new("L", canvas.size, 0)
        truth.paste(load_label_mask("parse", parse_a).resize((192, 256)), (xa, 0))
        name = f"{i:03d}"
        canvas.save(out / "two" / f"{name}.png")
        photo_a.save(out / "alone" / f"{name}.png")
        truths[name] = (np.asarray(truth), np.asarray(Image.open(split / "cloth" / cloth).convert("RGB")))
    return truths


def score(out: Path, folder: str, truths: dict) -> dict:
    garments, masks = out / f"{folder}-out", out / f"{folder}-masks"
    command = [sys.executable, "-m", "clothes_extractor", "extract", str(out / folder), "-o", str(garments)]
    command += ["--save-masks", str(masks), "--overwrite", "--output-size", "model"]
    command += ["--report", str(out / f"{folder}.jsonl")]
    subprocess.run(command, check=False, stderr=subprocess.DEVNULL)
    ssims, gmsds, ious = [], [], []
    for name, (mask, cloth) in truths.items():
        if not (garments / f"{name}.png").exists():
            continue
        garment = np.asarray(Image.open(garments / f"{name}.png").convert("RGB"))[None]
        ssims.append(float(ssim(garment, cloth[None])[0]))
        gmsds.append(float(gmsd(garment, cloth[None])[0]))
        saved = Image.open(masks / f"{name}.png").convert("L").resize(mask.shape[::-1], Image.Resampling.BILINEAR)
        if folder == "two":
            ious.append(float(iou(np.asarray(saved)[None], mask[None])[0]))
    sources = [json.loads(line)["mask"] for line in open(out / f"{folder}.jsonl")]
    found = {
        "extracted": len(ssims),
        "ssim": round(float(np.mean(ssims)), 4),
        "gmsd": round(float(np.mean(gmsds)), 4),
        "masks": {source: sources.count(source) for source in sorted(set(sources))},
    }
    if ious:
        found.update(iou=round(float(np.mean(ious)), 4), iou_under_half=sum(v < 0.5 for v in ious))
    return found


def main() -> None:
    viton, out = Path(sys.argv[1]), Path(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    scale = float(sys.argv[4]) if len(sys.argv) > 4 else 0.8
    side = sys.argv[5] if len(sys.argv) > 5 else "left"
    gap = int(sys.argv[6]) if len(sys.argv) > 6 else 24
    truths = make_photos(viton, out, count, scale, side, gap)
    print(json.dumps({folder: score(out, folder, truths) for folder in ("two", "alone")}, indent=1))


if __name__ == "__main__":
    main()
