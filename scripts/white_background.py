"""Generators compared where a shop looks first: the white around the garment, and the garment's
own edges.

For each MODEL.onnx (a generator; its ``garment`` output, at its model size) on the VITON
validation pairs held out from training (``--whole-split``: all 1,528), fitted as ``evaluate``
fits them (the pair's parse map as the mask): SSIM / PSNR / GMSD / sharpness as ``evaluate``
scores them, then the sharpness inside the catalog image's silhouette grown by 3 pixels (the
garment's own edges and prints, not the haze around it, whose own gradients count in the
whole frame's ratio), the share of the catalog image's white (outside its silhouette) that
the garment is drawn under 250 in its palest channel (a grey haze, which shows on a white page
as a faint box), and the edges drawn on plain cloth: the mean gradient magnitude (grey levels,
Prewitt) inside the silhouette, away from its outline and from every edge of the catalog image
(a seam, a print, a fold), where the truth's own is printed beside it (texture a generator
invents, a grid; a fine-tune on GMSD drew one). Means over pairs; a pair whose catalog image has
no white (or no plain cloth) is left out of that one.

    python scripts/white_background.py VITON_DIR MODEL.onnx [MODEL.onnx ...] [--whole-split] [--limit N]
"""

import argparse
from pathlib import Path

import numpy as np

from clothes_extractor.eval.datasets import load_fitted, load_samples
from clothes_extractor.eval.metrics import gradient_magnitude, image_metrics, luma
from clothes_extractor.eval.overlap import held_out_samples
from clothes_extractor.runtime.session import ModelSession
from clothes_extractor.runtime.tryon import grow

PALE = 250  # a background pixel whose palest channel is under this is not white on a white page
GROWN_PX = 3  # the silhouette grown by this much: the garment's edge is inside
EDGE = 16.0  # a catalog pixel whose gradient magnitude (grey levels) is over this is an edge of the garment...
NEAR_PX = 4  # ...and plain cloth is this far from any such edge, and from the silhouette's outline
BATCH = 16


def shrunk(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` shrunk by ``px`` 4-neighbour steps, what lies beyond the frame counting as
    outside it (scipy's ``binary_erosion``; ``grow`` is its ``binary_dilation``)."""
    padded = np.pad(~mask, px, constant_values=True)
    return ~grow(padded, px)[px:-px, px:-px] if px else mask.copy()


def scores(output: np.ndarray, truth: np.ndarray, silhouette: np.ndarray) -> list[tuple[float, ...]]:
    """Per pair: SSIM, PSNR, GMSD, sharpness, sharpness inside the grown silhouette, haze share,
    and the output's and the truth's mean gradient magnitude on plain cloth."""
    metrics = image_metrics(output, truth)
    edges_out, edges_truth = gradient_magnitude(luma(output)), gradient_magnitude(luma(truth))
    rows = []
    for i in range(len(output)):
        around = grow(silhouette[i], GROWN_PX)
        inside = edges_out[i][around].mean() / max(edges_truth[i][around].mean(), 1e-6)
        white = output[i].min(axis=-1)[~silhouette[i]]
        haze = float((white < PALE).mean()) if white.size else np.nan
        near_edge = grow(edges_truth[i] > EDGE, NEAR_PX)
        plain = shrunk(silhouette[i], NEAR_PX) & ~near_edge
        drawn, own = (edges[i][plain].mean() if plain.any() else np.nan for edges in (edges_out, edges_truth))
        scored = (metrics[name][i] for name in ("ssim", "psnr", "gmsd", "sharpness"))
        rows.append((*scored, inside, haze, drawn, own))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--whole-split", action="store_true")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    samples = load_samples(args.data, "val")
    if not args.whole_split:
        samples = held_out_samples(args.data, "val", samples, 0.05, 0, True)
        if samples is None:
            parser.error(f"{args.data} has no training pairs to tell the held-out ones by: give --whole-split")
    samples = samples[: args.limit]
    sessions = [ModelSession(model, "cpu", outputs=["garment"]) for model in args.models]
    rows: list[list[tuple[float, ...]]] = [[] for _ in sessions]
    for start in range(0, len(samples), BATCH):
        fitted = [load_fitted(sample, sessions[0].contract) for sample in samples[start : start + BATCH]]
        feeds = {name: np.stack([f[name] for f in fitted]) for name in ("image", "mask")}
        truth = np.stack([f["target"] for f in fitted])
        silhouette = np.stack([f["alpha"][..., 0] for f in fitted]) >= 128
        for session, found in zip(sessions, rows, strict=True):
            found += scores(session.run(**feeds)["garment"], truth, silhouette)
    split = "whole split" if args.whole_split else "held out"
    print(f"{len(samples)} VITON validation pairs ({split}): SSIM / PSNR / GMSD / sharpness / sharpness inside")
    print(f"the silhouette (grown {GROWN_PX} px) / share of the catalog's white drawn under {PALE} / edges drawn")
    print("on plain cloth (mean gradient magnitude, grey levels; the truth's own in brackets)")
    for model, found in zip(args.models, rows, strict=True):
        mean = np.nanmean(np.array(found, dtype=np.float64), axis=0)
        digits = (4, 2, 4, 3, 3, 3, 2)
        shown = " / ".join(f"{value:.{places}f}" for value, places in zip(mean[:-1], digits, strict=True))
        print(f"{model.name}: {shown} ({mean[-1]:.2f})")


if __name__ == "__main__":
    main()
