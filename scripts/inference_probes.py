"""What post-processing at inference buys the bundled generator, no training: the two levers
left to try on a CPU for issue 12's sharpness and issue 19's alpha IoU.

- ``sharpen``: the garment unsharp-masked (Pillow's ``UnsharpMask``, radius / percent /
  threshold) inside its own silhouette, the white page left as it is: SSIM / PSNR / GMSD /
  sharpness against the catalog image, beside the garment as served.
- ``alpha``: the silhouette (threshold 128) as served; made left-right symmetric about its
  own centre (a catalog image is frontal) or about the frame's; and the mean of the
  silhouettes of the photo and of its mirror image, mirrored back (test-time flipping: two
  model runs). Alpha IoU against the catalog image's silhouette, and how symmetric the
  truth itself is.

    python scripts/inference_probes.py VITON_DIR [--limit N] [--model GENERATOR.onnx]
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from clothes_extractor.eval.datasets import load_fitted, load_samples
from clothes_extractor.eval.metrics import gmsd, image_metrics, sharpness_ratio
from clothes_extractor.models import model_for
from clothes_extractor.runtime.session import ModelSession

SHARPENINGS = {"r1 150%": (1, 150, 2), "r2 100%": (2, 100, 2), "r2 200%": (2, 200, 2), "r3 80%": (3, 80, 3)}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def mirrored(plane: np.ndarray, centre: float) -> np.ndarray:
    """``plane`` (H, W) mirrored about column ``centre`` (nothing where the mirror leaves the frame)."""
    width = plane.shape[1]
    source = np.round(2 * centre - np.arange(width)).astype(int)
    inside = (source >= 0) & (source < width)
    out = np.zeros_like(plane)
    out[:, inside] = plane[:, source[inside]]
    return out


def centre(plane: np.ndarray) -> float:
    return float((plane.sum(0) * np.arange(plane.shape[1])).sum() / max(plane.sum(), 1e-6))


def sharpened(garment: np.ndarray, alpha: np.ndarray, setting: tuple[int, int, int]) -> np.ndarray:
    radius, percent, threshold = setting
    sharp = np.asarray(Image.fromarray(garment).filter(ImageFilter.UnsharpMask(radius, percent, threshold)))
    weight = alpha.astype(np.float32) / 255
    return (weight * sharp + (1 - weight) * garment).round().astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--model", type=Path, default=model_for("generator", gpu=False))
    args = parser.parse_args()
    generator = ModelSession(args.model, "cpu")
    samples = load_samples(args.data, "val")[: args.limit]
    scores = {name: {k: [] for k in ("ssim", "psnr", "gmsd", "sharpness")} for name in ("served", *SHARPENINGS)}
    alphas = {k: [] for k in ("served", "symmetric about its centre", "symmetric about the frame", "flip, mean")}
    truth_symmetry = []
    for start in range(0, len(samples), 8):
        items = [load_fitted(sample, generator.contract) for sample in samples[start : start + 8]]
        images, masks = (np.stack([item[key] for item in items]) for key in ("image", "mask"))
        out = generator.run(image=images, mask=masks)
        flipped = generator.run(image=images[:, :, ::-1].copy(), mask=masks[:, :, ::-1].copy())
        targets = np.stack([item["target"] for item in items])
        for name, setting in (("served", None), *SHARPENINGS.items()):
            garments = (
                out["garment"]
                if setting is None
                else np.stack([sharpened(g, a, setting) for g, a in zip(out["garment"], out["alpha"], strict=True)])
            )
            found = image_metrics(garments, targets)
            scores[name]["ssim"] += list(found["ssim"])
            scores[name]["psnr"] += list(found["psnr"])
            scores[name]["gmsd"] += list(gmsd(garments, targets))
            scores[name]["sharpness"] += list(sharpness_ratio(garments, targets))
        for k, item in enumerate(items):
            truth = item["alpha"][..., 0] >= 128
            alpha = out["alpha"][k, ..., 0].astype(np.float32) / 255
            alphas["served"].append(iou(alpha >= 0.5, truth))
            alphas["symmetric about its centre"].append(iou((alpha + mirrored(alpha, centre(alpha))) / 2 >= 0.5, truth))
            alphas["symmetric about the frame"].append(iou((alpha + alpha[:, ::-1]) / 2 >= 0.5, truth))
            back = flipped["alpha"][k, ..., 0].astype(np.float32)[:, ::-1] / 255
            alphas["flip, mean"].append(iou((alpha + back) / 2 >= 0.5, truth))
            plane = truth.astype(np.float32)
            truth_symmetry.append(iou(truth, mirrored(plane, centre(plane)) >= 0.5))
    print(f"{len(samples)} validation pairs, {args.model.name}; SSIM / PSNR / GMSD / sharpness")
    for name, found in scores.items():
        print(f"  garment {name:10s} " + " / ".join(f"{np.mean(v):.4f}" for v in found.values()))
    print("alpha IoU (threshold 128)")
    for name, found in alphas.items():
        print(f"  {name:28s} {np.mean(found):.4f} (median {np.median(found):.3f})")
    print(f"  the truth against its own mirror image: {np.mean(truth_symmetry):.4f}")


if __name__ == "__main__":
    main()
