"""Try-on at the model's size or at the person's own resolution (``tryon --resolution``).

Each person is dressed in their own catalog garment (paired) twice, with the garment warped
onto the person at the model's 256x192 (upsampled) and at the photo's own resolution (up
to 1024x768), and each output is scored against the photo at the photo's resolution over
the box of the truth's upper clothes and arms (the dataset's human parsing), so the copied
rest of the photo does not count. Prints the means and the seconds each mode took, and
writes a sheet of that box: model size | photo resolution | photo.

    python scripts/tryon_resolution.py SPLIT_DIR OUT_DIR [LIMIT]

SPLIT_DIR: a Dress Code category folder (images/, label_maps/), a VITON-HD split (image/,
cloth/, image-parse-v3/) or a VITON split (image/, cloth/, image-parse/).
"""

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from clothes_extractor import dress, new_session
from clothes_extractor.eval.metrics import image_metrics

ARMS = (14, 15)  # LIP's and ATR's left and right arm


def pairs_of(root: Path, limit: int) -> list[tuple[Path, Path, Path, tuple[int, ...]]]:
    """(person, catalog garment, parsing, the parsing's labels of upper clothes and arms)."""
    if (root / "label_maps").is_dir():  # Dress Code (ATR labels: 4 upper clothes)
        persons = sorted((root / "images").glob("*_0.jpg"))[:limit]
        return [(p, p.with_name(p.name.replace("_0.", "_1.")), root / "label_maps" / p.name.replace("_0.jpg", "_4.png"),
                 (4, *ARMS)) for p in persons]  # fmt: skip
    persons = sorted((root / "image").glob("*.jpg"))[:limit]
    if (root / "image-parse-v3").is_dir():  # VITON-HD (LIP labels: 5 upper clothes); the garment has the photo's name
        return [(p, root / "cloth" / p.name, root / "image-parse-v3" / p.with_suffix(".png").name, (5, *ARMS))
                for p in persons]  # fmt: skip
    return [(p, root / "cloth" / p.name.replace("_0.", "_1."), root / "image-parse" / p.with_suffix(".png").name,
             (5, *ARMS)) for p in persons]  # fmt: skip


def region_box(parsing: Path, labels: tuple[int, ...], size: tuple[int, int]) -> tuple[slice, slice]:
    """The box (rows, columns) of the truth's upper clothes and arms, on a photo of ``size`` (w, h)."""
    parse = Image.open(parsing)
    if parse.size != size:
        parse = parse.resize(size, Image.Resampling.NEAREST)
    ys, xs = np.nonzero(np.isin(np.asarray(parse), labels))
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


def main() -> None:
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    pairs = pairs_of(root, int(sys.argv[3]) if len(sys.argv) > 3 else 10)
    out.mkdir(parents=True, exist_ok=True)
    tryon, parser = new_session("tryon", "cpu"), new_session("segmenter", "cpu")
    persons, garments = [str(p[0]) for p in pairs], [str(p[1]) for p in pairs]
    dress(persons[:1], garments[:1], tryon=tryon, parser=parser)  # (warm: the first run's arena)
    outputs, boxes = {}, []
    for resolution in ("model", "photo"):
        started = time.perf_counter()
        outputs[resolution] = dress(persons, garments, tryon=tryon, parser=parser, resolution=resolution)
        seconds = time.perf_counter() - started
        scores = []
        for index, ((person, _, parsing, labels), dressed) in enumerate(zip(pairs, outputs[resolution], strict=True)):
            truth = Image.open(person).convert("RGB")
            box = region_box(parsing, labels, truth.size)
            if len(boxes) <= index:
                boxes.append(box)
            found = image_metrics(np.asarray(dressed)[box][None], np.asarray(truth)[box][None])
            scores.append({k: float(np.mean(v)) for k, v in found.items()})
        means = "  ".join(f"{k} {np.mean([s[k] for s in scores]):.4f}" for k in scores[0])
        print(f"{resolution:6s} {means}  ({seconds:.1f} s for {len(pairs)} pairs)")
    w, h = 300, 400
    shown = list(range(min(12, len(pairs))))
    sheet = Image.new("RGB", (w * 3, h * len(shown)), "white")
    for row, index in enumerate(shown):
        rows, cols = boxes[index]
        crop = (cols.start, rows.start, cols.stop, rows.stop)
        images = [outputs["model"][index], outputs["photo"][index], Image.open(pairs[index][0]).convert("RGB")]
        for column, image in enumerate(images):
            part = image.crop(crop)
            part.thumbnail((w, h), Image.Resampling.LANCZOS)
            sheet.paste(part, (column * w + (w - part.width) // 2, row * h + (h - part.height) // 2))
    sheet.save(out / "sheet.jpg", quality=90)


if __name__ == "__main__":
    main()
