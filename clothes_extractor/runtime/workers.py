"""The folder job's workers, and what crosses to them.

Threads share the photo with the calling process; a worker process gets what it needs
pickled, and what it returns is unpickled by the calling process's threads, which share its
GIL with the batching (``pipeline``): so a photo crosses without its decoded pixels wherever
the other side can decode the file again.
"""

from __future__ import annotations

import os
import pickle
from collections import Counter, deque
from concurrent.futures import BrokenExecutor, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Callable, Sequence

from ..errors import WorkerDied, WorkersKeepDying
from .arena import Arena, ArenaRef, Packed, opened, pack, unpack
from .options import ExtractOptions
from .processes import process_context, worker_started
from .stages import NeedsMask


def make_pool(options: ExtractOptions) -> Executor:
    """The workers: threads, or processes started by a fork server (forking a process that
    runs onnxruntime's threads is not safe), each of which ends itself when the calling process
    is gone and leaves Ctrl-C to it (``worker_started``)."""
    if not options.use_processes:
        return ThreadPoolExecutor(options.workers, thread_name_prefix="ce-worker")
    return ProcessPoolExecutor(
        options.workers, mp_context=process_context(), initializer=worker_started, initargs=(os.getpid(),)
    )


def slot_bytes(*sessions: Any) -> int:
    """Room for a photo's arrays at the models' size (``Workers``' arena), both ways, at 1 byte a
    pixel and plane: the most a call carries (its first look's: the letterbox, the mask and the
    labels, 5) and then returns (a closer look's crop and its mask, 5, or the model inputs, 4),
    with room to spare, and the rest of a call. (At catalog resolution, a photo's own pixels do
    not fit: they cross pickled.)"""
    pixels = max(s.contract.height * s.contract.width for s in sessions if s is not None)
    return 12 * pixels + (64 << 10)


def read_lightly(read: Callable[..., Any], *args: Any) -> Any:
    """``read(*args)`` in a worker process, with a photo left for the segmenter returned light
    (``NeedsMask.light``): the worker that makes a closer look's crop, or ``finish``, decodes
    it again, instead of the calling process unpickling every decoded photo (2.4 MB at
    1024x768) on its way to the GPU."""
    item = read(*args)
    if isinstance(item, tuple) and isinstance(item[0], NeedsMask):  # (item, route): gpudecode.read_for_gpu's
        return (item[0].light(), *item[1:])
    return item.light() if isinstance(item, NeedsMask) else item


