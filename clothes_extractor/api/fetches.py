"""Several downloads at once for a job (``Fetches``): a ``Future`` for each URL, ``web.fetch``-ed on
a few daemon threads, and a server that stops answering waited for, as a circuit breaker does.

A server is silent once ``SILENT_AFTER`` fetches in a row from it have timed out (each tried
three times: ``web.fetch``). Its URLs are then set aside, one of them tried every
``PROBE_EVERY_S``, while the other servers' URLs are fetched; the first of its URLs that is
answered brings the others back (a CDN's outage of a few minutes costs the job those minutes and
the photos that timed out, not the rest of the feed). After ``OUTAGE_S`` its URLs are not tried,
each a failure that says so, for the rerun to fetch (a server that is down costs the job
minutes, not ``web.TIMEOUT_S`` x 3 for each of its URLs: hours for a shop's feed); one is still
tried every ``PROBE_EVERY_S``, and once one is answered the server's URLs are fetched again.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from ..errors import InputError
from . import web

log = logging.getLogger(__name__)

SILENT_AFTER = 3  # a server's fetches timed out in a row, after which its other URLs wait
PROBE_EVERY_S = 30.0  # while a server is silent, one of its URLs is tried this long after its last try ended
OUTAGE_S = 300.0  # how long a silent server's URLs wait for it to answer; after, they are not tried (but one)


@dataclasses.dataclass
class _Outage:
    """A server that does not answer: since when, when its next URL is tried, whether one is
    being tried, and its URLs set aside meanwhile (``Fetches``' work items)."""

    since: float  # (``time.monotonic``)
    next_try: float
    trying: bool = False
    waiting: collections.deque = dataclasses.field(default_factory=collections.deque)


class Fetches:
    """Downloads (``web.fetch``) on up to ``at_once`` daemon threads, each ``submit``-ted one a
    ``Future`` of its file: Ctrl-C is not held up by a download (the scratch folder, removed then,
    takes the partial file with it; a download that starts after fails to open its file). A
    thread ends once nothing is left to fetch or waits for a silent server (the module says how
    one is waited for); the next ``submit`` starts another. ``close``: the job stopped, what is
    left fails at once."""

    def __init__(self, at_once: int = web.URL_FETCHES) -> None:
        self._work: collections.deque = collections.deque()  # (url, folder, since, future, its server)
        self._changed = threading.Condition()  # (the lock of all below; told when any of it changes)
        self._threads, self.at_once, self._closed = 0, at_once, False
        self._silent: collections.Counter = collections.Counter()  # a server -> its fetches timed out in a row
        self._outages: dict[str, _Outage] = {}  # the servers that do not answer

    def submit(self, url: str, folder: Path, since: float | None = None) -> Future:
        """A ``Future`` of ``url`` fetched into ``folder`` (``web.fetch``): its file, None where it has
        not changed ``since``, or the ``InputError`` saying why not."""
        future: Future = Future()
        with self._changed:
            self._work.append((url, folder, since, future, web.server_of(url)))
            self._start_threads(1)
            self._changed.notify()  # (a thread waiting for a silent server takes it)
        return future

    def set_aside(self) -> int:
        """How many URLs wait for a silent server (a job counts them apart from its downloads)."""
        with self._changed:
            return sum(len(outage.waiting) for outage in self._outages.values())

    def close(self) -> None:
        """The job stopped: the URLs not yet fetching fail at once (those set aside for a silent
        server too); the downloads under way end on their own."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _start_threads(self, wanted: int) -> None:
        for _ in range(min(wanted, self.at_once - self._threads)):
            self._threads += 1
            threading.Thread(target=self._fetcher, name="fetch", daemon=True).start()

    def _fetcher(self) -> None:
        while True:
            with self._changed:
                item, trying, why_not = self._next()
                if item is None:
                    self._threads -= 1
                    return
            url, folder, since, future, server = item
            if not future.set_running_or_notify_cancel():  # (cancelled by its caller: not tried)
                self._ended(server, trying, silent=None)
                continue
            if why_not is not None:
                future.set_exception(InputError(f"cannot fetch {web.shown(url)}: not tried: {why_not}"))
                continue
            try:
                future.set_result(web.fetch(url, folder, since))
            except BaseException as exc:  # noqa: BLE001 - raised again where its input is resolved
                self._ended(server, trying, silent=isinstance(exc, web.NoAnswer))
                future.set_exception(exc)
            else:
                self._ended(server, trying, silent=False)

    def _next(self) -> tuple[tuple | None, bool, str | None]:
        """(Holding the lock.) The next URL to take, whether it is a silent server's one tried,
        and why it is not tried (None: it is); (None, ...) where nothing is left to take. A silent
        server's URLs are set aside; while they are all that is left, the thread waits for them."""
        while True:
            now = time.monotonic()
            for server, outage in self._outages.items():  # (a few at most)
                if outage.waiting and (self._closed or now >= outage.since + OUTAGE_S):
                    return outage.waiting.popleft(), False, self._why_not(server)
                if outage.waiting and not outage.trying and now >= outage.next_try:
                    outage.trying = True
                    return outage.waiting.popleft(), True, None
            if self._work:
                item = self._work.popleft()
                server = item[-1]
                outage = self._outages.get(server)
                if self._closed or outage is None:
                    return item, False, self._why_not(server) if self._closed else None
                if not outage.trying and now >= outage.next_try:
                    outage.trying = True
                    return item, True, None
                if now >= outage.since + OUTAGE_S:
                    return item, False, self._why_not(server)
                outage.waiting.append(item)
                continue
            ends = [
                outage.since + OUTAGE_S if outage.trying else min(outage.next_try, outage.since + OUTAGE_S)
                for outage in self._outages.values()
                if outage.waiting
            ]
            if not ends:
                return None, False, None
            self._changed.wait(max(0.0, min(ends) - now))

    def _why_not(self, server: str) -> str:
        """Why a URL of ``server`` is not tried (the job stopped, or the server is silent)."""
        if self._closed:
            return "the job stopped"
        tries = len(web.RETRY_WAITS_S) + 1
        return (
            f"{server} did not answer {self._silent[server]} fetches in a row (each timed out {tries} times), and was "
            f"waited for {_minutes(OUTAGE_S)}; run the same command again once it answers"
        )

    def _ended(self, server: str, trying: bool, silent: bool | None) -> None:
        """A fetch from ``server`` ended: timed out (``silent``), answered, or not made (None: its
        caller cancelled it); ``trying``: it was the one URL tried while the server did not answer."""
        with self._changed:
            outage, now = self._outages.get(server), time.monotonic()
            if silent is None:
                if trying and outage is not None:
                    outage.trying = False  # (another is tried in its place)
                self._changed.notify_all()
                return
            self._silent[server] = self._silent[server] + 1 if silent else 0
            if not silent and outage is not None:
                del self._outages[server]
                self._work.extendleft(reversed(outage.waiting))  # (first, in their order)
                self._start_threads(len(outage.waiting))
                waited = _minutes(now - outage.since)
                log.warning("%s answers again (waited for %s): its URLs are fetched", server, waited)
            elif silent and outage is None and self._silent[server] >= SILENT_AFTER:
                self._outages[server] = _Outage(now, now + PROBE_EVERY_S)
                tries, waits = len(web.RETRY_WAITS_S) + 1, f"one tried every {_minutes(PROBE_EVERY_S)}"
                log.warning(
                    "%s did not answer %d fetches in a row (each timed out %d times): its URLs wait for it, %s, for %s",
                    *(server, self._silent[server], tries, waits, _minutes(OUTAGE_S)),
                )
            elif silent and outage is not None and trying:
                outage.trying, outage.next_try = False, now + PROBE_EVERY_S
            self._changed.notify_all()


def _minutes(seconds: float) -> str:
    """``seconds`` as messages say them: ``30 s``, ``5 min``."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
