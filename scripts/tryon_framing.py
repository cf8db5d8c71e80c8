"""Try-on on full-body photos, with and without the parser's second look (``Dresser.parse``).

Each person is dressed in their own catalog garment (paired), and the output is scored
against the photo itself at the photo's resolution, over the box of the truth's upper
clothes and arms (the dataset's human parsing), so the copied rest of the photo does not
count. Also writes a sheet: photo | whole photo only | with the second look.

    python scripts/tryon_framing.py SPLIT_DIR OUT_DIR [LIMIT]

SPLIT_DIR: a Dress Code category folder (images/, label_maps/) or a VITON split (image/,
cloth/, image-parse/). Paired scores favour leaving the photo as it is; look at the sheet.
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from clothes_extractor import dress, new_session
from clothes_extractor.eval.metrics import image_metrics
from clothes_extractor.runtime import dressing
from clothes_extractor.runtime.fitting import letterbox


def pairs_of(root: Path, limit: int) -> list[tuple[Path, Path, Path, tuple[int, ...]]]:
    """(person, catalog garment, parsing, the parsing's labels of upper clothes and arms)."""
    if (root / "label_maps").is_dir():  # Dress Code (ATR labels)
        persons = sorted((root / "images").glob("*_0.jpg"))[:limit]
        return [(p, p.with_name(p.name.replace("_0.", "_1.")), root / "label_maps" / p.name.replace("_0.jpg", "_4.png"),
                 (4, 14, 15)) for p in persons]  # fmt: skip
    persons = sorted((root / "image").glob("*.jpg"))[:limit]  # VITON (LIP labels)
    return [(p, root / "cloth" / p.name.replace("_0.", "_1."), root / "image-parse" / p.name.replace(".jpg", ".png"),
             (5, 14, 15)) for p in persons]  # fmt: skip


def main() -> None:
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    pairs = pairs_of(root, int(sys.argv[3]) if len(sys.argv) > 3 else 10)
    out.mkdir(parents=True, exist_ok=True)
    tryon, parser = new_session("tryon", "cpu"), new_session("segmenter", "cpu")
    second_look = dressing.upper_body_window
    outputs = {}
    for mode, window in (("whole photo", lambda *args, **kwargs: None), ("second look", second_look)):
        dressing.upper_body_window = window
        outputs[mode] = dress([str(p[0]) for p in pairs], [str(p[1]) for p in pairs], tryon=tryon, parser=parser)
        scores = []
        for (person, _, parsing, region), dressed in zip(pairs, outputs[mode], strict=True):
            ys, xs = np.nonzero(np.isin(np.asarray(Image.open(parsing)), region))
            box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
            truth = np.asarray(Image.open(person).convert("RGB"))[box]
            scores.append(
                {k: float(np.mean(v)) for k, v in image_metrics(np.asarray(dressed)[box][None], truth[None]).items()}
            )
        print(f"{mode:12s}", "  ".join(f"{k} {np.mean([s[k] for s in scores]):.4f}" for k in scores[0]))
    contract = parser.contract
    zoomed = 0
    for person, *_ in pairs:
        photo = Image.open(person).convert("RGB")
        ((classes, plane),) = dressing.Dresser(tryon, parser)._parse(
            [letterbox(photo, contract.size, contract.fit.pad_rgb)]
        )
        zoomed += second_look(np.asarray(classes), plane, photo.size, contract.size, contract.labels) is not None
    print(f"second look on {zoomed} of {len(pairs)} photos")
    w, h = 192, 256
    shown = pairs[:12]
    sheet = Image.new("RGB", (w * 3, h * len(shown)), "white")
    for i, (person, *_) in enumerate(shown):
        for j, image in enumerate([Image.open(person).convert("RGB"), *(outputs[m][i] for m in outputs)]):
            sheet.paste(image.resize((w, h)), (j * w, i * h))
    sheet.save(out / "sheet.jpg", quality=88)


if __name__ == "__main__":
    main()
