"""Splitting one folder job across machines or processes without Ray: ``--shard K/N`` of
``extract`` and ``tryon`` (for ``tryon`` a pair's output name, ``PERSON__GARMENT``).

Each of N runs (a SLURM array, a Kubernetes indexed job, N terminals) is given the same
inputs and ``-o`` and takes the photos of its share. A photo's share comes from a hash of
its output name (the path under ``-o``, without the suffix), not from its place in the walk:
the shares stay the same on every machine however the folder is mounted, a photo added later
joins its own share and moves no other, and photos that would write one output (``a.jpg``,
``a.png``) meet in one share, where the second is refused as without shards.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    index: int  # from 0
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"K/N"`` (K from 1 to N); ``ValueError`` saying what it takes."""
        number, _, count = text.partition("/")
        if number.strip().isdecimal() and count.strip().isdecimal() and 1 <= int(number) <= int(count):
            return cls(int(number) - 1, int(count))
        raise ValueError(f"takes K/N, the K-th of N shares, 1 <= K <= N (2/8, say), not {text!r}")

    def holds(self, rel: str) -> bool:
        """Whether the photo whose output is ``-o``/``rel``.FORMAT belongs to this share."""
        return zlib.crc32(rel.encode("utf-8", "surrogateescape")) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"
