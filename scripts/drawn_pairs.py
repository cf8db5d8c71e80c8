"""Two drawn figures in one photo: does ``tryon`` dress the larger and leave the other be?

The 30 ordered pairs of the six example figures (``examples/photos/figure-*.jpg``), the
second at SCALE of the size, GAP pixels to the right of the first, on the first's backdrop:
the photos ``tests/test_people.py`` draws (``two_figures``, imported from there). ``tryon``
(the CLI, the bundled try-on model, the bundled parser or PARSER.onnx) dresses each in a
plain red shirt drawn on white. Printed per pair: whether every pixel right of the first
figure's frame and half the gap is untouched, whether over 10% of the first figure's frame
is redrawn, or that no photo came back; then the counts. The test takes one pair (figures 2
and 3); this measures all 30, what a parser that loses drawn figures loses.

    python scripts/drawn_pairs.py OUT_DIR [PARSER.onnx] [SCALE] [GAP]

Needs the dev extra (it imports the tests' drawing). Measures the checkout in the current
folder.
"""

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_people import two_figures  # noqa: E402  (the tests' drawing, not a copy of it)

WIDTH = 192  # the example figures' width: the first figure's frame


def shirt(path: Path) -> Path:
    """The catalog garment: a plain red shirt drawn on white (the test's)."""
    garment = Image.new("RGB", (192, 256), "white")
    outline = [(40, 40), (152, 40), (170, 90), (140, 90), (140, 220), (52, 220), (52, 90), (22, 90)]
    ImageDraw.Draw(garment).polygon(outline, fill=(200, 30, 40))
    garment.save(path)
    return path


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    parser = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "-" else None
    scale = float(sys.argv[3]) if len(sys.argv) > 3 else 0.75
    gap = int(sys.argv[4]) if len(sys.argv) > 4 else 24
    photos = out / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    names = [two_figures(photos, a, b, scale, gap).name for a, b in itertools.permutations(range(1, 7), 2)]
    cmd = [sys.executable, "-m", "clothes_extractor", "tryon", "--person", str(photos)]
    cmd += ["--garment", str(shirt(out / "shirt.png")), "-o", str(out / "dressed"), "--overwrite"]
    subprocess.run(cmd + (["--parser", parser] if parser else []), capture_output=True, text=True)
    counts = {"right": 0, "other figure changed": 0, "larger not redrawn": 0, "no photo": 0}
    keep = WIDTH + gap // 2  # the columns from here on are the second figure's
    for name in names:
        found = sorted((out / "dressed").glob(Path(name).stem + "*"))
        if not found:
            counts["no photo"] += 1
            print(name, "no photo")
            continue
        before = np.asarray(Image.open(photos / name).convert("RGB")).astype(int)
        after = np.asarray(Image.open(found[0]).convert("RGB")).astype(int)
        untouched = np.array_equal(after[:, keep:], before[:, keep:])
        redrawn = (np.abs(after[:, :WIDTH] - before[:, :WIDTH]).sum(-1) > 30).mean() > 0.1
        counts["right"] += untouched and redrawn
        counts["other figure changed"] += not untouched
        counts["larger not redrawn"] += not redrawn
        print(name, "other untouched" if untouched else "OTHER CHANGED", "larger redrawn" if redrawn else "LARGER NOT")
    print(", ".join(f"{kind}: {n}" for kind, n in counts.items()), f"(of {len(names)})")


if __name__ == "__main__":
    main()
