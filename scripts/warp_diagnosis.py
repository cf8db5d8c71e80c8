"""What limits a warping generator: its fields recombined by hand against the catalog image.

    python scripts/warp_diagnosis.py RUN/last.pt DATA_DIR [--pairs 160] [--split val] [--held-out]

Needs the ``[train]`` extra (the checkpoint's PyTorch network; the served model gives only
the composed garment). Scores (SSIM / PSNR / GMSD / sharpness, as ``evaluate``) at the model
size, for the validation pairs' own masks:

- ``rendered`` (the renderer alone) and ``composed`` (the model's own output);
- ``sampled, true silhouette``: the photo as the grid samples it, cut by the catalog image's
  silhouette: the grid's quality, apart from the shape;
- ``rendered, true silhouette``: the rendering cut the same way: what a perfect shape adds;
- ``rendered, predicted silhouette``: cut by the model's own alpha instead;
- ``oracle Npx``: in each N-pixel box inside the silhouette, whichever of the sampled photo
  and the rendering is nearer the truth (it looks at the truth: an upper bound of what a
  composition mask can reach with this grid).

and the silhouette's IoU against the catalog image's: the model's own (``alpha``), and the
photo's garment mask as the grid samples it (what ``--warp-mask-weight`` trains): whether the
grid has found the garment's outline.

The model card's diagnosis (``clothes_extractor/models/generator.md``) was made with it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from clothes_extractor.eval.datasets import DEFAULT_VAL_FRACTION, load_samples
from clothes_extractor.eval.metrics import image_metrics, iou
from clothes_extractor.eval.overlap import held_out_samples
from clothes_extractor.train.checkpoint import load_model
from clothes_extractor.train.config import TrainConfig
from clothes_extractor.train.data import GarmentDataset
from clothes_extractor.train.flow import warp
from clothes_extractor.train.networks import generator_input, mask_to_weight, photo_to_unit


def _uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def _candidates(out: dict[str, torch.Tensor], target: torch.Tensor, alpha: torch.Tensor) -> dict[str, torch.Tensor]:
    rendered, sampled = out["rendered"], out["sampled"]
    found = {
        "rendered": rendered,
        "composed": out["garment"],
        "sampled, true silhouette": alpha * sampled + (1 - alpha),
        "rendered, true silhouette": alpha * rendered + (1 - alpha),
        "rendered, predicted silhouette": out["alpha"] * rendered + (1 - out["alpha"]),
    }
    for block in (4, 8, 16):
        errors = [F.avg_pool2d((x - target).abs().mean(1, keepdim=True), block) for x in (sampled, rendered)]
        pick = F.interpolate((errors[0] < errors[1]).float(), scale_factor=block, mode="nearest") * alpha
        found[f"oracle {block}px"] = pick * sampled + (1 - pick) * rendered
    return found


def _mask_uint8(x: torch.Tensor) -> np.ndarray:
    return (x[:, 0] * 255).round().byte().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--pairs", type=int, default=160)
    parser.add_argument("--split", default="val")
    parser.add_argument("--held-out", action="store_true", help="only pairs with no copy among the training pairs")
    args = parser.parse_args()
    model, payload = load_model(args.checkpoint, task="generator")
    if payload.get("arch") != "flow":
        parser.error(f"{args.checkpoint} is not a warping generator (arch {payload.get('arch')!r})")
    contract = TrainConfig.from_dict(payload["train_config"]).contract()
    samples = load_samples(args.data, args.split, require_garment=True)
    if args.held_out:  # what the model card's held-out rows use: pairs neither it nor its renderer saw
        samples = held_out_samples(args.data, args.split, samples, DEFAULT_VAL_FRACTION, 0, True)
        if samples is None:
            parser.error(f"--held-out: {args.data} has no training split to compare its {args.split} split with")
    samples = samples[: args.pairs]
    loader = torch.utils.data.DataLoader(GarmentDataset(samples, contract), batch_size=16)
    scores: dict[str, dict[str, list[np.ndarray]]] = {}
    used, inside = 0.0, 0.0
    ious: dict[str, list[np.ndarray]] = {"alpha": [], "the photo's mask as the grid samples it": []}
    with torch.no_grad():
        for batch in loader:
            mask = mask_to_weight(batch["mask"])
            condition = generator_input(photo_to_unit(batch["image"]), mask)
            out = model(condition)
            target = photo_to_unit(batch["target"])
            alpha = mask_to_weight(batch["alpha"]) if "alpha" in batch else torch.ones_like(target[:, :1])
            truth = _uint8(target)
            for name, image in _candidates(out, target, alpha).items():
                for metric, values in image_metrics(_uint8(image), truth).items():
                    scores.setdefault(name, {}).setdefault(metric, []).append(values)
            used += (out["mask"] * alpha).sum().item()
            for name, found in zip(ious, (out["alpha"], warp(mask, out["grid"], "zeros")), strict=True):
                ious[name].append(iou(_mask_uint8(found), _mask_uint8(alpha)))
            inside += alpha.sum().item()
    print(f"{len(samples)} pairs; mean composition mask inside the true silhouette: {used / max(inside, 1):.3f}")
    found = ", ".join(f"{name} {np.concatenate(values).mean():.4f}" for name, values in ious.items())
    print(f"silhouette IoU: {found}")
    for name, metrics in scores.items():
        print(f"{name:32s}", "  ".join(f"{m} {np.concatenate(v).mean():.4f}" for m, v in metrics.items()))


if __name__ == "__main__":
    main()