def call(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``: for ``run_each``, calls that name their own function."""
    return function(*args)


class Raised:
    """A call's exception, returned in its place among the others of its task (``run_each``)."""

    def __init__(self, error: Exception):
        self.error = error


def run_each(
    function: Callable[..., Any],
    calls: Sequence[tuple] | Packed,
    portable: bool,
    arena: ArenaRef | None = None,
    slots: Sequence[int] = (),
) -> list[Any] | Packed:
    """In a worker: ``function(*call)`` for each of ``calls``, each one's result or its exception
    (``Raised``), so that one call's error is its own. ``portable``: an exception that cannot be
    pickled back from a worker process is sent as its description instead (else the task's whole
    result would fail to cross, the other calls' with it). ``arena``: the calls' arrays may lie
    in its ``slots`` (``calls`` is then ``Packed``), and the results' go there too, after them."""
    view = opened(arena) if arena is not None else None
    packed = calls if isinstance(calls, Packed) else None
    if packed is not None:
        calls = unpack(view, packed, copy=False)  # read where they lie: the slots are held till we return
    results: list[Any] = []
    for args in calls:
        try:
            results.append(function(*args))
        except Exception as exc:  # noqa: BLE001 - that call's, handed to its ``Share``
            if portable:
                try:
                    pickle.dumps(exc)
                except Exception:  # noqa: BLE001 - any failure to pickle
                    exc = RuntimeError(f"{type(exc).__name__}: {exc}")
            results.append(Raised(exc))
    if view is None or not slots:
        return results
    try:
        return pack(view, arena.slot_bytes, results, slots, packed.ends if packed else ()) or results
    except Exception:  # noqa: BLE001 - results that cannot be pickled fail as they did through the pipe
        return results


class Trip:
    """One task on the workers: several calls in one trip (``submit_each``), their results read
    once, for all of them. The job's ``Arena`` slots it holds are given back then (its arrays
    copied out), or when it failed whole (cancelled, or its calls could not be pickled); if its
    pool broke, once that pool is shut down (``Arena.lose``): till then a worker of it may still
    be writing there."""

    __slots__ = ("task", "arena", "slots", "results", "counts", "packed", "generation")

    def __init__(
        self,
        task: Future,
        arena: Arena | None,
        slots: Sequence[int],
        counts: Counter | None = None,
        packed: bool = False,
    ):
        self.task, self.arena, self.slots, self.results = task, arena, slots, None
        self.counts, self.packed = counts, packed  # (a worker process's: how its arrays crossed, counted)
        self.generation = arena.generation if arena is not None else 0  # of the pool it went to

    def read(self) -> list[Any]:
        if self.results is None:
            try:
                results = self.task.result()
            except BrokenExecutor as exc:  # its pool broke (``Workers.renew``)
                self.lose()
                raise WorkerDied() from exc
            except Exception:
                self._give_back()
                raise
            if self.counts is not None:  # both ways in shared memory, or some of it pickled
                self.counts["shared memory" if self.packed and isinstance(results, Packed) else "pickled"] += 1
            if isinstance(results, Packed):
                results = self.arena.unpack(results)
            self._give_back()
            self.results = results
        return self.results

    def _give_back(self) -> None:
        for slot in self.slots:
            self.arena.give_back(slot)
        self.slots = ()  # once

    def lose(self) -> None:
        """Its pool broke, or it was dropped: its slots free once that pool is shut down (``Arena.lose``)."""
        if self.slots:
            self.arena.lose(self.slots, self.generation)
        self.slots = ()


class Share:
    """One call's part of a ``Trip``, with a future's ``done``, ``result``, ``exception`` and
    ``cancel`` for that call; ``task`` is the future to wait on."""

    __slots__ = ("trip", "index")

    def __init__(self, trip: Trip, index: int):
        self.trip, self.index = trip, index

    @property
    def task(self) -> Future:
        return self.trip.task

    def done(self) -> bool:
        return self.trip.task.done()

    def cancel(self) -> bool:
        return self.trip.task.cancel()

    def result(self) -> Any:
        outcome = self.trip.read()[self.index]
        if isinstance(outcome, Raised):
            raise outcome.error
        return outcome

    def exception(self) -> BaseException | None:
        try:
            self.result()
        except Exception as exc:  # noqa: BLE001 - returned, as Future.exception does
            return exc
        return None


def submit_each(
    pool: Executor,
    function: Callable[..., Any],
    calls: Sequence[tuple],
    tasks: int,
    arena: Arena | None = None,
    counts: Counter | None = None,
) -> list[Share]:
    """``function(*call)`` for each of ``calls`` in at most ``tasks`` tasks of a process pool (one
    per worker: each task is a trip to a worker process and back, which costs the calling
    process's threads as much as a photo's own crossing does), in a task each on a thread pool
    (its trips cost next to nothing, and a task per call keeps its threads evenly busy); each
    call's ``Share`` in the order of ``calls``. ``arena``: a process pool's task takes a slot of
    it for each call, where the calls' arrays and their results' cross where they fit; ``counts``:
    its tasks, by how their arrays crossed (``Trip.read``)."""
    portable = isinstance(pool, ProcessPoolExecutor)
    arena = arena if portable else None
    size = max(1, -(-len(calls) // max(1, tasks))) if portable else 1
    shares: list[Share] = []
    for start in range(0, len(calls), size):
        chunk = list(calls[start : start + size])
        slots = [slot for slot in (arena.take() for _ in chunk) if slot is not None] if arena is not None else []
        sent = _packed(arena, chunk, slots) or chunk
        try:
            task = pool.submit(run_each, function, sent, portable, arena.ref if slots else None, slots)
        except BaseException:
            for slot in slots:
                arena.give_back(slot)
            # the tasks sent already are dropped with the rest (a pool found broken: ``Workers.send``
            # sends them all again to new processes), theirs kept till that pool is shut down
            for trip in {id(share.trip): share.trip for share in shares}.values():
                trip.lose()
            raise
        trip = Trip(task, arena, slots, counts if portable else None, packed=sent is not chunk)
        shares += [Share(trip, i) for i in range(len(chunk))]
    return shares


def _packed(arena: Arena | None, calls: list[tuple], slots: list[int]) -> Packed | None:
    """``calls`` packed into ``slots``, or None: no slots, no room, or calls that cannot be pickled
    (which then fail their task as they did through the pipe, not the caller)."""
    if not slots:
        return None
    try:
        return arena.pack(calls, slots)
    except Exception:  # noqa: BLE001 - any failure to pickle
        return None


def submit_spread(
    pools: Sequence[Executor],
    function: Callable[..., Any],
    calls: Sequence[tuple],
    tasks: int,
    arena: Arena | None = None,
    counts: Counter | None = None,
) -> list:
    """``submit_each`` for calls that go to different pools (``pools[i]``: call i's), each call's
    ``Share`` in the order of ``calls``."""
    shares: list[Share | None] = [None] * len(calls)
    for pool in {id(pool): pool for pool in pools}.values():
        mine = [i for i, other in enumerate(pools) if other is pool]
        for i, share in zip(
            mine, submit_each(pool, function, [calls[i] for i in mine], tasks, arena, counts), strict=True
        ):
            shares[i] = share
    return shares


class Workers:
    """The folder job's worker pool (``make_pool``), sent work with ``send``. A process pool breaks
    when one of its processes dies (killed by the system, out of memory, or crashed on a file):
    every photo in it then fails (``WorkerDied``, from its ``Share``; ``Retries``) and new processes
    take the next work, up to ``MAX_RESTARTS`` times in a row with no photo written in between
    (``worked``); a death after that says something is wrong with every photo or with the machine:
    the job stops (``WorkersKeepDying``)."""

    MAX_RESTARTS = 3

    def __init__(self, options: ExtractOptions, slot_bytes: int = 0, slots: int = 0):
        """``slot_bytes``: the arrays of a call and its result, at most, that cross to and from a
        worker process in shared memory (``arena``), in one of ``slots`` (a photo in flight's)."""
        self.options, self.pool = options, make_pool(options)
        self.restarts = self.in_a_row = 0
        self.crossed: Counter = Counter()  # tasks to worker processes, by how their arrays crossed
        self.arena = Arena.make(slots, slot_bytes) if options.use_processes and slot_bytes and slots else None

    def send(
        self, function: Callable[..., Any], calls: Sequence[tuple], pools: Sequence[Executor | None] | None, tasks: int
    ) -> list:
        """``submit_spread`` of ``calls`` to ``pools`` (None, or a None in it: this pool), with new
        processes if it broke."""
        while True:
            try:
                chosen = [pool or self.pool for pool in pools] if pools is not None else [self.pool] * len(calls)
                return submit_spread(chosen, function, calls, tasks, self.arena, self.crossed)
            except BrokenExecutor:
                self.renew()  # (or the job stops)

    def renew(self) -> None:
        self.restarts, self.in_a_row = self.restarts + 1, self.in_a_row + 1
        if self.in_a_row > self.MAX_RESTARTS:
            raise WorkersKeepDying(self.in_a_row)
        broken, self.pool = self.pool, make_pool(self.options)
        broken.shutdown(wait=True, cancel_futures=True)  # (its processes ended already, or end now)
        if self.arena is not None:  # nothing of it writes in the arena any more
            self.arena.released()

    def worked(self) -> None:
        """A photo's write came back: the deaths before it were not one after another."""
        self.in_a_row = 0

    @property
    def broke(self) -> bool:
        """Whether a worker process died in this job: its pool was renewed, or is broken now (a
        process pool's own flag: no later submission found it)."""
        return bool(self.restarts or getattr(self.pool, "_broken", False))

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.arena is not None:
            self.arena.close()


class Retries:
    """The photos that were in a process pool when one of its workers died, each to be tried once
    more, alone (``pipeline.Extraction.retry_alone``): most were only beside the photo or the
    memory peak that killed it. One that dies again, with no other photo in flight, fails
    (``WorkerDied(alone=True)``)."""

    def __init__(self) -> None:
        self.waiting: deque[Any] = deque()
        self.tried: dict[int, Any] = {}  # the jobs tried again, by id (held: an id is not reused while they are)

    def __bool__(self) -> bool:
        return bool(self.waiting)

    def failed(self, job: Any, error: BaseException) -> BaseException | None:
        """``job``'s ``error`` as it is to be reported; None: it waits to be tried again."""
        if not isinstance(error, WorkerDied):
            return error
        if id(job) in self.tried:
            return WorkerDied(alone=True)
        self.waiting.append(job)
        return None

    @property
    def count(self) -> int:
        """Jobs tried again (``ExtractionSummary.retried``)."""
        return len(self.tried)

    def next(self) -> Any:
        job = self.waiting.popleft()
        self.tried[id(job)] = job
        return job

    def abandoned(self) -> list[Any]:
        """The jobs still waiting (the run was stopped), taken from the queue."""
        jobs, self.waiting = list(self.waiting), deque()
        return jobs
