"""``data downsample``: a smaller copy of a dataset in any supported layout.

Every split folder is copied sample by sample at a new height (width by the photos'
aspect), keeping the layout and the file names: photos and garments resized smoothly,
parse maps with nearest-neighbour so labels and palettes survive, masks smoothly. With
``files``, only the first N samples of each split are kept, and pairs files follow.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from ..errors import InputError
from ..eval.datasets import Sample, layout_of, split_samples
from ..runtime.files import write_atomic
from ..runtime.images import open_image

SPLIT_NAMES = ("train", "val", "validation", "test")


def _splits(src: Path) -> list[Path]:
    if layout_of(src) is not None:
        return [src]
    found = [src / name for name in SPLIT_NAMES if layout_of(src / name) is not None]
    if not found:
        raise InputError(f"no dataset split in {src}: expected a split folder or train/ val/ test/ below it")
    return found


def _resize(src: Path, dst: Path, height: int, nearest: bool) -> None:
    with open_image(src, "image") as image:
        image.load()
        width = max(1, round(image.width * height / image.height))
        if nearest:
            small = image.resize((width, height), Image.Resampling.NEAREST)
        else:
            if image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            small = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
        buffer = io.BytesIO()
        fmt = image.format or ("PNG" if dst.suffix.lower() == ".png" else "JPEG")
        small.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        write_atomic(dst, buffer.getvalue(), sync=False)


def downsample_dataset(src: Path, dst: Path, height: int, files: int | None = None) -> int:
    """Copy ``src`` to ``dst`` at ``height`` pixels; returns the number of samples written."""
    if height < 8:
        raise InputError(f"--size must be at least 8 pixels, got {height}")
    if dst.resolve() == src.resolve():
        raise InputError("the destination must differ from the source")
    written = 0
    for split in _splits(src):
        samples: list[Sample] = split_samples(split)[:files]
        for sample in samples:
            _resize(sample.photo, dst / sample.photo.relative_to(src), height, nearest=False)
            _resize(sample.mask, dst / sample.mask.relative_to(src), height, nearest=sample.mask_kind != "file")
            if sample.garment is not None:
                _resize(sample.garment, dst / sample.garment.relative_to(src), height, nearest=False)
            written += 1
        pairs = split.parent / f"{split.name}_pairs.txt"
        if pairs.is_file() and split != src:
            kept = {s.photo.name for s in samples}
            lines = [line for line in pairs.read_text().splitlines() if line.split()[:1] and line.split()[0] in kept]
            (dst / pairs.name).write_text("\n".join(lines) + "\n")
    return written
