"""Photos in sRGB: a photo's embedded colour profile (ICC) converted away before the models see it.

The models learned from VITON's photos: sRGB JPEGs without a profile. A phone's photo
(Display P3) or a studio's (Adobe RGB) stores other numbers for the same colours, and read
as sRGB they come out duller and shifted (a Display P3 red of 200, 30, 30 is sRGB 220, 0, 0),
the garment with them. ``to_srgb`` converts such a photo by its profile (LittleCMS, through
Pillow's ``ImageCms``), as a colour-managed browser shows it; the files this tool writes are
sRGB, as they always were. A HEIF photo may describe its colours by an ``nclx`` box instead
(its primaries and curve, as pillow-heif reads them): a profile is made of those
(``matrix_profile``) where they are not sRGB's. And a camera set to Adobe RGB writes its
JPEGs without a profile, saying so in EXIF the DCF 2.0 way (ColorSpace "uncalibrated",
InteropIndex "R03"): an Adobe RGB (1998) profile is made for them, as Photoshop and
Lightroom read them. A photo without a profile or with an sRGB one
is left as it is, and so is one whose profile cannot be read or does not describe its
pixels (an RGB profile on a CMYK photo), or whose curve is a high-dynamic-range one (as
before). A print workflow's CMYK JPEG carries its press profile (Photoshop writes one, e.g.
"U.S. Web Coated (SWOP) v2"), and a greyscale photo may carry a grey one ("Dot Gain 20%"):
those are converted by it to sRGB RGB; without one, Pillow's own conversion, as before (a
CMYK photo without a profile has no one right answer: its inks are not known).
"""

from __future__ import annotations

import functools
import io
import logging
import struct
from typing import Any

import numpy as np
from PIL import ExifTags, Image

# a photo's mode -> (the colour space its profile must describe, the mode it is converted to);
# an RGBA photo's alpha is kept as it is
CONVERTED_MODES = {"RGB": ("RGB", "RGB"), "RGBA": ("RGB", "RGBA"), "CMYK": ("CMYK", "RGB"), "L": ("GRAY", "RGB")}
D50 = (0.9642, 1.0, 0.8249)  # the ICC profile connection space's white
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
# ITU-T H.273 codes in an nclx box: colour primaries that are sRGB's (1: BT.709; 2: unspecified),
# and the transfer characteristics taken as the sRGB curve (BT.709's, BT.601's, sRGB's,
# unspecified) or as a gamma; others (PQ, HLG: high dynamic range; linear) are not converted
SRGB_PRIMARIES = (1, 2)
NCLX_CURVES: dict[int, str | float] = {1: "srgb", 2: "srgb", 6: "srgb", 13: "srgb", 4: 2.2, 5: 2.8}
UNCONVERTED = "read as stored, colours unconverted: this Pillow was built without LittleCMS (PyPI's wheels have it)"
# Adobe RGB (1998): its primaries (x, y), D65 white and gamma (563/256), for a camera's DCF "R03" JPEG
ADOBE_RGB = ([(0.64, 0.33), (0.21, 0.71), (0.15, 0.06)], (0.3127, 0.3290), 563 / 256)
UNCALIBRATED = 0xFFFF  # EXIF ColorSpace: not sRGB (1)


def _icc(image: Image.Image) -> bytes:
    """``image``'s embedded ICC profile, or one made of its nclx colour description; b"" for none."""
    icc = image.info.get("icc_profile")
    if icc:
        return icc
    nclx = image.info.get("nclx_profile")
    if nclx is None:
        return _camera_adobe_rgb() if _dcf_adobe_rgb(image) else b""
    if not isinstance(nclx, dict) or nclx.get("color_primaries") in SRGB_PRIMARIES:
        return b""
    curve = NCLX_CURVES.get(nclx.get("transfer_characteristics", 2))
    if curve is None:
        return b""
    try:
        xy = [(nclx[f"color_primary_{c}_x"], nclx[f"color_primary_{c}_y"]) for c in ("red", "green", "blue", "white")]
    except KeyError:
        return b""
    name = f"nclx primaries {nclx.get('color_primaries')}, transfer {nclx.get('transfer_characteristics')}"
    return matrix_profile(name, xy[:3], xy[3], curve)


def _dcf_adobe_rgb(image: Image.Image) -> bool:
    """Whether ``image``'s EXIF says Adobe RGB the DCF 2.0 way: ColorSpace "uncalibrated" and
    InteropIndex "R03" (a camera set to Adobe RGB; "R98" is sRGB)."""
    try:
        exif = image.getexif()  # (parsed once per image: the orientation reads it too)
        if exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.ColorSpace) != UNCALIBRATED:
            return False
        index = exif.get_ifd(ExifTags.IFD.Interop).get(ExifTags.Base.InteropIndex, "")
        return (index.decode("ascii", "replace") if isinstance(index, bytes) else str(index)).strip("\0 ") == "R03"
    except Exception:  # noqa: BLE001 - a broken EXIF block says nothing of the colours: as stored
        return False


@functools.cache
def _camera_adobe_rgb() -> bytes:
    primaries, white, gamma = ADOBE_RGB
    return matrix_profile("Adobe RGB (1998), from the camera's EXIF", primaries, white, gamma)


