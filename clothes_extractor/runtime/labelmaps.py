"""The garment masks of datasets' human-parsing label maps: a VITON or VITON-HD split's parse
maps and Dress Code's label maps, which ``extract`` of such a split folder and ``evaluate`` take
for each photo's mask (``walk.MaskSource`` kinds ``parse`` and ``labels``), read as ``images``
reads every file: each way one can fail is an ``InputError`` that says what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from .images import decode_opened, open_image

PARSE_UPPER_LABEL = 5  # upper clothes in the LIP-style parse maps of VITON and VITON-HD
PARSE_UPPER_RGB = (254, 85, 0)  # the same label as VITON-HD draws it in colour
DRESSCODE_UPPER_LABEL = 4  # upper clothes in Dress Code's own label maps


def load_parse_mask(path: Path, label: int = PARSE_UPPER_LABEL, rgb: tuple[int, int, int] | None = PARSE_UPPER_RGB):
    """The upper-clothes mask (0/255, mode L) from a human-parsing label map.

    Palette and grey maps store labels: VITON and VITON-HD's LIP labels (5 = upper clothes,
    the default) or Dress Code's own (``label=DRESSCODE_UPPER_LABEL``); RGB maps store
    VITON-HD's colour for the label, ``rgb``.
    """
    image = open_image(path, "parse map")
    with image:
        decode_opened(image, path, "parse map")
        if image.mode in ("P", "L"):
            on = np.asarray(image) == label
        elif image.mode in ("RGB", "RGBA") and rgb is not None:
            on = np.all(np.asarray(image.convert("RGB")) == np.array(rgb, np.uint8), axis=-1)
        else:
            raise InputError(
                f"parse map {path} has mode {image.mode}; expected a palette or grey label map "
                f"(label {label} = upper clothes)" + (f" or an RGB map drawing it as {rgb}" if rgb else "")
            )
    return Image.fromarray(on.astype(np.uint8) * 255, "L")


def load_label_mask(kind: str, path: Path) -> Image.Image:
    """The garment mask of a dataset's label map: ``parse`` (VITON / VITON-HD) or ``labels`` (Dress Code)."""
    if kind == "labels":
        return load_parse_mask(path, DRESSCODE_UPPER_LABEL, None)
    return load_parse_mask(path)
