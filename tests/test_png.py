"""PNG files written with numpy and zlib (``runtime/png.py``), read back by Pillow."""

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from clothes_extractor.runtime.images import SIGNATURE_KEY, encode_image
from clothes_extractor.runtime.png import encode_png
from clothes_extractor.runtime.signature import read_signature
from conftest import ROOT

SHAPES = [(1, 1), (1, 9), (11, 1), (37, 53), (256, 192)]


@pytest.mark.parametrize("channels", [None, 1, 3, 4])
@pytest.mark.parametrize("shape", SHAPES)
def test_every_pixel_reads_back_as_written(shape, channels):
    rng = np.random.default_rng(sum(shape))
    array = rng.integers(0, 256, shape if channels is None else (*shape, channels), dtype=np.uint8)
    array[: shape[0] // 2] = array[: shape[0] // 2, :1]  # flat runs too, where the filter gives zeros
    data = encode_png(array)
    Image.open(io.BytesIO(data)).verify()  # the chunks' CRCs and layout
    image = Image.open(io.BytesIO(data))
    assert image.mode == {None: "L", 1: "L", 3: "RGB", 4: "RGBA"}[channels] and image.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(image), array if channels != 1 else array[..., 0])


def test_a_view_of_another_array_is_written_as_its_pixels():
    whole = np.arange(40 * 30 * 3, dtype=np.uint32).astype(np.uint8).reshape(40, 30, 3)
    part = whole[5:25:2, 3:20, ::-1]  # strided, reversed channels: not contiguous
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(part)))), part)


def test_texts_come_before_the_image_data_where_a_rerun_reads_them(tmp_path):
    array = np.full((64, 48, 3), 200, np.uint8)
    data = encode_png(array, {SIGNATURE_KEY: "model=0123456789abcdef size=auto background=white", "x": ""})
    assert data.index(b"tEXt") < data.index(b"IDAT")
    image = Image.open(io.BytesIO(data))
    assert image.info[SIGNATURE_KEY] == "model=0123456789abcdef size=auto background=white" and image.info["x"] == ""
    (tmp_path / "g.png").write_bytes(encode_image(array, "png", signature="model=abc size=auto"))
    assert read_signature(tmp_path / "g.png", "png") == "model=abc size=auto"


def test_the_image_data_is_up_filtered_rows_at_a_fast_zlib_level():
    array = np.random.default_rng(1).integers(0, 256, (8, 5, 3), dtype=np.uint8)
    data = encode_png(array)
    start = data.index(b"IDAT") + 4
    length = int.from_bytes(data[start - 8 : start - 4], "big")
    rows = np.frombuffer(zlib.decompress(data[start : start + length]), np.uint8).reshape(8, 1 + 5 * 3)
    assert (rows[:, 0] == 2).all()  # the "Up" filter on every row
    assert np.array_equal(
        np.cumsum(rows[:, 1:], 0, dtype=np.uint8), array.reshape(8, 15)
    )  # (each row: less the one above)
    assert data[start : start + 2] == b"\x78\x5e"  # zlib's header for its fast levels (2-5)


def test_the_example_photos_files_are_no_larger_than_pillow_s():
    ours = theirs = 0
    for photo in sorted((ROOT / "examples" / "photos").glob("figure-*.jpg")):
        pixels = np.asarray(Image.open(photo).convert("RGB"))
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG", compress_level=1)
        ours, theirs = ours + len(encode_png(pixels)), theirs + len(buffer.getvalue())
    assert theirs > 300_000 and ours <= theirs  # (unfiltered rows at this level: 15% more)


@pytest.mark.parametrize(
    ("array", "texts", "message"),
    [
        (np.zeros((4, 4, 3), np.float32), None, "uint8"),
        (np.zeros((4, 4, 2), np.uint8), None, "1, 3 or 4 channels"),
        (np.zeros((0, 4, 3), np.uint8), None, "uint8"),
        (np.zeros((4, 4, 3), np.uint8), {"": "v"}, "text key"),
        (np.zeros((4, 4, 3), np.uint8), {"k" * 80: "v"}, "text key"),
    ],
)
def test_what_cannot_be_a_png_is_refused(array, texts, message):
    with pytest.raises(ValueError, match=message):
        encode_png(array, texts)
