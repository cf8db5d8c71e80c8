"""A photo's embedded colour profile: converted to sRGB before the models see the photo.

The profiles are made here (``colour.matrix_profile``, which HEIF photos' nclx descriptions need
anyway; its colorants checked against a published profile's): a wide-gamut one (Display P3's
primaries) and an "sRGB" one need no file, nor a made-up press's CMYK one or a grey one.
"""

from __future__ import annotations

import io
import struct
import sys

import numpy as np
import PIL
import pytest
from PIL import Image, ImageCms

from clothes_extractor import extract_garment
from clothes_extractor.data.downsample import downsample_dataset
from clothes_extractor.data.synth import write_synthetic
from clothes_extractor.runtime.colour import matrix_profile, profile_file, profile_name, to_srgb
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
def test_a_profile_that_does_not_describe_the_pixels_is_left_to_pillow(mode):
    """An RGB profile on a CMYK, greyscale or palette photo: the photo as Pillow reads it."""
    image = patches().convert(mode)
    image.info["icc_profile"] = WIDE_PROFILE
    assert profile_name(image) is None and to_srgb(image) is image


def press_profile() -> bytes:
    """A CMYK output profile (ICC lut8, two grid points per ink, Lab): a made-up press whose inks
    are not Pillow's naive ones (its cyan a mid blue, its black a dark grey on off-white paper)."""

    def lab(c: int, m: int, y: int, k: int) -> tuple[float, float, float]:
        light = 92 - 35 * c - 40 * m - 6 * y - 70 * k
        return max(light, 8), -28 * c + 55 * m - 4 * y, -42 * c - 6 * m + 75 * y

    table = b"".join(
        bytes([round(light / 100 * 255), round(a + 128), round(b + 128)])
        for light, a, b in (lab(*corner) for corner in np.ndindex(2, 2, 2, 2))
    )
    identity = b"".join(struct.pack(">i", v) for v in (65536, 0, 0, 0, 65536, 0, 0, 0, 65536))
    lut = b"mft1\0\0\0\0" + bytes([4, 3, 2, 0]) + identity + bytes(range(256)) * 4 + table + bytes(range(256)) * 3
    return profile_file("Made-up press (test)", b"prtr", b"CMYK", b"Lab ", [(b"A2B0", lut)])


def inks() -> Image.Image:
    """Patches of no ink, cyan, magenta, yellow, black and a mix, 16 pixels wide each."""
    image = Image.new("CMYK", (6, 1))
    image.putdata([(0, 0, 0, 0), (255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255), (128, 64, 0, 32)])
    return image.resize((96, 16), Image.NEAREST)


def test_a_print_jpeg_in_cmyk_is_read_by_its_press_profile(tmp_path):
    """Until the 56th stop a CMYK JPEG (print workflows: Photoshop writes its press profile) was
    read by Pillow's naive formula whatever its profile said: its cyan 0, 255, 255."""
    tagged = saved(inks(), tmp_path / "press.jpg", icc_profile=press_profile(), quality=95)
    with Image.open(tagged) as image:
        assert image.mode == "CMYK" and profile_name(image) == "Made-up press (test)"
        naive = np.asarray(image.convert("RGB")).astype(int)
        press = ImageCms.ImageCmsProfile(io.BytesIO(press_profile()))
        expected = np.asarray(ImageCms.profileToProfile(image, press, ImageCms.createProfile("sRGB"), outputMode="RGB"))
    read = np.asarray(load_photo(tagged)[0])
    assert np.array_equal(read, expected)
    cyan = read[8, 24].astype(int)
    assert cyan[0] < 40 and 110 < cyan[1] < 190 and cyan[2] > 150  # the press's cyan, a mid blue ...
    assert np.abs(naive[8, 24] - (0, 255, 255)).max() < 8  # ... where Pillow's formula says 0, 255, 255
    assert np.abs(read.astype(int) - naive).mean() > 20
    untagged = saved(inks(), tmp_path / "plain.jpg", quality=95)  # no profile: the inks are not known
    with Image.open(untagged) as image:
        assert np.array_equal(np.asarray(load_photo(untagged)[0]), np.asarray(image.convert("RGB")))


def test_a_greyscale_photo_is_read_by_its_grey_profile(tmp_path):
    """A grey profile of a linear curve: a stored 128 is half the light, sRGB's 188 (by the formula)."""
    linear = b"curv\0\0\0\0" + struct.pack(">IH", 1, 256) + b"\0\0"  # gamma 1.0
    grey_profile = profile_file("Linear grey (test)", b"mntr", b"GRAY", b"XYZ ", [(b"kTRC", linear)])
    grey = Image.new("L", (16, 16), 128)
    read = np.asarray(load_photo(saved(grey, tmp_path / "grey.png", icc_profile=grey_profile))[0]).astype(int)
    expected = round(255 * (1.055 * (128 / 255) ** (1 / 2.4) - 0.055))
    assert expected == 188 and read.shape == (16, 16, 3) and np.abs(read - expected).max() <= 2
    # with alpha (LA, which LittleCMS does not take; read as stored until the 57th stop): the
    # same grey, and its alpha kept, so that --alpha-mask still finds the garment there
    with_alpha = Image.merge("LA", (grey, Image.new("L", (16, 16), 0)))
    with_alpha.paste(Image.new("LA", (8, 16), (128, 255)), (0, 0))
    with Image.open(saved(with_alpha, tmp_path / "grey-alpha.png", icc_profile=grey_profile)) as image:
        assert profile_name(image) == "Linear grey (test)"
        image.load()
        converted = np.asarray(to_srgb(image)).astype(int)
    assert converted.shape == (16, 16, 4) and np.abs(converted[:, :8, :3] - expected).max() <= 2
    assert (converted[:, :8, 3] == 255).all() and (converted[:, 8:, 3] == 0).all()