def matrix_profile(name: str, primaries: list[tuple[float, float]], white: tuple[float, float], curve) -> bytes:
    """An RGB display profile (ICC v2, matrix and curves) of the chromaticities ``primaries``
    (red, green, blue) and ``white`` (x, y), the colorants adapted to D50 (Bradford); ``curve``:
    "srgb" (IEC 61966-2-1's, as a table) or a gamma."""
    xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in (*primaries, white)]).T  # columns: r, g, b, white
    scale = np.linalg.solve(xyz[:, :3], xyz[:, 3])  # the primaries' shares of the white
    cone_d50, cone_white = BRADFORD @ np.array(D50), BRADFORD @ xyz[:, 3]
    adapt = np.linalg.solve(BRADFORD, np.diag(cone_d50 / cone_white) @ BRADFORD)
    colorants = adapt @ (xyz[:, :3] * scale)
    if curve == "srgb":
        v = np.linspace(0.0, 1.0, 1024)
        table = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
        trc = b"curv\0\0\0\0" + struct.pack(">I", 1024) + np.round(table * 65535).astype(">u2").tobytes()
    else:
        trc = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(float(curve) * 256)) + b"\0\0"
    tags = [
        *((tag, xyz_tag(colorants[:, i])) for i, tag in enumerate((b"rXYZ", b"gXYZ", b"bXYZ"))),
        *((tag, trc) for tag in (b"rTRC", b"gTRC", b"bTRC")),
    ]
    return profile_file(name, b"mntr", b"RGB ", b"XYZ ", tags)


def profile_file(name: str, device_class: bytes, colour_space: bytes, connection_space: bytes, tags) -> bytes:
    """An ICC v2 profile: its header (``device_class``, e.g. b"mntr" or b"prtr"; ``colour_space``,
    e.g. b"RGB " or b"CMYK"; ``connection_space``, b"XYZ " or b"Lab "), a description of
    ``name``, a D50 white point, and ``tags`` (tag signature, tag data) as given."""
    text = name.encode("ascii", "replace")[:60] + b"\0"
    tags = [
        (b"desc", b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 78),
        (b"wtpt", xyz_tag(D50)),
        *tags,
        (b"cprt", b"text\0\0\0\0none\0\0\0\0"),
    ]
    start, table_bytes, data = 128 + 4 + 12 * len(tags), b"", b""
    for tag, body in tags:
        body += b"\0" * (-len(body) % 4)
        table_bytes, data = table_bytes + tag + struct.pack(">II", start + len(data), len(body)), data + body
    header = struct.pack(">I", start + len(data)) + b"\0" * 4 + struct.pack(">I", 0x02100000)  # size, v2.1
    header += device_class + colour_space + connection_space + b"\0" * 12 + b"acsp" + b"\0" * 28
    header += xyz_tag(D50)[8:] + b"\0" * 48  # the illuminant
    return header + struct.pack(">I", len(tags)) + table_bytes + data


def xyz_tag(values) -> bytes:
    """An ICC XYZType tag of three numbers (s15Fixed16)."""
    return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", round(float(v) * 65536)) for v in values)


def colour_management() -> str:
    """Whether this Pillow converts colour profiles, for ``info``: its LittleCMS, or why not."""
    from PIL import features

    version = features.version("littlecms2")
    if version:
        return f"converted to sRGB (LittleCMS {version})"
    return UNCONVERTED


def profile_name(image: Image.Image) -> str | None:
    """The name of the profile ``to_srgb`` converts ``image`` by, or None where it leaves the image as it is."""
    found = _transform_of(image)
    return None if found is None else found[0]


def to_srgb(image: Image.Image) -> Image.Image:
    """``image`` (decoded) in sRGB, converted by its embedded profile (``profile_name``; a CMYK
    or greyscale photo's to RGB, a greyscale one with alpha to RGBA); its other metadata kept
    (a written garment's signature, XMP)."""
    found = _transform_of(image)
    if found is None:
        return image
    from PIL import ImageCms

    try:
        if image.mode == "LA":
            converted = ImageCms.applyTransform(image.getchannel("L"), found[1]).convert("RGBA")
            converted.putalpha(image.getchannel("A"))
        else:
            converted = ImageCms.applyTransform(image, found[1])
    except Exception:  # noqa: BLE001 - a transform that fails on this image: the pixels as stored, as before
        return image
    converted.info = {key: value for key, value in image.info.items() if key not in ("icc_profile", "nclx_profile")}
    return converted


def _transform_of(image: Image.Image) -> tuple[str, Any] | None:
    """``_transform`` for ``image``; a grey photo with alpha (LA, which LittleCMS does not take)
    by its grey band's (``to_srgb`` keeps its alpha)."""
    return _transform(_icc(image), "L" if image.mode == "LA" else image.mode)


@functools.lru_cache(maxsize=16)
def _transform(icc: bytes, mode: str) -> tuple[str, Any] | None:
    """(the profile's name, its transform to sRGB) for an image of ``mode`` carrying ``icc``;
    None where none applies. Made once per profile and mode (a folder of one phone's photos
    shares one), without LittleCMS's one-pixel cache, which threads sharing it would race on."""
    if not icc or mode not in CONVERTED_MODES:
        return None
    space, out_mode = CONVERTED_MODES[mode]
    try:
        from PIL import ImageCms
    except ImportError:  # a Pillow built without LittleCMS: said once, the photos read as stored
        _say_unconverted()
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        name = (ImageCms.getProfileDescription(profile) or "").strip()
        if profile.profile.xcolor_space.strip() != space or (space == "RGB" and "srgb" in name.lower()):
            return None
        srgb = ImageCms.createProfile("sRGB")
        return name or "an unnamed profile", ImageCms.buildTransform(
            profile, srgb, mode, out_mode, flags=ImageCms.Flags.NOCACHE
        )
    except Exception:  # noqa: BLE001 - a profile LittleCMS cannot use: the photo as stored, as before
        return None


@functools.cache
def _say_unconverted() -> None:
    logging.getLogger(__name__).warning("photos with a colour profile are %s", UNCONVERTED)
