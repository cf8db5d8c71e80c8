"""The generator's garment on a page that is not white, as ``extract --background #RRGGBB``
writes it (and a transparent one laid on the page): before 2026-12-04 (the garment on white,
its silhouette as the model gives it, composed as ``garment + (1 - alpha) * (page - white)``)
against now (``apply_background``: the edge settled by ``runtime/matte.settled``, the
transparent garment laid on the page).

For each pair (VITON layout; the bundled generator unless ``--model``): the garment on three
pages (blue-grey, black, mid grey) both ways, against the catalog image cut out by its
silhouette (``garment_silhouette``) on the same page. Mean colour error (levels, over the three
pages) in the ring just outside the catalog silhouette (``RING`` px: the page, where a pale glow
shows), in the silhouette's core (more than ``CORE`` px inside its edge: the catalog image's own
light rim left out), on the page itself (more than ``RING`` px outside it, where nothing of the
garment belongs: a veil of faint alpha shows there), and over the whole frame; the alpha IoU at
128 (as ``evaluate`` scores it) of the alpha written; and how many pixels the settling changes.
With ``--sheet FILE``: pairs on the blue-grey page, catalog image | before | now (dataset images:
look, do not commit).

    python scripts/page_edges.py VITON_DIR [--limit N] [--sheet FILE] [--model GENERATOR.onnx]
"""

import argparse
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from clothes_extractor.eval.datasets import load_fitted, load_samples
from clothes_extractor.models import model_for
from clothes_extractor.runtime.images import apply_background
from clothes_extractor.runtime.matte import settled
from clothes_extractor.runtime.session import ModelSession
from clothes_extractor.runtime.silhouette import dilate

PAGES = ((90, 110, 140), (0, 0, 0), (128, 128, 128))
RING, CORE = 6, 2


def before(garment: np.ndarray, alpha: np.ndarray, page) -> np.ndarray:
    """``garment`` (on white) on ``page`` as ``apply_background`` composed it before 2026-12-04."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    return garment.astype(np.float32) + (1.0 - a) * (np.asarray(page, np.float32) - 255.0)


def now(garment: np.ndarray, alpha: np.ndarray, page) -> np.ndarray:
    return apply_background(garment, alpha, page)[0].astype(np.float32)


def scores(on_page, garment, alpha, target, silhouette) -> dict[str, float]:
    ring = dilate(silhouette, RING) & ~silhouette
    core = silhouette & ~dilate(~silhouette, CORE)
    away = ~dilate(silhouette, RING)
    errors = {"ring": 0.0, "core": 0.0, "page": 0.0, "all": 0.0}
    for page in PAGES:
        truth = np.where(silhouette[..., None], target.astype(np.float32), np.asarray(page, np.float32))
        error = np.abs(on_page(garment, alpha, page) - truth).mean(-1)
        errors["ring"] += (error[ring].mean() if ring.any() else np.nan) / len(PAGES)  # (nan: a frame-filling one)
        errors["core"] += (error[core].mean() if core.any() else np.nan) / len(PAGES)
        errors["page"] += (error[away].mean() if away.any() else np.nan) / len(PAGES)
        errors["all"] += error.mean() / len(PAGES)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--limit", type=int, default=0, help="the first N validation pairs (0: all)")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--sheet", type=Path, default=None)
    parser.add_argument("--rows", type=int, default=12)
    args = parser.parse_args()
    model = ModelSession(args.model or model_for("generator", gpu=False), "cpu")
    if not model.contract.alpha:
        sys.exit(f"{model.path} has no silhouette output: nothing to settle")
    samples = load_samples(args.data, "val")
    samples = samples[: args.limit] if args.limit else samples
    totals: dict[str, list[float]] = {}
    lowered = painted = 0
    shown = []
    for start in range(0, len(samples), 8):
        items = [load_fitted(s, model.contract) for s in samples[start : start + 8]]
        outputs = model.run(image=np.stack([i["image"] for i in items]), mask=np.stack([i["mask"] for i in items]))
        for item, garment, alpha in zip(items, outputs["garment"], outputs["alpha"], strict=True):
            alpha = alpha.reshape(garment.shape[:2])
            silhouette = item["alpha"].reshape(garment.shape[:2]) >= 128
            for tag, compose in (("before", before), ("now", now)):
                for name, value in scores(compose, garment, alpha, item["target"], silhouette).items():
                    totals.setdefault(f"{name} {tag}", []).append(float(value))
            new_garment, new_alpha = settled(garment, alpha)
            for tag, a in (("before", alpha), ("now", new_alpha)):
                on = a >= 128
                iou = (on & silhouette).sum() / max(1, (on | silhouette).sum())
                totals.setdefault(f"iou {tag}", []).append(float(iou))
            lowered += int((new_alpha < alpha).sum())
            painted += int((new_garment != garment).any(-1).sum())
            if args.sheet:
                shown.append((item["target"], garment, alpha, silhouette))
    count = len(totals["all before"])
    print(f"{count} pairs; colour error on the pages (levels), alpha IoU at 128:")
    for name in ("ring", "core", "page", "all", "iou"):
        before_mean, now_mean = np.nanmean(totals[f"{name} before"]), np.nanmean(totals[f"{name} now"])
        print(f"  {name:5s} before {before_mean:.4f}  now {now_mean:.4f}")
    print(f"  (ring: over the {int(np.isfinite(totals['ring now']).sum())} pairs whose catalog silhouette leaves one)")
    print(f"settled: {lowered / count:.1f} px a pair with a lower alpha, {painted / count:.1f} px painted")
    if args.sheet:
        _sheet(shown, args.rows, args.sheet)


def _sheet(shown, rows: int, path: Path) -> None:
    page = PAGES[0]
    picked = random.Random(0).sample(shown, min(rows, len(shown)))
    h, w = picked[0][1].shape[:2]
    sheet = Image.new("RGB", (w * 6, h * ((len(picked) + 1) // 2)), "white")
    for i, (target, garment, alpha, silhouette) in enumerate(picked):
        truth = np.where(silhouette[..., None], target.astype(np.float32), np.asarray(page, np.float32))
        for j, image in enumerate((truth, before(garment, alpha, page), now(garment, alpha, page))):
            tile = Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8))
            sheet.paste(tile, ((i % 2) * 3 * w + j * w, (i // 2) * h))
    sheet.save(path)


if __name__ == "__main__":
    main()
