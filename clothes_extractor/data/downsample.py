"""``data downsample``: a smaller copy of a dataset in any supported layout.

Every split folder is copied sample by sample at a new height (width by the photos'
aspect), keeping the layout and the file names: photos and garments resized smoothly,
parse maps with nearest-neighbour so labels and palettes survive, masks smoothly. Pairs
files come along; with ``files``, only the first N samples of each split are kept, and
the pairs files name only those.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Callable

from PIL import Image

from ..errors import InputError
from ..eval.datasets import pairs_files, split_folders, split_samples
from ..runtime.colour import to_srgb
from ..runtime.files import filled_folder, write_atomic
from ..runtime.images import open_image

log = logging.getLogger(__name__)


def _splits(src: Path) -> list[Path]:
    found = split_folders(src)
    if not found:
        raise InputError(
            f"no dataset split in {src}: expected a split folder, train/ val/ test/ below it, "
            "or a Dress Code category folder (upper_body/, dresses/, lower_body/)"
        )
    return found


def _resize(
    src: Path, dst: Path, height: int, nearest: bool, width_given: int | None = None, photo: bool = True
) -> None:
    with open_image(src, "image") as image:
        image.load()
        fmt = image.format or ("PNG" if dst.suffix.lower() == ".png" else "JPEG")
        if photo:  # a photo or garment in sRGB, as the tool reads it (its profile is not copied: colour.py)
            image = to_srgb(image)
        if height > image.height:  # (a larger copy is blurred, and takes as long as the whole dataset)
            raise InputError(
                f"--size {height}: {src} is {image.height}x{image.width}; downsample makes smaller copies, "
                f"not larger ones: give --size {image.height} or less"
            )
        width = max(1, round(image.width * height / image.height))
        if width_given is not None and abs(width - width_given) > 1:
            raise InputError(
                f"--size {height}x{width_given}: {src} is {image.height}x{image.width}, and the copy keeps each "
                f"image's aspect ({height}x{width} for it); give --size {height}"
            )
        if nearest:
            small = image.resize((width, height), Image.Resampling.NEAREST)
        else:
            if image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            small = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
        buffer = io.BytesIO()
        small.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        write_atomic(dst, buffer.getvalue(), sync=False)


def downsample_dataset(
    src: Path,
    dst: Path,
    height: int,
    files: int | None = None,
    width: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Copy ``src`` to ``dst`` (a new or empty folder, made whole or not at all) at ``height``
    pixels, each image keeping its aspect (``width``, if given, must be what that gives, within
    a pixel; an image lower than ``height`` is an ``InputError``: nothing is enlarged); returns
    the number of samples written. ``progress(done, total)`` after each sample."""
    if height < 8:
        raise InputError(f"--size must be at least 8 pixels, got {height}")
    if dst.resolve() == src.resolve():
        raise InputError("the destination must differ from the source")
    splits = {split: split_samples(split)[:files] for split in _splits(src)}
    total, written = sum(map(len, splits.values())), 0
    unmasked: list[str] = []  # the photos copied without a mask file: they have none in ``src`` either
    with filled_folder(dst, "the destination") as temp:
        for split, samples in splits.items():
            for sample in samples:
                _resize(sample.photo, temp / sample.photo.relative_to(src), height, nearest=False, width_given=width)
                if sample.mask_kind != "none" and not sample.mask.is_file():  # (pairs have none)
                    unmasked.append(sample.photo.name)  # (copied as it is: without, said below)
                elif sample.mask_kind != "none":
                    mask_to = temp / sample.mask.relative_to(src)
                    _resize(sample.mask, mask_to, height, nearest=sample.mask_kind != "file", photo=False)
                if sample.garment is not None:
                    _resize(sample.garment, temp / sample.garment.relative_to(src), height, nearest=False)
                written += 1
                if progress is not None:
                    progress(written, total)
            kept = {s.photo.name for s in samples}
            for pairs in pairs_files(split):
                if pairs.is_file() and pairs.is_relative_to(src):  # (beside a split folder given as SRC: not in it)
                    lines = [
                        line for line in pairs.read_text().splitlines() if line.split()[:1] and line.split()[0] in kept
                    ]
                    write_atomic(temp / pairs.relative_to(src), ("\n".join(lines) + "\n").encode(), sync=False)
    if unmasked:
        named = ", ".join(unmasked[:5]) + (f" and {len(unmasked) - 5} more" if len(unmasked) > 5 else "")
        log.warning(
            "%d photo(s) of %s have no mask file there, and none in the copy either: %s", len(unmasked), src, named
        )
    return written