def test_a_cmyk_pil_image_given_to_the_api_is_read_as_its_file_would_be(tiny_model_path, tmp_path):
    """The Python API saves a PIL image for the stages to read: its profile applied first (a CMYK
    image's profile would not have described the RGB copy Pillow's formula made of it)."""
    photo, mask = person_photo(3)
    cmyk = photo.convert("CMYK")
    cmyk.info["icc_profile"] = press_profile()
    as_file = saved(cmyk, tmp_path / "press.tif", icc_profile=press_profile())
    garment = np.asarray(extract_garment(cmyk, mask, generator=tiny_model_path))
    assert np.array_equal(garment, np.asarray(extract_garment(as_file, mask, generator=tiny_model_path)))
    cmyk.info.pop("icc_profile")
    assert not np.array_equal(garment, np.asarray(extract_garment(cmyk, mask, generator=tiny_model_path)))


ADOBE_XY = [(0.64, 0.33), (0.21, 0.71), (0.15, 0.06)]  # Adobe RGB (1998)'s primaries (D65)


def camera_exif(color_space: int, index: str | None) -> bytes:
    """EXIF as a camera writes it: ColorSpace (1 sRGB, 0xFFFF uncalibrated) and the DCF InteropIndex."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA001] = color_space
    if index is not None:
        exif.get_ifd(0x8769)[0xA005] = {0x0001: index}
    return exif.tobytes()


def test_a_camera_jpeg_in_adobe_rgb_is_read_by_its_exif(tmp_path):
    """A camera set to Adobe RGB embeds no profile: its EXIF says "uncalibrated" and DCF "R03".
    Until the 56th stop such a studio JPEG was read as sRGB: its greens and reds duller."""
    photo = patches()
    adobe = saved(photo, tmp_path / "adobe.jpg", exif=camera_exif(0xFFFF, "R03"), quality=100, subsampling=0)
    with Image.open(adobe) as image:
        stored = np.asarray(image.convert("RGB")).astype(int)
        assert profile_name(image) == "Adobe RGB (1998), from the camera's EXIF"
        assert host_reason(image) == "colour profile Adobe RGB (1998), from the camera's EXIF"
    read = np.asarray(load_photo(adobe)[0]).astype(int)
    expected = srgb_of(stored, ADOBE_XY, gamma=563 / 256)  # Adobe RGB's curve and primaries, by the formulas
    assert np.abs(read - expected).max() <= 2
    assert read[8, 16, 0] <= 5 and read[8, 16, 1] >= stored[8, 16, 1]  # the green more saturated (30, 200, 30 stored)
    for name, exif in (("srgb.jpg", camera_exif(1, "R98")), ("unknown.jpg", camera_exif(0xFFFF, None))):
        as_stored = saved(photo, tmp_path / name, exif=exif, quality=100, subsampling=0)
        with Image.open(as_stored) as image:
            assert profile_name(image) is None and np.array_equal(
                np.asarray(load_photo(as_stored)[0]), np.asarray(image)
            )


def test_a_pillow_without_littlecms_reads_tagged_photos_as_stored_and_says_so(tmp_path, monkeypatch, caplog):
    """Some distributions build Pillow without LittleCMS (``PIL.ImageCms`` does not import there)."""
    from clothes_extractor.runtime import colour

    tagged = saved(patches(), tmp_path / "wide.png", icc_profile=WIDE_PROFILE)
    monkeypatch.setitem(sys.modules, "PIL.ImageCms", None)  # importing it raises ImportError, as there
    monkeypatch.delattr(PIL, "ImageCms", raising=False)
    colour._transform.cache_clear()
    colour._say_unconverted.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="clothes_extractor.runtime.colour"):
            for _ in range(2):
                assert np.array_equal(np.asarray(load_photo(tagged)[0]), np.asarray(patches()))
        said = [r.getMessage() for r in caplog.records if r.name == "clothes_extractor.runtime.colour"]
        assert said == ["photos with a colour profile are " + colour.UNCONVERTED]  # once
    finally:
        colour._transform.cache_clear()
        colour._say_unconverted.cache_clear()


def test_a_downsampled_dataset_keeps_its_photos_colours(tmp_path):
    """``data downsample`` writes its copies without the photos' profiles: their pixels in sRGB
    (they were copied as stored, and the copy's colours read duller than the original's)."""
    write_synthetic(tmp_path / "full", 2, seed=3, size=(64, 48))
    Image.new("RGB", (48, 64), (200, 30, 30)).save(tmp_path / "full/photo/000000.jpg", icc_profile=WIDE_PROFILE)
    downsample_dataset(tmp_path / "full", tmp_path / "small", 32)
    with Image.open(tmp_path / "small/photo/000000.jpg") as small:
        assert small.size == (24, 32) and "icc_profile" not in small.info
        red, green, _ = np.asarray(small).reshape(-1, 3).mean(axis=0)
    assert red >= 212 and green <= 8  # the P3 red in sRGB (as stored: 200, 30, 30)


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


def srgb_of(pixels: np.ndarray, primaries, gamma: float | None = None) -> np.ndarray:
    """Reference: pixels of ``primaries`` (D65) and the sRGB curve (or ``gamma``) as sRGB, by the
    formulas (no ICC)."""

    def to_xyz(xy):
        xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in (*xy, D65_XY)]).T
        return xyz[:, :3] * np.linalg.solve(xyz[:, :3], xyz[:, 3])

    v = pixels / 255.0
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4) if gamma is None else v**gamma
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
