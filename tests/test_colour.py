"""A photo's embedded colour profile: converted to sRGB before the models see the photo.

The profiles are made here (``colour.matrix_profile``, which HEIF photos' nclx descriptions need
anyway; its colorants checked against a published profile's): a wide-gamut one (Display P3's
primaries) and an "sRGB" one need no file.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from clothes_extractor import extract_garment
from clothes_extractor.runtime.colour import matrix_profile, profile_name, to_srgb
from clothes_extractor.runtime.gpudecode import host_reason
from clothes_extractor.runtime.images import load_photo
from conftest import person_photo

WIDE = ((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841))  # Display P3's, in D50
P3_XY = [(0.680, 0.320), (0.265, 0.690), (0.150, 0.060)]  # chromaticities (x, y): Display P3's primaries
SRGB_XY = [(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)]  # sRGB's
D65_XY = (0.3127, 0.3290)  # their white


def icc_profile(description: str, primaries=P3_XY, gamma: float = 2.2) -> bytes:
    """An RGB display profile of ``primaries`` (D65) and one gamma curve (``matrix_profile``,
    checked against Display P3's published colorants below)."""
    return matrix_profile(description, primaries, D65_XY, gamma)


WIDE_PROFILE = icc_profile("Wide gamut (test)")


def patches() -> Image.Image:
    image = Image.new("RGB", (4, 1))
    image.putdata([(200, 30, 30), (30, 200, 30), (30, 30, 200), (128, 128, 128)])
    return image.resize((64, 16), Image.NEAREST)


def saved(image: Image.Image, path, **options):
    image.save(path, **options)
    return path


def test_a_photo_in_a_wide_gamut_profile_is_read_in_srgb(tmp_path):
    tagged = load_photo(saved(patches(), tmp_path / "wide.png", icc_profile=WIDE_PROFILE))[0]
    plain = load_photo(saved(patches(), tmp_path / "plain.png"))[0]
    assert np.array_equal(np.asarray(plain), np.asarray(patches()))  # no profile: as stored
    red, green, blue, grey = (tuple(int(v) for v in np.asarray(tagged)[0, 16 * i]) for i in range(4))
    assert red[0] >= 215 and red[1] <= 5 and green[1] >= 200 and green[0] <= 5 and blue[2] >= 205  # more saturated
    assert abs(grey[0] - 128) <= 2  # (a grey stays grey)
    srgb = ImageCms.createProfile("sRGB")
    wide = ImageCms.ImageCmsProfile(io.BytesIO(WIDE_PROFILE))
    assert np.array_equal(np.asarray(tagged), np.asarray(ImageCms.profileToProfile(patches(), wide, srgb)))
    # an sRGB profile, a profile that is not one, and a greyscale photo are read as stored
    named_srgb = icc_profile("sRGB IEC61966-2.1", SRGB_XY)
    for name, profile in (("srgb.png", named_srgb), ("broken.png", b"not a profile")):
        as_stored = load_photo(saved(patches(), tmp_path / name, icc_profile=profile))[0]
        assert np.array_equal(np.asarray(as_stored), np.asarray(patches())), name
    grey_photo = saved(patches().convert("L"), tmp_path / "grey.png", icc_profile=WIDE_PROFILE)
    assert np.array_equal(np.asarray(load_photo(grey_photo)[0]), np.asarray(patches().convert("L").convert("RGB")))


def test_a_cut_out_keeps_its_alpha_and_its_metadata(tmp_path):
    cut_out = patches().convert("RGBA")
    cut_out.putalpha(Image.new("L", cut_out.size, 77))
    rgb, alpha = load_photo(saved(cut_out, tmp_path / "cut.png", icc_profile=WIDE_PROFILE))
    assert alpha is not None and alpha.getextrema() == (77, 77)
    assert rgb.getpixel((0, 0)) != patches().getpixel((0, 0))  # converted (then laid on white)
    image = patches()
    image.info.update({"icc_profile": WIDE_PROFILE, "xmp": b"<x/>"})
    assert to_srgb(image).info == {"xmp": b"<x/>"}  # the profile no longer describes the pixels


def test_the_garment_of_a_tagged_photo_is_the_garment_of_its_srgb_copy(tiny_model_path, tmp_path):
    """Until the 55th stop a Display P3 photo (a phone's) was read as if its numbers were sRGB:
    its colours, and its garment's, duller."""
    photo, mask = person_photo(2)
    tagged = saved(photo, tmp_path / "tagged.png", icc_profile=WIDE_PROFILE)
    wide = ImageCms.ImageCmsProfile(io.BytesIO(WIDE_PROFILE))
    srgb_copy = saved(ImageCms.profileToProfile(photo, wide, ImageCms.createProfile("sRGB")), tmp_path / "srgb.png")
    untagged = saved(photo, tmp_path / "untagged.png")
    garments = [np.asarray(extract_garment(path, mask, generator=tiny_model_path)) for path in (tagged, srgb_copy)]
    assert np.array_equal(*garments)
    assert not np.array_equal(garments[0], np.asarray(extract_garment(untagged, mask, generator=tiny_model_path)))


def test_a_tagged_jpeg_is_decoded_on_the_host_where_it_is_converted(tmp_path):
    with Image.open(saved(patches(), tmp_path / "wide.jpg", icc_profile=WIDE_PROFILE)) as image:
        assert profile_name(image) == "Wide gamut (test)"
        assert host_reason(image) == "colour profile Wide gamut (test)"
    for profile in (icc_profile("sRGB built-in"), None):
        options = {"icc_profile": profile} if profile else {}
        with Image.open(saved(patches(), tmp_path / "srgb.jpg", **options)) as image:
            assert profile_name(image) is None and host_reason(image) is None


@pytest.mark.parametrize("mode", ["CMYK", "L", "P"])
def test_modes_it_does_not_convert_are_left_to_pillow(mode):
    image = patches().convert(mode)
    image.info["icc_profile"] = WIDE_PROFILE
    assert profile_name(image) is None and to_srgb(image) is image


TAGS = (b"rXYZ", b"gXYZ", b"bXYZ")


def colorants(profile: bytes) -> np.ndarray:
    """The rXYZ, gXYZ and bXYZ tags of a matrix profile, as rows."""
    count = struct.unpack(">I", profile[128:132])[0]
    entries = [profile[132 + 12 * i : 144 + 12 * i] for i in range(count)]
    offsets = {entry[:4]: struct.unpack(">I", entry[4:8])[0] for entry in entries}
    return np.array([struct.unpack(">3i", profile[offsets[tag] + 8 : offsets[tag] + 20]) for tag in TAGS])


def test_a_profile_made_of_chromaticities_has_the_published_colorants():
    """``matrix_profile`` of Display P3's chromaticities (D65) adapts them to D50 as published
    profiles do (Apple's Display P3 colorants, ``WIDE``, to within 0.001)."""
    made = matrix_profile("P3", P3_XY, D65_XY, "srgb")
    assert np.abs(colorants(made) / 65536 - np.array(WIDE)).max() < 1e-3
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(made))).strip() == "P3"


