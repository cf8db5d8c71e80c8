"""What of a catalog image's silhouette does ``extract`` leave out of a garment shown alone? Since
2026-12-04 the backdrop the garment encloses (``backdrop.enclosed_backdrop``: between a long
sleeve and the body its cuff touches, inside a cami's straps, through a keyhole); before, nothing
but a shadow's pixels. Runs ``extract --save-masks --output-size model`` on VITON's validation
catalog images (and every fifth training one with ``--train``), compares each mask it cut a
garment alone out with against ``garment_silhouette`` of the catalog image (inside its edge's two
pixels), and prints how many images lose pixels, how many pixels, and what share of them is the
backdrop's colour (within 20 levels of the image's border colour: a gap; a print of another
colour would not be). With ``--sheet FILE``, the images that lose the most, the pixels left out
in red (dataset images: look, do not commit).

    python scripts/enclosed_gaps.py VITON_DIR [--train] [--sheet FILE]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from clothes_extractor.runtime.fitting import border_colour
from clothes_extractor.runtime.silhouette import dilate, garment_silhouette

EDGE = 2  # pixels of the silhouette's edge not counted: the saved mask's resize rounds them either way


def left_out(folder: Path, work: Path) -> list[tuple[str, int, int, float]]:
    """Per catalog image cut out as a garment alone: (name, its silhouette's pixels, those of them
    ``EDGE`` or more inside its edge that the mask leaves out, the share of those within 20 levels
    of the border colour)."""
    report = work / "report.jsonl"
    subprocess.run(
        [sys.executable, "-m", "clothes_extractor", "extract", str(folder), "-o", str(work / "out")]
        + ["--save-masks", str(work / "masks"), "--output-size", "model", "--report", str(report)],
        check=False,
        capture_output=True,
    )
    rows = []
    for record in map(json.loads, open(report)):
        if record.get("mask") != "segmenter+alone":
            continue
        pixels = np.asarray(Image.open(record["input"]).convert("RGB"))
        mask = Image.open(record["saved_mask"]).convert("L").resize(pixels.shape[1::-1], Image.Resampling.BILINEAR)
        silhouette = garment_silhouette(pixels)
        out = ~dilate(~silhouette, EDGE) & (np.asarray(mask) < 128)  # (not the edge's rounding)
        near = np.abs(pixels[out].astype(int) - border_colour(pixels)).max(-1) <= 20
        rows.append(
            (
                Path(record["input"]).stem,
                int(silhouette.sum()),
                int(out.sum()),
                float(near.mean()) if out.any() else 1.0,
            )
        )
    return rows


def sheet(folder: Path, work: Path, names: list[str], path: Path) -> None:
    tiles = []
    for name in names:
        photo = next(folder.glob(f"{name}.*"))
        pixels = np.asarray(Image.open(photo).convert("RGB")).copy()
        mask = Image.open(work / "masks" / f"{name}.png").convert("L").resize(pixels.shape[1::-1])
        marked = pixels.copy()
        marked[~dilate(~garment_silhouette(pixels), EDGE) & (np.asarray(mask) < 128)] = (255, 0, 0)
        tiles.append(np.concatenate([pixels, marked], 1))
    h, w = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    canvas = Image.new("RGB", (4 * w, h * -(-len(tiles) // 4)), "white")
    for i, tile in enumerate(tiles):
        canvas.paste(Image.fromarray(tile), ((i % 4) * w, (i // 4) * h))
    canvas.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("viton", type=Path)
    parser.add_argument("--train", action="store_true", help="also every fifth training catalog image")
    parser.add_argument("--sheet", type=Path, help="contact sheet of the 24 images that lose the most")
    args = parser.parse_args()
    sets = {"val": args.viton / "val" / "cloth"}
    if args.train:
        sets["train (every fifth)"] = args.viton / "train" / "cloth"
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in sets.items():
            work = Path(tmp) / name.split()[0]
            if name.startswith("train"):
                chosen = work / "photos"
                chosen.mkdir(parents=True)
                for photo in sorted(folder.glob("*.jpg"))[::5]:
                    (chosen / photo.name).symlink_to(photo)
                folder = chosen
            rows = left_out(folder, work)
            losing = [r for r in rows if r[2]]
            pixels = sum(r[2] for r in losing)
            near = sum(r[2] * r[3] for r in losing) / max(1, pixels)
            print(
                f"{name}: {len(rows)} cut out as a garment alone, {len(losing)} lose pixels of their catalog "
                f"silhouette, {pixels} pixels in all ({pixels / max(1, sum(r[1] for r in rows)):.4%} of the "
                f"silhouettes), {near:.2%} of them within 20 levels of the backdrop's colour"
            )
            if args.sheet and name == "val" and losing:
                worst = sorted(losing, key=lambda r: -r[2] / r[1])[:24]
                sheet(folder, work, [r[0] for r in worst], args.sheet)


if __name__ == "__main__":
    main()
