import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from clothes_extractor.errors import InputError
from clothes_extractor.runtime.images import encode_image, load_mask, load_photo
from clothes_extractor.runtime.labelmaps import load_label_mask, load_parse_mask
from clothes_extractor.runtime.signature import check_replaceable, read_signature


def png_header_only(path, width, height):
    """A PNG whose header claims width x height and which has no pixel data at all."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_empty_file(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty file \(0 bytes\)"):
        load_photo(tmp_path / "a.jpg")


def test_a_folder_is_named_as_one(tmp_path):
    (tmp_path / "a.jpg").mkdir()  # (a pairs file or a list can name one; Pillow's own words were "Errno 21")
    with pytest.raises(InputError, match=r"photo \S+a.jpg is a folder, not an image$"):
        load_photo(tmp_path / "a.jpg")


def test_not_an_image(tmp_path):
    (tmp_path / "a.jpg").write_text("hello, I am text")
    with pytest.raises(InputError, match="not an image in a format Pillow can read"):
        load_photo(tmp_path / "a.jpg")


def test_phone_and_web_formats_are_read_and_walked(tmp_path):
    from PIL import features

    from clothes_extractor.runtime.jobs import find_jobs

    pillow_heif = pytest.importorskip("pillow_heif", reason="HEIC needs pillow-heif (the [heif] extra)")
    pillow_heif.register_heif_opener()  # to write one; the reader registers it itself
    source = Image.fromarray(np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (128, 1))).convert("RGB")
    names = ["phone.heic", "web.jfif"] + (["shop.avif"] if features.check("avif") else [])
    for name in names:
        source.save(tmp_path / name, format={"jfif": "JPEG"}.get(name.split(".")[1]), quality=95)
    assert sorted(job.photo.name for job in find_jobs([tmp_path], tmp_path / "out", "png")) == sorted(names)
    for name in names:
        rgb, alpha = load_photo(tmp_path / name)
        diff = np.abs(np.asarray(rgb, np.int16) - np.asarray(source, np.int16))
        assert rgb.size == source.size and alpha is None and diff.mean() < 3, name
    (tmp_path / "broken.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    with pytest.raises(InputError, match="HEIC/HEIF file that pillow-heif cannot read; the file may be corrupt"):
        load_photo(tmp_path / "broken.heic")


def test_heic_without_pillow_heif_says_how_to_read_it(tmp_path):
    import subprocess
    import sys

    (tmp_path / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    (tmp_path / "shop.avif").write_bytes(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64))
    code = (
        "import sys; sys.modules['pillow_heif'] = None\n"  # as if not installed
        "from PIL import Image; Image.OPEN.pop('AVIF', None)\n"  # as a Pillow without AVIF
        "from pathlib import Path\nfrom clothes_extractor.runtime.images import load_photo\n"
        "for name in sys.argv[1:]:\n"
        "    try: load_photo(Path(name))\n"
        "    except Exception as exc: print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, tmp_path / "phone.heic", tmp_path / "shop.avif"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    heic, avif = done.stdout.splitlines()
    assert heic.startswith("InputError") and 'pip install "clothes-extractor[heif]"' in heic
    assert avif.startswith("InputError") and "AVIF image" in avif and "Pillow>=11.3" in avif


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="photo not found"):
        load_photo(tmp_path / "nope.jpg")


def test_truncated_jpeg(tmp_path):
    Image.effect_noise((200, 200), 50).convert("RGB").save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_photo(tmp_path / "cut.jpg")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_over_the_decompression_bomb_limit(tmp_path):
    # Over the limit but under twice it, where Pillow itself would only warn.
    side = int((Image.MAX_IMAGE_PIXELS * 1.5) ** 0.5)
    png_header_only(tmp_path / "huge.png", side, side)
    with pytest.raises(InputError, match="decompression-bomb limit.*downscale"):
        load_photo(tmp_path / "huge.png")


@pytest.mark.parametrize("mode", ["CMYK", "L", "P", "1", "I;16", "RGB"])
def test_photo_modes_become_rgb(tmp_path, mode):
    base = Image.new("RGB", (30, 20), (200, 100, 50))
    if mode == "I;16":
        image = Image.fromarray(np.full((20, 30), 40000, np.uint16))
        path = tmp_path / "a.png"
    else:
        image = base.convert(mode)
        path = tmp_path / ("a.jpg" if mode == "CMYK" else "a.png")
    image.save(path)
    photo, alpha = load_photo(path)
    assert photo.mode == "RGB" and photo.size == (30, 20) and alpha is None
    if mode == "I;16":  # 16-bit values are scaled, not clipped to white
        assert np.asarray(photo)[0, 0, 0] == round(40000 / 257)


def test_alpha_channel_is_returned_only_when_it_says_something(tmp_path):
    rgba = Image.new("RGBA", (10, 10), (1, 2, 3, 255))
    rgba.save(tmp_path / "opaque.png")
    assert load_photo(tmp_path / "opaque.png")[1] is None
    rgba.putpixel((0, 0), (1, 2, 3, 0))
    rgba.putpixel((1, 0), (200, 0, 0, 128))
    rgba.save(tmp_path / "cutout.png")
    photo, alpha = load_photo(tmp_path / "cutout.png")
    assert alpha is not None and alpha.getpixel((0, 0)) == 0 and alpha.getpixel((5, 5)) == 255
    # The photo is composited on white: a cut-out's hidden pixels never reach the models.
    assert photo.getpixel((0, 0)) == (255, 255, 255) and photo.getpixel((5, 5)) == (1, 2, 3)
    assert photo.getpixel((1, 0)) == (227, 127, 127)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_compositing_on_white_is_exact_for_every_value_and_alpha(mode):
    from clothes_extractor.runtime.images import split_alpha

    value, alpha = (a.astype(np.uint8) for a in np.meshgrid(np.arange(256), np.arange(256)))
    bands = [value, 255 - value, value // 2] if mode == "RGBA" else [value]
    image = Image.fromarray(np.dstack([*bands, alpha]), mode)
    rgb, got_alpha = split_alpha(image)
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    expected = Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")  # Pillow's own, in RGBA copies
    assert rgb.mode == "RGB" and np.array_equal(np.asarray(rgb), np.asarray(expected))
    assert np.array_equal(np.asarray(got_alpha), alpha)


def test_palette_png_with_transparency_gives_alpha(tmp_path):
    image = Image.new("P", (10, 10), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.save(tmp_path / "p.png", transparency=0)
    photo, alpha = load_photo(tmp_path / "p.png")
    assert photo.getpixel((5, 5)) == (255, 0, 0)
    assert alpha.getpixel((0, 0)) == 0


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 20, 20))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    photo, _ = load_photo(tmp_path / "rot.jpg")
    assert photo.size == (20, 40)
    assert np.asarray(photo)[5, 10].mean() > 200  # the white half is on top now


def test_a_photo_shown_as_stored_is_not_copied_to_turn_it(tmp_path, monkeypatch):
    # exif_transpose returns a whole copy even when there is nothing to turn: a 75 Mpx PNG
    # held 1.07 GB in extract with it, 0.76 GB without.
    from PIL import ImageOps

    turned = []
    transpose = ImageOps.exif_transpose
    monkeypatch.setattr(ImageOps, "exif_transpose", lambda image, **kw: turned.append(1) or transpose(image, **kw))
    exif = Image.Exif()
    exif[0x0112] = 1  # stored as shown
    Image.new("RGB", (40, 20)).save(tmp_path / "plain.jpg", exif=exif)
    Image.new("RGB", (40, 20)).save(tmp_path / "plain.png")
    for name in ("plain.jpg", "plain.png"):
        assert load_photo(tmp_path / name)[0].size == (40, 20)
    assert turned == []
    exif[0x0112] = 6
    Image.new("RGB", (40, 20)).save(tmp_path / "rot.jpg", exif=exif)
    assert load_photo(tmp_path / "rot.jpg")[0].size == (20, 40) and turned == [1]


def test_jpeg_draft_decodes_smaller(tmp_path):
    Image.new("RGB", (1600, 1200), (10, 200, 30)).save(tmp_path / "big.jpg")
    photo, _ = load_photo(tmp_path / "big.jpg", decode_scale=lambda shown: 0.2)
    assert photo.size == (400, 300)  # the largest power-of-two reduction that keeps >= 0.2
    full, _ = load_photo(tmp_path / "big.jpg")
    assert full.size == (1600, 1200)


@pytest.mark.parametrize("kind", ["binary", "soft-jpg", "rgb", "cutout", "16bit"])
def test_masks_of_any_format(tmp_path, kind):
    values = np.zeros((20, 30), np.uint8)
    values[5:15, 10:20] = 255
    if kind == "binary":
        Image.fromarray(values).convert("1").save(tmp_path / "m.png")
    elif kind == "soft-jpg":
        Image.fromarray(values).save(tmp_path / "m.jpg")
    elif kind == "rgb":
        Image.fromarray(np.stack([values] * 3, -1)).save(tmp_path / "m.png")
    elif kind == "cutout":
        rgba = np.zeros((20, 30, 4), np.uint8)
        rgba[..., :3] = 128
        rgba[..., 3] = values
        Image.fromarray(rgba, "RGBA").save(tmp_path / "m.png")
    else:
        Image.fromarray(values.astype(np.uint16) * 257).save(tmp_path / "m.png")
    path = next(tmp_path.iterdir())
    mask = np.asarray(load_mask(path))
    assert mask.shape == (20, 30)
    assert mask[10, 15] > 200 and mask[0, 0] < 50


def test_parse_maps_label_and_colour(tmp_path):
    labels = np.zeros((8, 8), np.uint8)
    labels[2:4, 2:6] = 5
    labels[6, 6] = 13
    palette = Image.fromarray(labels, "P")
    palette.putpalette([0, 0, 0] * 5 + [254, 85, 0] + [9, 9, 9] * 250)
    palette.save(tmp_path / "p.png")
    colour = palette.convert("RGB")
    colour.save(tmp_path / "c.png")
    for name in ("p.png", "c.png"):
        mask = np.asarray(load_parse_mask(tmp_path / name))
        assert (mask == np.where(labels == 5, 255, 0)).all()
    # Dress Code's own labels: 4 is its upper clothes, and it has no colour maps.
    labels[0, 0] = 4
    Image.fromarray(labels, "L").save(tmp_path / "dc.png")
    assert (np.asarray(load_label_mask("labels", tmp_path / "dc.png")) == np.where(labels == 4, 255, 0)).all()
    with pytest.raises(InputError, match="label 4"):
        load_label_mask("labels", tmp_path / "c.png")


def test_encode_formats_round_trip():
    array = np.zeros((16, 12, 3), np.uint8)
    array[:, :6] = (255, 0, 0)
    for fmt, pil_format in (("png", "PNG"), ("jpg", "JPEG"), ("webp", "WEBP")):
        import io

        decoded = Image.open(io.BytesIO(encode_image(array, fmt)))
        assert decoded.format == pil_format and decoded.size == (12, 16)
    with pytest.raises(ValueError, match="unknown output format"):
        encode_image(array, "gif")


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_outputs_carry_a_signature_that_only_whole_files_give_back(tmp_path, fmt):
    array = np.random.default_rng(0).integers(0, 256, (32, 24, 3), dtype=np.uint8)
    path = tmp_path / f"g.{fmt}"
    path.write_bytes(encode_image(array, fmt, signature="model=abc size=auto"))
    assert read_signature(path, fmt) == "model=abc size=auto"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 7])  # a truncated output
    assert read_signature(path, fmt) is None
    path.write_bytes(b"")
    assert read_signature(path, fmt) is None
    path.write_bytes(encode_image(array, fmt))  # complete, but written without a signature
    assert read_signature(path, fmt) is None
    path.unlink()
    path.mkdir()  # a folder of the output's name
    assert read_signature(path, fmt) is None
    other = "jpg" if fmt != "jpg" else "png"
    (tmp_path / "x").write_bytes(encode_image(array, other, signature="s"))
    assert read_signature(tmp_path / "x", fmt) is None  # the wrong format for its name
    path.rmdir()
    os.mkfifo(path)  # a pipe of the output's name: not an output, and no hang waiting on it
    assert read_signature(path, fmt) is None


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_a_garment_extract_wrote_is_refused_as_a_photo_and_read_as_a_garment(tmp_path, fmt):
    # extract's outputs (signed by their generator) found among the photos, as a later run
    # with another -o finds the earlier run's: no garment made of a garment, a reason instead
    array = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    garment = tmp_path / f"garment.{fmt}"
    garment.write_bytes(encode_image(array, fmt, signature="model=0123456789abcdef size=auto background=white"))
    with pytest.raises(
        InputError, match="photo .* is a garment image that extract wrote.*give it to try-on as the garment"
    ):
        load_photo(garment)
    assert load_photo(garment, role="garment image")[0].size == (48, 64)  # tryon --garment reads it
    assert load_mask(garment).size == (48, 64)  # (and so does anything that is not a photo)
    # what is not extract's garment stays a photo: tryon's dressed people, unsigned images
    for name, signature in (("dressed", "tryon=0123456789abcdef parser=fedcba9876543210"), ("plain", None)):
        (tmp_path / f"{name}.{fmt}").write_bytes(encode_image(array, fmt, signature=signature))
        assert load_photo(tmp_path / f"{name}.{fmt}")[0].size == (48, 64)


def test_a_damaged_png_signature_is_no_signature(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (32, 24, 3), dtype=np.uint8)
    data = encode_image(array, "png", signature="model=abc size=auto")
    at = data.index(b"model=abc")
    length = data.index(b"tEXt") - 4  # the text chunk's length field, made larger than the file
    huge = data[:length] + b"\xff\xff\xff\xf0" + data[length + 4 :]
    for damaged in (data[:at] + b"M" + data[at + 1 :], data[:12] + b"\0" + data[13:], huge):  # text, IHDR, length
        (tmp_path / "g.png").write_bytes(damaged)
        assert read_signature(tmp_path / "g.png", "png") is None
        with pytest.raises((SyntaxError, OSError)):  # Pillow, which read it before, refuses it too
            Image.open(tmp_path / "g.png")


def test_rgba_outputs_and_no_alpha_in_jpeg():
    import io

    array = np.zeros((8, 6, 3), np.uint8)
    alpha = np.full((8, 6), 7, np.uint8)
    decoded = Image.open(io.BytesIO(encode_image(array, "png", alpha=alpha)))
    assert decoded.mode == "RGBA" and decoded.getpixel((0, 0))[3] == 7
    with pytest.raises(ValueError, match="JPEG has no alpha"):
        encode_image(array, "jpg", alpha=alpha)


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_signatures_read_without_pread(tmp_path, monkeypatch, fmt):
    # where os.pread is missing (Windows), the same answers through seek and read
    array = np.random.default_rng(1).integers(0, 256, (32, 24, 3), dtype=np.uint8)
    path = tmp_path / f"g.{fmt}"
    data = encode_image(array, fmt, signature="model=abc")
    monkeypatch.delattr(os, "pread")
    path.write_bytes(data)
    assert read_signature(path, fmt) == "model=abc"
    path.write_bytes(data[:-5])
    assert read_signature(path, fmt) is None


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_only_files_this_tool_wrote_are_replaceable(tmp_path, fmt):
    from clothes_extractor.errors import OutputError

    array = np.random.default_rng(2).integers(0, 256, (300, 200, 3), dtype=np.uint8)  # over 64 KB as PNG
    path = tmp_path / f"g.{fmt}"
    ours = encode_image(array, fmt, signature="model=other")
    cut = [ours[: len(ours) // 2]] if fmt != "webp" else []  # WebP's XMP comes last: a cut one is nobody's
    for data in (ours, *cut, b""):  # another run's, cut short, empty: redone
        path.write_bytes(data)
        check_replaceable(path)
    path.write_bytes(encode_image(array, fmt))  # the shop's own image: no signature
    with pytest.raises(OutputError, match="was not written by clothes-extractor: it is kept.*--overwrite"):
        check_replaceable(path)
    check_replaceable(tmp_path / "missing.png")
    (tmp_path / "folder.png").mkdir()
    check_replaceable(tmp_path / "folder.png")  # the write reports a folder in the way