def srgb_of(pixels: np.ndarray, primaries) -> np.ndarray:
    """Reference: sRGB-curve pixels of ``primaries`` (D65) as sRGB, by the formulas (no ICC)."""

    def to_xyz(xy):
        xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in (*xy, D65_XY)]).T
        return xyz[:, :3] * np.linalg.solve(xyz[:, :3], xyz[:, 3])

    v = pixels / 255.0
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    srgb_from = np.linalg.solve(to_xyz(SRGB_XY), to_xyz(primaries))
    moved = np.clip(linear @ srgb_from.T, 0, 1)
    return np.round(255 * np.where(moved <= 0.0031308, 12.92 * moved, 1.055 * moved ** (1 / 2.4) - 0.055))


def test_a_heif_photo_that_describes_its_colours_by_nclx_is_converted_by_them(tmp_path):
    """A HEIF photo may carry no ICC profile, only H.273 codes (primaries 12: Display P3)."""
    pillow_heif = pytest.importorskip("pillow_heif", reason="the [heif] extra is not installed")
    pillow_heif.register_heif_opener()
    photo = person_photo(2)[0]
    codes = {"transfer_characteristics": 13, "matrix_coefficients": 6, "full_range_flag": 1}
    decoded = {}
    for name, primaries, transfer in (("p3.heic", 12, 13), ("srgb.heic", 1, 13), ("pq.heic", 12, 16)):
        nclx = {**codes, "color_primaries": primaries, "transfer_characteristics": transfer}
        photo.save(tmp_path / name, quality=95, nclx_profile=nclx)
        decoded[name] = np.asarray(Image.open(tmp_path / name).convert("RGB"))  # as stored
    with Image.open(tmp_path / "p3.heic") as image:
        assert image.info["nclx_profile"]["color_primaries"] == 12 and "icc_profile" not in image.info
        assert profile_name(image) == "nclx primaries 12, transfer 13"
    read = np.asarray(load_photo(tmp_path / "p3.heic")[0]).astype(int)
    assert np.abs(read - srgb_of(decoded["p3.heic"], P3_XY)).max() <= 2
    assert np.abs(read - decoded["p3.heic"].astype(int)).mean() > 1  # (and not as stored)
    for as_stored in ("srgb.heic", "pq.heic"):  # sRGB's primaries; a high-dynamic-range curve: as before
        assert np.array_equal(np.asarray(load_photo(tmp_path / as_stored)[0]), decoded[as_stored]), as_stored
