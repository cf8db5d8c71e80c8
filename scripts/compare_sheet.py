"""Side-by-side sheet of two generators: photo | old | new | truth, one row per pair.

    python scripts/compare_sheet.py OLD.onnx NEW.onnx DATA_DIR OUT.png [--split val] [--rows 8] [--native] [--held-out]

DATA_DIR is any layout ``evaluate`` reads (VITON, VITON-HD, Dress Code). Both models get the
pair's own mask (its parse or label map), as in ``evaluate``. ``--native``: each model
answers at the catalog image's own size where its contract allows (a 256x192-only model's
output is then upsampled for the sheet, which is what a user of it would see at that
size); tiles take the catalog image's size. Model cards use it for their old | new sheets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from clothes_extractor.eval.datasets import DEFAULT_VAL_FRACTION, load_fitted, load_samples
from clothes_extractor.eval.overlap import held_out_samples
from clothes_extractor.eval.sheets import contact_sheet
from clothes_extractor.runtime import ModelSession


def _answer(model: ModelSession, sample, native: bool) -> np.ndarray:
    contract = model.contract
    item = load_fitted(sample, contract, native and contract.catalog_resolution)
    feeds = {spec.name: item[spec.name][None] for spec in contract.inputs}
    return model.run(**feeds)[contract.outputs[0].name][0]


def _tile(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    image = Image.fromarray(array[..., :3] if array.ndim == 3 else array)
    if image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.BICUBIC)
    return np.asarray(image.convert("RGB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--native", action="store_true")
    parser.add_argument("--held-out", action="store_true", help="only pairs with no copy among the training pairs")
    args = parser.parse_args()
    old, new = ModelSession(args.old, "cpu"), ModelSession(args.new, "cpu")
    rows = []
    samples = load_samples(args.data, args.split)
    if args.held_out:
        samples = held_out_samples(args.data, args.split, samples, DEFAULT_VAL_FRACTION, 0, True)
        if samples is None:
            parser.error(f"--held-out: {args.data} has no training split to compare its {args.split} split with")
    for sample in samples[: args.rows]:
        truth = np.asarray(Image.open(sample.garment).convert("RGB"))
        size = truth.shape[:2] if args.native else new.contract.size
        photo = np.asarray(Image.open(sample.photo).convert("RGB"))
        rows.append(
            [_tile(photo, size)]
            + [_tile(_answer(m, sample, args.native), size) for m in (old, new)]
            + [_tile(truth, size)]
        )
    contact_sheet(rows).save(args.out)
    print(f"wrote {args.out}: {len(rows)} rows of photo | {args.old.name} | {args.new.name} | truth")


if __name__ == "__main__":
    main()
