"""Photos in sRGB: a photo's embedded colour profile (ICC) converted away before the models see it.

The models learned from VITON's photos: sRGB JPEGs without a profile. A phone's photo
(Display P3) or a studio's (Adobe RGB) stores other numbers for the same colours, and read
as sRGB they come out duller and shifted (a Display P3 red of 200, 30, 30 is sRGB 220, 0, 0),
the garment with them. ``to_srgb`` converts such a photo by its profile (LittleCMS, through
Pillow's ``ImageCms``), as a colour-managed browser shows it; the files this tool writes are
sRGB, as they always were. A photo without a profile or with an sRGB one is left as it is,
and so is one whose profile cannot be read or is not an RGB profile (as before), and a CMYK
or greyscale photo (Pillow's own conversion, as before).
"""

from __future__ import annotations

import functools
import io
from typing import Any

from PIL import Image

CONVERTED_MODES = ("RGB", "RGBA")  # an RGBA photo's alpha is kept as it is


def profile_name(image: Image.Image) -> str | None:
    """The name of the profile ``to_srgb`` converts ``image`` by, or None where it leaves the image as it is."""
    found = _transform(image.info.get("icc_profile") or b"", image.mode)
    return None if found is None else found[0]


def to_srgb(image: Image.Image) -> Image.Image:
    """``image`` (decoded) in sRGB, converted by its embedded profile (``profile_name``); its
    other metadata kept (a written garment's signature, XMP)."""
    found = _transform(image.info.get("icc_profile") or b"", image.mode)
    if found is None:
        return image
    from PIL import ImageCms

    try:
        converted = ImageCms.applyTransform(image, found[1])
    except Exception:  # noqa: BLE001 - a transform that fails on this image: the pixels as stored, as before
        return image
    converted.info = {key: value for key, value in image.info.items() if key != "icc_profile"}
    return converted


@functools.lru_cache(maxsize=16)
def _transform(icc: bytes, mode: str) -> tuple[str, Any] | None:
    """(the profile's name, its transform to sRGB) for an image of ``mode`` carrying ``icc``;
    None where none applies. Made once per profile and mode (a folder of one phone's photos
    shares one), without LittleCMS's one-pixel cache, which threads sharing it would race on."""
    if not icc or mode not in CONVERTED_MODES:
        return None
    try:
        from PIL import ImageCms

        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        name = (ImageCms.getProfileDescription(profile) or "").strip()
        if "srgb" in name.lower():
            return None
        srgb = ImageCms.createProfile("sRGB")
        return name or "an unnamed profile", ImageCms.buildTransform(
            profile, srgb, mode, mode, flags=ImageCms.Flags.NOCACHE
        )
    except Exception:  # noqa: BLE001 - no LittleCMS in this Pillow, or a profile it cannot use: as before
        return None
