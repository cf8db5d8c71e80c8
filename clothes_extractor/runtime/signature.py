"""Output signatures read back: whether an existing output is this run's (resume), another
run's of this tool (redone), or someone else's file (kept unless ``--overwrite``).

``encode_image`` writes the signature (``images.SIGNATURE_KEY``: a PNG text chunk before the
image data, a JPEG comment, WebP XMP); reading it costs one open and a few reads per output.
"""

from __future__ import annotations

import os
import stat
import zlib
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from ..errors import OutputError
from .images import OUTPUT_FORMATS, SIGNATURE_KEY

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _read_at(handle: BinaryIO, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` (one system call where there is ``pread``)."""
    if hasattr(os, "pread"):
        return os.pread(handle.fileno(), size, offset)
    handle.seek(offset)
    return handle.read(size) or b""


def _ends_whole(handle: BinaryIO, size: int, fmt: str) -> bool:
    """Whether the file's last bytes are those of a complete ``fmt`` file (a cheap truncation check)."""
    if fmt == "webp":
        header = _read_at(handle, 12, 0)
        return header[:4] == b"RIFF" and header[8:12] == b"WEBP" and int.from_bytes(header[4:8], "little") + 8 == size
    tail = _read_at(handle, 12, max(0, size - 12))
    if fmt == "png":
        return tail.endswith(b"IEND\xaeB`\x82")
    return tail.rstrip(b"\x00").endswith(b"\xff\xd9")  # jpg


def _png_text(handle: BinaryIO, size: int, key: str) -> str | None:
    """The PNG text chunk ``key`` among the chunks before the image data (where ``encode_image``
    writes it), each chunk's CRC checked as Pillow checks them; None if absent or not a PNG."""
    data = _read_at(handle, 4096, 0)  # the magic, IHDR and the text chunks of our outputs
    if data[:8] != PNG_MAGIC:
        return None
    wanted, at = key.encode("latin-1") + b"\0", 8
    while True:
        if len(data) < at + 8:
            data += _read_at(handle, at + 8 - len(data), len(data))
        kind, end = data[at + 4 : at + 8], at + 12 + int.from_bytes(data[at : at + 4], "big")
        if len(kind) < 4 or kind in (b"IDAT", b"IEND") or end > size:
            return None  # the image data reached, or a chunk longer than the file
        if len(data) < end:
            data += _read_at(handle, end - len(data), len(data))
        if len(data) < end or zlib.crc32(data[at + 4 : end - 4]).to_bytes(4, "big") != data[end - 4 : end]:
            return None  # cut short or damaged
        if kind == b"tEXt" and data[at + 8 : end - 4].startswith(wanted):
            return data[at + 8 + len(wanted) : end - 4].decode("latin-1")
        at = end


def _open_nonblocking(path: str, flags: int) -> int:
    # a FIFO of the output's name must not hang the job (it is not a regular file: no signature)
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def read_signature(path: Path, fmt: str) -> str | None:
    """The signature stored in a complete output file, or None if it is missing, not a regular
    non-empty file, truncated, of another format or unreadable. (One unbuffered open and a few
    reads; a PNG's chunks are read directly: resuming a folder job reads one per photo.)"""
    try:
        with open(path, "rb", buffering=0, opener=_open_nonblocking) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size == 0 or not _ends_whole(handle, info.st_size, fmt):
                return None
            if fmt == "png":
                return _png_text(handle, info.st_size, SIGNATURE_KEY)
            handle.seek(0)
            with Image.open(handle) as image:
                if image.format != OUTPUT_FORMATS[fmt]:
                    return None
                raw = image.info.get("comment" if fmt == "jpg" else "xmp", b"")
    except (OSError, SyntaxError, ValueError):
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    prefix = f"{SIGNATURE_KEY}:"
    return text[len(prefix) :] if text.startswith(prefix) else None


MARK_WINDOW = 65536  # bytes at each end of a file where this tool's signature key sits


def check_replaceable(path: Path, option: str = "-o", shown_as: str | None = None) -> None:
    """``OutputError`` if ``path`` is a non-empty file with no mark of this tool (its signature
    key in its first or last ``MARK_WINDOW`` bytes): someone's own image, which a job keeps
    unless told to ``--overwrite`` (``option``, where the path came from, for the message).
    This tool's outputs of other models or settings carry the mark and are redone, and so do
    PNGs and JPEGs cut short (a WebP's XMP comes last; outputs are written atomically, so only
    damage cuts one); a missing path, an empty file or a folder pass. ``shown_as``: the name
    in the message, for a local copy of a remote file."""
    if carries_mark(path) is False:
        raise OutputError(
            f"{shown_as or path} exists and was not written by clothes-extractor: it is kept; "
            f"choose another {option}, or pass --overwrite to replace it"
        )


def carries_mark(path: Path) -> bool | None:
    """Whether the regular, non-empty file ``path`` has this tool's signature key in its first
    or last ``MARK_WINDOW`` bytes (an output of this tool); None for a missing path, an empty
    file, a folder or anything unreadable."""
    try:
        with open(path, "rb", buffering=0, opener=_open_nonblocking) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
                return None
            head = _read_at(handle, MARK_WINDOW, 0)
            tail = _read_at(handle, MARK_WINDOW, max(0, info.st_size - MARK_WINDOW))
    except OSError:
        return None  # missing or unreadable: writing it says what is wrong
    mark = SIGNATURE_KEY.encode()
    return mark in head or mark in tail
