"""Ray's false alarm kept off the user's terminal (``stderr_without``), and its driver's prints
off standard output (``DriverPrints``).

Ray Data (2.5x to at least 2.60) hands every actor it starts object references of its own
(its data context, its map transformer) and starts them with ``max_restarts`` > 0, and Ray's
core worker then logs an error on the driver's stderr for each: "Actor with class name:
'MapWorker(MapBatches(ModelStage))' ... has constructor arguments in the object store and
max_restarts > 0. If the arguments in the object store go out of scope or are lost, the actor
restart will fail" (ray-project/ray#57733, open). Nothing of this job's causes it, nothing has
failed, and the driver holds those references for the whole job; but an error line on every run
reads as one. The core worker's C++ logger writes to file descriptor 2 directly, so the filter
sits there: a pipe, and a thread that passes everything on to where stderr went, in order, less
those lines. Start it after ``ray.init``: a process started inside it (a local Ray's own) would
inherit the pipe.

A Ray driver also prints the errors its cluster publishes (an actor killed, a task retried) from
a thread of its own to ``sys.stdout``, as it is when each comes, until Ray shuts down at the
process's end: in the report's JSON Lines where that is standard output (``--report -``). A
job stopped by Ctrl-C or SIGTERM got one or two such lines, Ray Data killing its own actors
("Task MapWorker(...).submit failed. There are infinite retries remaining, ... killed by
`ray.kill`"), 5 runs in 9 (Ray 2.60, 504 photos).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading
from typing import Any, Iterator

RAY_FALSE_ALARM = re.compile(
    rb"core_worker\.cc:\d+: Actor with class name: .* has constructor arguments in the object store"
)
HOLD_BYTES = 4096  # a part of a line held back (it may be Ray's) at most this long
# Ray Data killing its own actors as a stopped job ends: the tasks it had sent them are "retried"
RAY_TEARDOWN = re.compile(r"submit failed\. There are .* retries remaining.* killed by `ray\.kill`")


class DriverPrints(io.TextIOBase):
    """A ``sys.stdout`` for a command whose standard output is its own (``extract --ray --report
    -``) while Ray's driver threads print to it: what they print goes to ``target`` (standard
    error), a line at a time, less the lines of a stopped job's teardown (``RAY_TEARDOWN``)."""

    def __init__(self, target: io.TextIOBase | Any):
        self.target, self.pending = target, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if not RAY_TEARDOWN.search(line):
                self.target.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self.pending and not RAY_TEARDOWN.search(self.pending):
            self.target.write(self.pending)
        self.pending = ""
        self.target.flush()


@contextlib.contextmanager
def stderr_without(pattern: re.Pattern[bytes] = RAY_FALSE_ALARM, enabled: bool = True) -> Iterator[None]:
    """Within it, lines written to the process's stderr (file descriptor 2: Python's and native
    code's alike) that match ``pattern`` are left out; the rest reach stderr as they come."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    try:
        target = os.dup(2)
    except OSError:  # no stderr at all (a service started with it closed): nothing to filter
        yield
        return
    source, sink = os.pipe()
    os.dup2(sink, 2)
    os.close(sink)
    thread = threading.Thread(target=_forward, args=(source, target, pattern), name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(target, 2)  # the pipe's last writer gone: the thread passes on what is left, and ends
        thread.join(timeout=5)


def _forward(source: int, target: int, pattern: re.Pattern[bytes]) -> None:
    """Copy ``source`` to ``target`` less the lines ``pattern`` finds; a part of a line that
    cannot be one of Ray's log lines (which start with "[" and come whole) goes on at once: a
    progress bar redraws its line without ending it."""
    pending = b""
    try:
        while chunk := os.read(source, 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            out = b"".join(line + b"\n" for line in lines if not pattern.search(line))
            if pending and (not pending.startswith(b"[") or b"\r" in pending or len(pending) > HOLD_BYTES):
                out, pending = out + pending, b""
            _write_all(target, out)
        if pending and not pattern.search(pending):
            _write_all(target, pending)
    except OSError:  # (stderr itself gone: nothing left to tell)
        pass
    finally:
        os.close(source)
        os.close(target)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
