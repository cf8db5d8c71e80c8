"""What an output's record says of the files it was made from (its signature's input part,
``stages.signed_by``): each file's size and modification time (``input_state``), and once the
job has read them the digest of their bytes after ``CONTENT`` (``with_digest``). A rerun redoes
an output whose files changed since and skips one whose files have new times and the same bytes
(``resume``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

CONTENT = "+"  # in an input record, between the sizes and times and the digest of the bytes (``with_content``)


def input_state(*paths: Path | None) -> tuple[str | None, tuple[int, ...]]:
    """The input record of the files a job reads, its stamp: the size and modification time (ns)
    of each (``SIZE:MTIME``, joined by ``,``), as its output's signature stores them: a rerun
    redoes an output whose photo or mask file changed since (a product shot again under its old
    name, a mask fixed by hand), whatever the clocks (a time in the future included); one whose
    files have new times and the same bytes (copied, restored) is not, by the digest its record
    also holds (``with_content``). With it, from the same look, each file's status-change time
    (ns): a chmod or chown moves it, and a file renamed into place with its old size and time,
    where the stamp stays; a watch gives such a photo again (``watch``: one that could not be
    read is read once its permissions are mended). (None, ()) where one cannot be looked up."""
    try:
        stats = [os.stat(path) for path in paths if path is not None]
    except OSError:
        return None, ()
    return ",".join(file_stamp(stat.st_size, stat.st_mtime_ns) for stat in stats), tuple(s.st_ctime_ns for s in stats)


def file_stamp(size: int, mtime_ns: int) -> str:
    """One file's part of an input record (``input_state``; a listed object's too): ``SIZE:MTIME``."""
    return f"{size}:{mtime_ns}"


def with_digest(stamp: str | None, paths: Sequence[Path], data: Sequence[bytes | None] = ()) -> str | None:
    """An input record (``input_state``) completed by the digest of those files' bytes as the job
    read them (``data``, in their order) or as they are read now (``content_digest``), after
    ``CONTENT``; as it is where there is none, it has one already, or the files cannot be read."""
    if stamp is None or CONTENT in stamp:
        return stamp
    digest = content_digest(paths, data)
    return stamp if digest is None else f"{stamp}{CONTENT}{digest}"


def content_digest(paths: Sequence[Path], data: Sequence[bytes | None] = ()) -> str | None:
    """The digest of the files' bytes (BLAKE2b, 16 bytes; each file's length first), which tells
    a photo copied or touched (a new time, the same bytes: ``cp -r``, a restore, a checkout) from
    one changed; ``data``: the files' bytes where they were read already, in their order (None, or
    none given: read here). None where one cannot be read."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        for index, path in enumerate(paths):
            read = data[index] if index < len(data) else None
            if read is not None:
                digest.update(len(read).to_bytes(8, "little"))
                digest.update(read)
                continue
            with open(path, "rb") as file:  # (in pieces: a 200 MB TIFF is not held whole for this)
                digest.update(os.fstat(file.fileno()).st_size.to_bytes(8, "little"))
                while piece := file.read(1 << 20):
                    digest.update(piece)
    except OSError:
        return None
    return digest.hexdigest()
