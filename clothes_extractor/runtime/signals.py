"""Ctrl-C and SIGTERM at safe points of a loop that waits on futures.

Python raises ``KeyboardInterrupt`` (or whatever a signal handler raises) at almost any
bytecode of the main thread, also inside ``concurrent.futures.wait`` while it holds the
futures' locks: a lock left held there makes the next ``cancel()`` or ``result()`` on that
future, and the worker that finishes it, wait forever (seen as a rare hang of the
interrupt tests). Inside ``deferred_signals`` the signals are only noted; ``check()``, called
where no lock is held, runs the handler that was installed before (raising there).
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import AbstractContextManager, contextmanager
from typing import Callable, Iterator, TypeVar

SIGNALS = (signal.SIGINT, signal.SIGTERM)
T = TypeVar("T")


class Pending:
    """The signals noted so far; ``check`` delivers the first to its original handler."""

    def __init__(self, previous: dict[int, object]):
        self.previous = previous
        self.noted: list[int] = []

    def note(self, signum: int, _frame: object) -> None:
        self.noted.append(signum)

    def check(self) -> None:
        if not self.noted:
            return
        signum = self.noted[0]
        self.noted.clear()
        handler = self.previous.get(signum)
        if callable(handler):
            handler(signum, None)  # default_int_handler raises KeyboardInterrupt here
        elif handler == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)  # what would have happened: the default action
            os.kill(os.getpid(), signum)


def restore(previous: dict[int, object]) -> None:
    """Put back the handlers ``previous`` maps each signal to."""
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def handled_signals(factory: Callable[[dict[int, object]], T]) -> Iterator[T]:
    """SIGINT and SIGTERM go to ``factory(previous).note`` while inside (``previous``: the
    handlers from before, put back on leaving); outside the main thread, where handlers
    cannot be set, nothing changes (``factory({})``, never called)."""
    if threading.current_thread() is not threading.main_thread():
        yield factory({})
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    handler = factory(previous)
    for signum in SIGNALS:
        signal.signal(signum, handler.note)
    try:
        yield handler
    finally:
        restore(previous)


def deferred_signals() -> AbstractContextManager[Pending]:
    """SIGINT and SIGTERM noted instead of raised until ``check()``."""
    return handled_signals(Pending)
