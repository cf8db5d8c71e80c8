"""Does ``extract`` cut a catalog image of one garment to "one of several views", or leave a
part of it out as a swatch of its fabric (``silhouette.swatches``)? For each
catalog image (VITON's validation ones, every fifth training one, the VITON-HD and Dress Code
samples' where present), on white as shipped and on the benchmark's plain, grain and shadow
backdrops, the first look as ``stages.segment`` takes it: where the head says alone and
``alone.alone_plane`` cuts it out, whether its plane was cut to a band (``silhouette.one_view``)
or lost a part (a swatch). Prints the counts per set and the names cut.

    python scripts/views_single.py VITON_DIR [--backdrops]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from clothes_extractor.models import model_for
from clothes_extractor.runtime.alone import alone_garment, alone_plane
from clothes_extractor.runtime.fitting import letterbox_for, shown_box
from clothes_extractor.runtime.session import ModelSession

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from garment_alone import SHARED, on_backdrop  # noqa: E402 (the benchmark's backdrops)


def catalogs(viton: Path) -> dict[str, list[Path]]:
    found = {
        "viton val": sorted((viton / "val" / "cloth").glob("*.jpg")),
        "viton train (every fifth)": sorted((viton / "train" / "cloth").glob("*.jpg"))[::5],
        "viton-hd": sorted((SHARED / "viton-hd-sample").glob("*/cloth/*.jpg")),
        "dresscode": sorted((SHARED / "dresscode-sample").glob("*/images/*_1.jpg")),
    }
    return {name: paths for name, paths in found.items() if paths}


def cut(segmenter: ModelSession, images: list[Image.Image]) -> list[str | None]:
    """Per image: None where it is not cut out as alone at the first look, else "view" where its
    plane was cut to one view, "swatch" where it lost a part otherwise, "" where neither."""
    contract, threshold = segmenter.contract, segmenter.contract.fit.mask_threshold
    planes = [letterbox_for(image, contract.size, contract.fit) for image in images]
    out = segmenter.run(image=np.stack([plane for plane, _, _ in planes]))
    answers = []
    for row, (image, (plane, window, _)) in enumerate(zip(images, planes, strict=True)):
        shown = shown_box(window, image.size, contract.size)
        alone = int(out["alone"][row].max()) if "alone" in out else None
        labels = out["labels"][row, ..., 0] if "labels" in out else None
        mask = out["mask"][row, ..., 0]
        parsed = alone_plane(plane, shown, mask, labels, alone, threshold, contract.labels)
        if parsed is None:
            answers.append(None)
            continue
        whole = alone_garment(plane, mask, labels, contract.labels, threshold)[0] >= threshold
        lost = whole & (parsed[0] < threshold)
        answers.append("view" if parsed[2] is not None else "swatch" if lost.any() else "")
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("viton", type=Path)
    parser.add_argument("--backdrops", action="store_true", help="also on a plain colour, a grain and a shadow")
    args = parser.parse_args()
    segmenter = ModelSession(model_for("segmenter", gpu=False), "cpu")
    rng = np.random.default_rng(123)
    for name, paths in catalogs(args.viton).items():
        for backdrop in ("white", "plain", "grain", "shadow") if args.backdrops else ("white",):
            answers = {"view": [], "swatch": []}
            alone = 0
            for start in range(0, len(paths), 32):
                chunk = [Image.open(p).convert("RGB") for p in paths[start : start + 32]]
                if backdrop != "white":
                    chunk = [on_backdrop(image, backdrop, rng) for image in chunk]
                for path, answer in zip(paths[start : start + 32], cut(segmenter, chunk), strict=True):
                    alone += answer is not None
                    if answer:
                        answers[answer].append(path.stem)
            print(
                f"{name} on {backdrop}: {len(paths)} images, {alone} cut out, {len(answers['view'])} cut to one view "
                f"{answers['view']}, {len(answers['swatch'])} lost a swatch {answers['swatch']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
