"""Ctrl-C and SIGTERM in the command line, from its first import on (standard library only, so
that it is in place before anything heavy is imported).

Python "ignores" a ``KeyboardInterrupt`` raised while a finalizer (``__del__``) or a weakref
callback runs (the progress bar's ``__del__`` as a job ends; the import system's module-lock
callback while the command line's modules load): it prints ``Exception ignored in ...`` with a
traceback and goes on, so the job ran to its end. ``redeliver_interrupts_from_finalizers``
sends such an interrupt again a moment later, where it stops the command as any Ctrl-C does.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so that the same cleanup runs (exit code 143)."""


def redeliver_interrupts_from_finalizers() -> None:
    """Install the hook (once) that sends an interrupt Python ignored in a finalizer again."""
    previous = sys.unraisablehook
    if getattr(previous, "redelivers", False):
        return

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous(unraisable)
            return
        sent = signal.SIGTERM if isinstance(unraisable.exc_value, Terminated) else signal.SIGINT
        threading.Timer(0.01, os.kill, (os.getpid(), sent)).start()

    hook.redelivers = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook
