"""The read stage of try-on's folder job (``dress_jobs``): a batch's person photos and garments
read on threads, each one once, beside the model run of the batch before; nothing read for a
pair whose garment or person is known to be unusable. A file is known by its path, its size and
time and its status-change time as the pair's job recorded them (``DressJob.person_read``): one
written again under its name, or whose permissions were mended (a watch's), is read again."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, Sequence

from ..errors import InputError
from .dressing import Dresser, Garment, Person
from .images import load_garment, load_person, read_whole

# a file as a job reads it: its path, its size and time then (``records.file_stamp``), its status-change time
Read = tuple[Path, str, int]


class Pair(Protocol):
    """What a read takes of a job (``dress_jobs.DressJob``)."""

    person: Path
    garment: Path

    @property
    def person_read(self) -> Read: ...

    @property
    def garment_read(self) -> Read: ...


class Unusable:
    """The garments and persons a job found unusable (unreadable; a garment that dresses no one,
    ``Dresser.refusal``; a person with nothing to dress anew), each with why: the ``LIMIT`` last
    ones, so that a pairs listing that comes back to one later reads it no more."""

    LIMIT = 4096

    def __init__(self) -> None:
        self.why: dict[Read, str] = {}  # (the message: an exception would hold its traceback's frames)

    def note(self, read: Read, why: str) -> None:
        self.why.pop(read, None)
        self.why[read] = why
        if len(self.why) > self.LIMIT:
            del self.why[next(iter(self.why))]

    def read(self, read: Read) -> Future | None:
        """A read of that file that failed as it did, or None where it is not known unusable."""
        if read not in self.why:
            return None
        failed: Future = Future()
        failed.set_exception(InputError(self.why[read]))
        return failed


class BatchRead:
    """One batch's jobs, read on the readers' threads: each person photo decoded with its
    first look made and each garment decoded and fitted, once a batch (or taken from the batch
    before: one garment for a folder of persons, or one person for a folder of garments, is read
    once for the whole job). A pair whose garment or person is known to be unusable (its read
    failed in the batch before or earlier, ``unusable``; the garment dresses no one:
    ``Dresser.refusal``; the person has nothing to dress anew) reads nothing more: a bad garment
    for a million persons decodes two batches of them, not a million, and so does a bad person
    for a million garments."""

    def __init__(
        self,
        readers: ThreadPoolExecutor,
        dresser: Dresser,
        jobs: Sequence[Pair],
        before: BatchRead | None,
        unusable: Unusable,
    ):
        self.jobs = jobs
        self.garments: dict[Read, Future] = {}
        self.persons: dict[Read, Future] = {}
        # each job's: (garment, person), each read with its file's bytes (``read_whole``: the digest its
        # output's record holds is of them, ``DressJob.with_content``), or the one that failed
        self.reads: list[tuple[Future, ...]] = []
        for job in jobs:
            garment = self._known(self.garments, before and before.garments, job.garment_read, unusable)
            person = self._known(self.persons, before and before.persons, job.person_read, unusable)
            failed = next((read for read in (garment, person) if read is not None and _failed(read)), None)
            if failed is not None:  # (the other side is not read for it)
                self.reads.append((failed,))
                continue
            if garment is None:
                garment = self.garments[job.garment_read] = readers.submit(_read_garment, dresser, job.garment)
            if person is None:
                person = self.persons[job.person_read] = readers.submit(_read_person, dresser, job.person)
            self.reads.append((garment, person))

    def input_of(self, job: Pair, read: Future) -> str | None:
        """Which of ``job``'s inputs ``read`` reads: "garment" or "person"."""
        return "garment" if read is self.garments.get(job.garment_read) else "person"

    @staticmethod
    def _known(
        reads: dict[Read, Future], before: dict[Read, Future] | None, read: Read, unusable: Unusable
    ) -> Future | None:
        """The file's read made in this batch already, or known to fail, or made in the batch before
        (then kept for this one), or None."""
        if read not in reads:
            known = unusable.read(read) or (before.get(read) if before else None)
            if known is not None:
                reads[read] = known
        return reads.get(read)


def _failed(read: Future) -> bool:
    return read.done() and not read.cancelled() and read.exception() is not None


def _read_person(dresser: Dresser, path: Path) -> tuple[Person, bytes | None]:
    data = read_whole(path)  # (the file read once: its decode and its pairs' digest)
    return dresser.person(load_person(path, data)), data


def _read_garment(dresser: Dresser, path: Path) -> tuple[Garment, bytes | None]:
    data = read_whole(path)
    garment = dresser.garment(load_garment(path, data))
    refused = dresser.refusal(garment)  # (said once, not once a pair)
    if refused is not None:
        raise refused
    return garment, data
