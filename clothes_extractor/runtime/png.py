"""PNG files written with numpy and zlib: ``encode_png``.

Pillow's PNG encoder chooses a filter for every row by trying all five, which is most of its
time at the fast compression level a folder job used (1). Here every row takes the "Up"
filter (the row less the one above it: one numpy subtraction for the whole image) and zlib
compresses the lot at level 2. Against Pillow at level 1, on the bundled generator's garments
(2-core CPU, 2026-12-04): RGB 256x192 1.8 ms instead of 3.4 and 42.2 KB instead of 43.0;
1024x768 10.4 ms instead of 24.4, 173 KB instead of 190; RGBA (transparent) 256x192 2.4 ms
instead of 3.5, 52.2 KB instead of 51.9; 1024x768 13.0 ms instead of 35.6, 291 KB instead of
307. Any PNG reader reads them: the signature, IHDR, a ``tEXt`` chunk per text, one IDAT,
IEND (the PNG specification, 3rd edition, sections 5, 11.2 and 9.2).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

MAGIC = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type: greyscale, truecolour, truecolour with alpha
UP = 2  # the PNG row filter: each byte less the byte above it
LEVEL = 2  # zlib's: up to 3x faster than its default 6; at 1 the files are 2-6% larger, for 10-20% less time


def encode_png(array: np.ndarray, texts: dict[str, str] | None = None) -> bytes:
    """A PNG file of a uint8 ``array``: [H, W] (greyscale), [H, W, 3] (RGB) or [H, W, 4] (RGBA),
    8 bits a channel; ``texts`` (Latin-1 keys of 1-79 characters and values) as ``tEXt`` chunks
    before the image data, where a reader of the file's first bytes finds them."""
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or 0 in array.shape[:2]:
        raise ValueError(f"a PNG is written from uint8 [H, W] or [H, W, 3 or 4], got {array.dtype} {list(array.shape)}")
    pixels = array if array.ndim == 3 else array[..., None]
    channels = pixels.shape[2]
    if channels not in COLOUR_TYPES:
        raise ValueError(f"a PNG is written from 1, 3 or 4 channels, got {channels}")
    height, width = pixels.shape[:2]
    rows = np.empty((height, 1 + width * channels), np.uint8)
    rows[:, 0] = UP
    flat = pixels.reshape(height, width * channels)
    rows[0, 1:] = flat[0]  # (the row above the first is zeros)
    np.subtract(flat[1:], flat[:-1], out=rows[1:, 1:])  # (modulo 256, as the filter is)
    header = struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[channels], 0, 0, 0)
    parts = [MAGIC, _chunk(b"IHDR", header)]
    for key, value in (texts or {}).items():
        name = key.encode("latin-1")
        if not 1 <= len(name) <= 79 or b"\0" in name:
            raise ValueError(f"a PNG text key is 1-79 Latin-1 characters without NUL, got {key!r}")
        parts.append(_chunk(b"tEXt", name + b"\0" + value.encode("latin-1")))
    parts += [_chunk(b"IDAT", zlib.compress(rows.data, LEVEL)), _chunk(b"IEND", b"")]
    return b"".join(parts)


def _chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: its length, type, data and the CRC of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))
