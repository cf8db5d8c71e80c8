"""``extract --watch`` and ``tryon --watch``: the command line's side of a folder job that goes on
(``runtime.watch``): what it cannot be combined with, and how Ctrl-C (or SIGTERM: ``docker stop``,
``systemctl stop``) ends it. The first stops the watch: the photos (pairs) in flight are finished,
the summary, the report and the sheet are written, and the exit code says whether every photo
succeeded (0) or not (1), as a folder job's does. A second stops it at once, as Ctrl-C stops any
job (130; 143)."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import click

from ..interrupts import Terminated


def check_watch(inputs: tuple[str, ...], output: str, options: dict[str, Any]) -> None:
    """``UsageError`` where ``--watch`` is given with what has no folder to watch, or no end to wait for."""
    if options["urls_from"] is not None or options["files_from"] is not None:
        listing = "--urls-from" if options["urls_from"] is not None else "--files-from"
        raise click.UsageError(f"--watch watches folders for new photos: {listing}'s list is taken once, leave one out")
    if options["ray"] or options["ray_address"]:
        raise click.UsageError("--watch watches folders on this machine: leave out --ray")
    if options["dry_run"]:
        raise click.UsageError("--dry-run says what one run would do: leave out --watch")
    if output == "-":
        raise click.UsageError("-o - (standard output) takes one photo: --watch writes to a folder, -o garments")
    for item in inputs:
        if item == "-" or "://" in item:
            raise click.UsageError(f"--watch watches folders: {item} is not one (give the folder its photos come into)")
        if not os.path.isdir(item):
            raise click.BadParameter(
                f"{item} is {'a file' if os.path.exists(item) else 'not found'}: --watch watches folders "
                "(give the folder its photos come into; create it first if they have not come yet)",
                param_hint="INPUTS",
            )


def check_tryon_watch(options: dict[str, Any], single: bool) -> None:
    """``UsageError`` where ``tryon --watch`` has no folder to watch (``--person``'s or the garment's:
    each photo that comes there is paired with the other side's image), or no end to wait for."""
    if options["dry_run"]:
        raise click.UsageError("--dry-run says what one run would do: leave out --watch")
    if options["pairs"] is not None:
        raise click.UsageError(
            "--watch watches a folder for the photos that come: --pairs's list is taken once, leave one out"
        )
    if single:
        where = "-o - (standard output) takes one pair" if options["to_stdout"] else "-o names one image"
        raise click.UsageError(f"{where}: --watch writes to a folder, -o dressed")
    sides = {f"--{name.replace('_', '-')}": options[name] for name in ("person", "garment", "garment_from")}
    if not any(isinstance(item, os.PathLike) and os.path.isdir(item) for item in sides.values()):
        given = ", ".join(f"{name} {item}" for name, item in sides.items() if item is not None)
        raise click.UsageError(
            f"--watch watches a folder for the photos that come, and none of {given} is one: give --person FOLDER "
            "(or the garment's) that they come into, created first if they have not come yet"
        )


@contextmanager
def stopped_by_signals(stop: threading.Event, unit: str = "photo") -> Iterator[None]:
    """Inside, the first SIGINT or SIGTERM sets ``stop`` (the watch ends, the photos, or ``unit``s, in
    flight are finished); a second one is Ctrl-C's (or SIGTERM's) as before. Main thread only
    (handlers: ``runtime.signals.handled_signals``)."""
    from ..runtime.signals import handled_signals

    with handled_signals(lambda _previous: _FirstStops(stop, unit)):
        yield


class _FirstStops:
    """``stopped_by_signals``' handler: the first signal stops the watch, the next interrupts."""

    def __init__(self, stop: threading.Event, unit: str):
        self.stop, self.unit = stop, unit

    def note(self, signum: int, _frame: Any) -> None:
        if self.stop.is_set():
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        self.stop.set()
        click.echo(
            f"\nstopping the watch: the {self.unit}s in flight are finished first (Ctrl-C again: stop now)", err=True
        )
