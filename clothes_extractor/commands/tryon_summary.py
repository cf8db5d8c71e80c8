"""What a ``tryon`` run tells its terminal: each failed pair (an input that failed many of them
said once, with how many), and the job's summary line; and what its ``--sheet`` shows of a pair."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..errors import ClothesExtractorError, InputError, renamed
from .common import MAX_FAILURES_SHOWN


def error_line(result: Any) -> str:
    """A failed pair and its reason, the pair named once (the reason may name one of them)."""
    pair = f"{result.person} + {result.garment}" if result.garment else result.person
    return f"{pair}: {renamed(result.error, {result.person: '', **({result.garment: ''} if result.garment else {})})}"


def sheet_row(result: Any) -> tuple[Any, ...]:
    """A dressed pair's ``--sheet`` row, person | garment | dressed: their files, but the garment
    read now where it is the catalog image stage one made of a garment photo (``--garment-from``:
    a temporary file, gone by the job's end; the photo where it cannot be read)."""
    from ..runtime.images import load_photo

    garment: Any = Path(result.garment)
    if result.catalog is not None:
        try:
            garment = load_photo(Path(result.catalog), role="garment image")[0]
        except ClothesExtractorError:
            pass
    return Path(result.person), garment, Path(result.output)


class Failures:
    """The failed pairs a folder job's terminal shows, ``MAX_FAILURES_SHOWN`` lines at most (the
    report lists them all): an input that failed several pairs (its result's ``error_of``: a
    garment that dresses no one, for a folder of persons; an unreadable person, for a folder of
    garments) once, with how many, where it would fill the screen with one reason a pair; the
    other failures a line each."""

    def __init__(self) -> None:
        self.first: Any = None  # (one pair to one file: its error)
        self.inputs: dict[str, list] = {}  # the input an error is about -> [its first result, how many pairs failed]
        self.pairs: list[Any] = []
        self.hidden = 0

    def add(self, result: Any) -> None:
        self.first = self.first or result
        room = len(self.inputs) + len(self.pairs) < MAX_FAILURES_SHOWN
        about = getattr(result, result.error_of) if result.error_of else None
        if about is not None and (about in self.inputs or room):
            self.inputs.setdefault(about, [result, 0])[1] += 1
        elif room:
            self.pairs.append(result)
        else:
            self.hidden += 1

    def lines(self) -> list[str]:
        inputs = [
            f"{about} ({count} pairs not dressed): {renamed(result.error, {about: ''})}"
            if count > 1
            else error_line(result)  # (an input of one pair: the pair, as any other failure)
            for about, (result, count) in self.inputs.items()
        ]
        return inputs + [error_line(result) for result in self.pairs]


def say_watched(result: Any, failing: Any, progress: Any) -> int:
    """A watched pair's error, as it comes (once), and the end of one: its photo written again and
    the pair done. How many more pairs fail now: 1, 0, or -1 (``failing``: ``stages.FailingPhotos``)."""
    change = failing.change((result.person, result.garment), result.status == "error")
    if change > 0:
        again = "--watch tries it again once its photo is written again or its permissions change"
        progress.say(f"error: {error_line(result)} ({again})")
    elif change < 0:
        done = "dressed" if result.status == "ok" else "done already (skipped)"
        progress.say(f"{result.person} + {result.garment}: {done} now, changed since its error")
    return change


def summarise(
    summary: Any,
    failed: Failures,
    single: bool,
    output: Path,
    report: Any,
    total: int = 0,
    watched: bool = False,
    refused: str | None = None,
) -> None:
    """The end of a job: its errors (``watched``: ``--watch``'s, said as they came), the line of what
    it did, and exit code 1 where a pair failed, the job stopped, or the report or the sheet
    (``refused``: why none was written) could not be written."""
    if single:
        if failed.first is not None:
            raise InputError(error_line(failed.first))
        if str(output) != "-":
            click.echo(f"{'skipped (already done)' if summary.skipped else 'wrote'} {output}", err=True)
        if refused:
            click.echo(f"error: {refused}", err=True)
            sys.exit(1)
        return
    for line in failed.lines():
        click.echo(f"error: {line}", err=True)
    if failed.hidden:
        listed = f", all in {report.named}" if report.path and not report.failed else "; --report FILE lists them all"
        click.echo(f"... and {failed.hidden} more errors{listed}", err=True)
    rate = summary.ok / summary.seconds if summary.seconds > 0 else 0.0
    untried = total - summary.ok - summary.skipped - summary.failed if summary.stopped or watched else 0
    ended = "stopped after" if summary.stopped else "watched for" if watched else "done in"
    click.echo(
        f"{ended} {summary.seconds:.1f} s: {summary.ok} dressed"
        + ("" if watched else f" ({rate:.1f} pairs/s)")
        + f", {summary.skipped} skipped (already done), {summary.failed} failed"
        + (f"; failed at first, done once written again: {summary.recovered}" if summary.recovered else "")
        + (f", {untried} not tried" if untried > 0 else "")
        + (" (the pairs there at the start: run it again for them)" if untried > 0 and watched else ""),
        err=True,
    )
    if summary.stopped:
        click.echo(
            f"error: the job stopped: {summary.stopped}. Free some space there and run the same command again: it "
            "resumes, skipping the finished pairs (every file written is complete)",
            err=True,
        )
    for problem in (report.failed, refused):
        if problem:
            click.echo(f"error: {problem}", err=True)
    if summary.failed or report.failed or refused or summary.stopped:
        sys.exit(1)
