"""The JSON Lines report of folder jobs (``--report``), their ``--dry-run`` summary, and the
checks that a report or a sheet (``--sheet``) cannot replace a photo or someone's file."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

import click

from ..errors import OutputError
from .common import MAX_FAILURES_SHOWN, STDOUT


def check_side_files(
    inputs: Iterable[Any],
    out_dir: Path | None = None,
    report: Path | None = None,
    *,
    stdout_taken: bool = False,
    **sheets: Path | None,
) -> None:
    """Refuse, before any work, a ``--report`` or a sheet (``sheets``: option name -> path, as
    ``sheet=...``) that would replace one of the run's photos (named, or in an input folder
    outside ``out_dir``), a report that would replace a file that is not a report, and
    ``--report -`` where the output is on standard output already (``stdout_taken``: ``-o -``)."""
    from ..runtime.files import same_file
    from ..runtime.images import IMAGE_SUFFIXES

    if report == STDOUT:
        if stdout_taken:
            raise click.UsageError(
                "--report - and -o - would both write to standard output: write the report to a file "
                "(--report report.jsonl)"
            )
        report = None  # (nothing on disk to check)
    sides = {f"--{name.replace('_', '-')}": path for name, path in sheets.items() if path is not None}
    if report is not None:
        sides["--report"] = report
    local = [Path(item) for item in inputs if isinstance(item, Path) or (str(item) != "-" and "://" not in str(item))]
    for option, path in sides.items():
        place = path.resolve().parent
        for item in local:
            if same_file(path, item):
                raise click.UsageError(f"{option} {path} is one of the photos: it would be replaced; choose another")
            inside = item.is_dir() and (place == item.resolve() or item.resolve() in place.parents)
            if inside and path.suffix.lower() in IMAGE_SUFFIXES and not _under(place, out_dir):
                raise click.UsageError(
                    f"{option} {path} is in the input folder {item}: it could replace a photo, and the next run "
                    "would take it for one; write it elsewhere (the -o folder is fine)"
                )
    if report is not None and report.suffix.lower() in IMAGE_SUFFIXES:
        raise click.UsageError(f"--report {report} names an image; the report is JSON Lines: name it e.g. report.jsonl")
    if report is not None and not _is_report(report):
        raise click.UsageError(f"--report {report} exists and is not a JSON Lines report: it is kept; choose another")


def _under(place: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    root = folder.resolve()
    return place == root or root in place.parents


def _is_report(path: Path) -> bool:
    """Whether ``path`` is missing, empty, not a regular file (``/dev/stdout``, a pipe) or a JSON
    Lines report (its first line an object)."""
    try:
        if not path.is_file():
            return True
        with open(path, "rb") as handle:
            head = handle.read(4096).lstrip()
    except OSError:
        return True  # unreadable: opening it for writing says what is wrong
    return not head or head.startswith(b"{")


SHEET_ROWS = 8  # the first results a --sheet shows
SHEET_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def write_sheet(
    sheet: Path | None, finished: list[Any], draw: Callable[[list[Any]], Any], output: str = "garment"
) -> str | None:
    """The contact sheet ``draw`` makes of ``finished`` results, unless its name is an ``output``
    this tool wrote: why not, then."""
    if sheet is None or not finished:
        return None
    from ..runtime.signature import carries_mark

    if carries_mark(sheet):  # an output of this run (or an earlier one) has that name
        return f"--sheet {sheet} is a {output} this tool wrote: it is kept, and no sheet was written"
    save_image(sheet, draw(finished))
    click.echo(f"contact sheet: {sheet}", err=True)
    return None


def save_image(path: Path, image: Any) -> None:
    """A PIL image (a contact sheet) written atomically, in the format its suffix names."""
    from ..runtime.files import write_atomic

    fmt = path.suffix.lstrip(".").upper().replace("JPG", "JPEG")
    write_atomic(path, lambda handle: image.save(handle, format=fmt))


class Report:
    """The JSON Lines report, to a file or (``--report -``) standard output. A failing write
    (a full disk, a closed pipe) stops the report, not the job: the problem is printed once
    and the exit code becomes 1."""

    def __init__(self, path: Path | None):
        self.path, self.handle, self.failed = path, None, None
        if path is None:
            return
        if path == STDOUT:
            self.handle = sys.stdout
            return
        from ..runtime.files import locked

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)  # (not emptied before it is locked)
        except OSError as exc:
            raise OutputError(f"cannot write the report file {path}: {exc.strerror or exc}") from None
        if not locked(descriptor):
            os.close(descriptor)
            raise OutputError(
                f"the report {path} is being written by another run right now (shards given one --report?): "
                "give each run its own report file"
            )
        if stat.S_ISREG(os.fstat(descriptor).st_mode):  # (not a device or a pipe: /dev/full, a FIFO)
            os.ftruncate(descriptor, 0)
        self.handle = os.fdopen(descriptor, "w", encoding="utf-8", buffering=1)

    def write(self, result: Any) -> None:
        """One file's result (anything with ``to_json()``), made into JSON only if there is a report."""
        if self.handle is None:
            return
        try:
            self.handle.write(json.dumps(result.to_json()) + "\n")
        except OSError as exc:
            self.failed = f"{self.named} could not be written on ({exc.strerror or exc}); it is incomplete"
            click.echo(f"warning: {self.failed}", err=True)
            self.close()

    @property
    def named(self) -> str:
        """Where it goes, as messages say it."""
        return "the report on standard output" if self.path == STDOUT else f"the report {self.path}"

    def close(self) -> None:
        if self.handle is not None:
            try:
                self.handle.flush() if self.path == STDOUT else self.handle.close()  # (sys.stdout may be another now)
            except OSError:
                pass
            self.handle = None


def report_dry_run(results: Iterable[Any], report: Report, unit: str, verb: str, error_line: Any) -> None:
    """``--dry-run``'s end: each result (``pending``, ``skipped`` or ``error``) to the report,
    the refusals and a count on standard error; exit 1 if any was refused. ``unit``: "photo"
    or "pair"; ``verb``: "extract" or "dress"; ``error_line``: a refusal as the command says it."""
    counts = {"pending": 0, "skipped": 0, "error": 0}
    try:
        for result in results:
            counts[result.status] += 1
            if result.status == "error" and counts["error"] <= MAX_FAILURES_SHOWN:
                click.echo(f"error: {error_line(result)}", err=True)
            report.write(result)
    finally:
        report.close()
    click.echo(
        f"dry run of {sum(counts.values())} {unit}(s): {counts['pending']} to {verb}, {counts['skipped']} already "
        f"done, {counts['error']} refused; no image was decoded, no output written",
        err=True,
    )
    if counts["error"] or report.failed:
        sys.exit(1)
