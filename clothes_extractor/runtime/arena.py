"""Shared memory for the arrays a folder job's calls carry to and from worker processes.

Pickled through a process pool's pipes, a photo's arrays (its letterbox and model inputs back
from the worker that decoded it, the garment out to the one that writes it: about 0.55 MB a
photo at 256x192) are copied and piped by the calling process's pool threads, which share its
GIL with the batching that feeds the models. Here a job makes one block of shared memory with
a slot for each photo that can be in flight (``Arena``); a task of the workers takes a slot for
each of its calls, and its calls' arrays are written there (pickle protocol 5, out of band) and
only the rest of the pickle takes the pipe: the calling process copies a photo's arrays once,
the worker reads them where they lie and writes its results' arrays into the same slots. A
task whose arrays do not fit its slots (a catalog-resolution photo), or that finds none free,
crosses pickled as before, and so does every task of a job where no block can be made (no
shared memory on the system, or too little: a container's ``/dev/shm`` is 64 MB unless it is
given more, and the block takes at most half of what is free): the same results, more of the
calling process's time.

The block is the calling process's: unlinked when the job ends, or by multiprocessing's
resource tracker (which the workers share) if the process is killed first.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from typing import Any, Sequence

log = logging.getLogger(__name__)

ALIGN = 64  # each array's bytes start on a cache line
SHM_DIR = "/dev/shm"


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


@dataclass(frozen=True)
class ArenaRef:
    """What a worker needs to find a job's block: its name and slot size."""

    name: str
    slot_bytes: int


@dataclass(frozen=True)
class Packed:
    """A value whose arrays lie in an arena's slots (``spans``: offset in the arena, length);
    ``pickled`` is the rest of it; ``ends``: the first free byte of each of its slots after them."""

    pickled: bytes
    spans: tuple[tuple[int, int], ...]
    ends: tuple[int, ...]


def pack(
    view: memoryview, slot_bytes: int, value: Any, slots: Sequence[int], starts: Sequence[int] = ()
) -> Packed | None:
    """``value`` pickled, its arrays' bytes written into ``slots`` of ``view`` (in order, each
    slot from its ``starts`` on), or None where they do not fit (``value`` then crosses pickled as
    it is). A value without arrays is pickled here too: once, by the thread that packs it."""
    buffers: list[pickle.PickleBuffer] = []
    pickled = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    ends = [_aligned(start) for start in starts] if starts else [0] * len(slots)
    spans, which = [], 0
    for buffer in buffers:
        raw = buffer.raw()
        while which < len(slots) and ends[which] + raw.nbytes > slot_bytes:
            which += 1  # the next slot (a task's calls' arrays come in the order of its calls)
        if which == len(slots):
            return None
        offset = slots[which] * slot_bytes + ends[which]
        view[offset : offset + raw.nbytes] = raw
        spans.append((offset, raw.nbytes))
        ends[which] = _aligned(ends[which] + raw.nbytes)
    return Packed(pickled, tuple(spans), tuple(ends))


def unpack(view: memoryview, packed: Packed, copy: bool) -> Any:
    """The value ``pack`` wrote: its arrays copied out of the slots (``copy``: they can be reused
    at once), or read where they lie (valid while the slots are held)."""
    parts = [view[offset : offset + length] for offset, length in packed.spans]
    return pickle.loads(packed.pickled, buffers=[bytearray(part) for part in parts] if copy else parts)


def shared_memory_free() -> int | None:
    """Bytes free in ``/dev/shm``, where Linux keeps shared memory (None elsewhere)."""
    try:
        stat = os.statvfs(SHM_DIR)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def fitting(slots: int, slot_bytes: int, free: int | None) -> int:
    """How many of ``slots`` an arena makes: those that half of ``free`` bytes hold, the other
    half left to the rest of the system (all where it is not known)."""
    return slots if free is None else min(slots, free // 2 // slot_bytes)


class Arena:
    """A job's block of shared memory, ``slots`` slots of ``slot_bytes``, in the calling process:
    ``take`` a slot for a call, ``give_back`` once its result has been read out (``workers.Trip``)."""

    def __init__(self, slots: int, slot_bytes: int):
        from multiprocessing import shared_memory

        self.slot_bytes = _aligned(slot_bytes)
        size = slots * self.slot_bytes
        self.memory = shared_memory.SharedMemory(create=True, size=size)
        try:
            if hasattr(os, "posix_fallocate"):  # room for every page now: a full /dev/shm is an
                os.posix_fallocate(self.memory._fd, 0, size)  # OSError here, not a SIGBUS mid-job
        except BaseException:
            self.close()
            raise
        self.ref = ArenaRef(self.memory.name, self.slot_bytes)
        self.free = list(range(slots - 1, -1, -1))
        self.generation = 0  # of the worker pool its slots are lent to (``released`` moves it on)
        self.lost: list[int] = []  # the slots of tasks whose pool broke, while its processes may live

    @classmethod
    def make(cls, slots: int, slot_bytes: int) -> Arena | None:
        """An arena of ``slots`` slots, or of as many as half the system's free shared memory
        holds (a container's ``/dev/shm`` is 64 MB unless it is given more: a task that finds no
        slot free crosses pickled); None where there is none (every call crosses pickled)."""
        slots = fitting(slots, _aligned(slot_bytes), shared_memory_free())
        try:
            if slots < 1:
                raise OSError("not enough free shared memory (/dev/shm) for one photo's slot")
            return cls(slots, slot_bytes)
        except (OSError, ImportError) as exc:
            log.debug("no shared memory for the workers' arrays: %s", exc)
            return None

    def take(self) -> int | None:
        return self.free.pop() if self.free else None

    def give_back(self, slot: int) -> None:
        self.free.append(slot)

    def lose(self, slots: Sequence[int], generation: int) -> None:
        """``slots`` of a task whose pool (of ``generation``) broke: a process of it may still write
        there, so they are given back only once that pool is shut down (``released``)."""
        if generation < self.generation:
            self.free.extend(slots)
        else:
            self.lost.extend(slots)

    def released(self) -> None:
        """The pool the slots were lent to is shut down, its processes gone (``Workers.renew``):
        the slots its broken tasks held are free again, and the next pool's generation begins.
        (Without it a job lost its arena to its first dead worker: every slot then in flight.)"""
        self.free.extend(self.lost)
        self.lost, self.generation = [], self.generation + 1

    def pack(self, value: Any, slots: Sequence[int]) -> Packed | None:
        return pack(self.memory.buf, self.slot_bytes, value, slots)

    def unpack(self, packed: Packed) -> Any:
        return unpack(self.memory.buf, packed, copy=True)

    def close(self) -> None:
        """Unmapped and unlinked (a worker still holding it keeps its own mapping until it exits)."""
        try:
            self.memory.close()
        except BufferError:  # an array still views it: unmapped when that goes
            pass
        self.memory.unlink()


_opened: dict[str, Any] = {}  # in a worker process: the arenas it has mapped, by name


def opened(ref: ArenaRef) -> memoryview:
    """In a worker process: the buffer of the job's arena (mapped at its first call)."""
    memory = _opened.get(ref.name)
    if memory is None:
        from multiprocessing import shared_memory

        # (Registered with the resource tracker the calling process shares with its workers,
        # under the name the calling process registered: it stays that process's to unlink.)
        _opened.clear()  # an earlier job's: unlinked by now
        memory = _opened[ref.name] = shared_memory.SharedMemory(name=ref.name)
    return memory.buf
