"""Helpers shared by the commands: error reporting, interrupts, shared options, progress,
the output folder check and the JSON Lines report of folder jobs."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import stat
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import click

from ..errors import ClothesExtractorError, OutputError

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
STDOUT = Path("-")  # what -o and --report take for standard output
MAX_FAILURES_SHOWN = 20  # failures said one by one, at most (the report lists them all)


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so that the same cleanup runs (exit code 143)."""


def _on_sigterm(_signum, _frame) -> None:
    raise Terminated()


def set_verbosity(verbose: int) -> None:
    logging.basicConfig(format=LOG_FORMAT)
    logging.getLogger().setLevel(logging.WARNING - 10 * min(verbose, 2))


def report_options(unit: str, verb: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--report FILE|-`` and ``--dry-run`` of a folder job over ``unit``s that it would ``verb``."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--dry-run",
            is_flag=True,
            help=f"Say what the run would do ({unit}s to {verb}, already done, refused) without decoding an "
            "image or writing anything; --report lists each (status pending, skipped or error).",
        )(command)
        return click.option(
            "--report",
            type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
            help=f"Write a JSON Lines report, one object per {unit} (- for standard output).",
        )(command)

    return decorate


def tryon_resolution_option(flag: str, dest: str, where: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The try-on's working resolution (``Dresser(resolution=)``) as ``flag``, for ``where``."""
    return click.option(
        flag,
        dest,
        type=click.Choice(["photo", "model"]),
        default="photo",
        show_default=True,
        help=f"{where} warps the garment onto the person at the person's own resolution (up to 1024x768; its "
        "prints and knit at that resolution), or at the model's 256x192, upsampled (faster on a CPU).",
    )


def once(fix: str) -> Callable[[click.Context, click.Parameter, tuple[Any, ...]], Any]:
    """The callback of a ``multiple`` option that takes one value (or None): a second, which
    click would drop in silence, is refused with ``fix`` (what to give instead)."""

    def check(_ctx: click.Context, _param: click.Parameter, values: tuple[Any, ...]) -> Any:
        if len(values) > 1:
            raise click.BadParameter(f"given {len(values)} times ({', '.join(map(str, values))}); give it once: {fix}")
        return values[0] if values else None

    return check


def shard_option(unit: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--shard K/N`` of a folder job over ``unit``s: the option's value is a ``Shard``."""

    def parse(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
        from ..runtime.shards import Shard

        try:
            return None if value is None else Shard.parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.option(
        "--shard",
        metavar="K/N",
        callback=parse,
        help=f"Take only the K-th of N shares of the {unit}s, to split one job across N machines or processes "
        "(a SLURM array, a Kubernetes indexed job): run all N with the same inputs and -o, each with its own "
        f"--report. A {unit}'s share follows from its output name.",
    )


def verbose_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``-v/--verbose`` after the subcommand too (``clothes-extractor extract -v ...``)."""

    def callback(_ctx: click.Context, _param: click.Parameter, value: int) -> int:
        if value:
            set_verbosity(value)
        return value

    return click.option(
        "-v", "--verbose", count=True, expose_value=False, is_eager=True, callback=callback, help="More log output."
    )(command)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Library errors -> one-line messages, exit 1; Ctrl-C -> 130, SIGTERM -> 143; anywhere, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
        try:
            return command(*args, **kwargs)
        except ClothesExtractorError as exc:
            raise click.ClickException(error_message(exc)) from None
        except KeyboardInterrupt as exc:
            ignore_further_interrupts()
            click.echo("interrupted" if not isinstance(exc, Terminated) else "terminated", err=True)
            sys.exit(EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


def error_message(exc: BaseException) -> str:
    """A library error's message, also of one raised in a DataLoader worker (its traceback written into it)."""
    text = str(exc)
    if text.startswith("Caught ") and "\nOriginal Traceback" in text:
        last = text.rstrip().splitlines()[-1]  # "clothes_extractor.errors.InputError: the message"
        text = last.split(": ", 1)[-1]
    return text


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def ignore_further_interrupts() -> None:
    """A second Ctrl-C while the first one's cleanup runs must not leave a traceback."""
    if _main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def redeliver_interrupts_from_finalizers() -> None:
    """A Ctrl-C (or SIGTERM) that lands while an object's ``__del__`` runs (the progress bar's,
    as a job ends) is "ignored" by Python: printed as a traceback and lost, and the job went on.
    Sent again here, a moment later, once the finalizer is over."""
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous(unraisable)
            return
        import threading

        sent = signal.SIGTERM if isinstance(unraisable.exc_value, Terminated) else signal.SIGINT
        threading.Timer(0.01, os.kill, (os.getpid(), sent)).start()

    sys.unraisablehook = hook


def given_options() -> list[click.Parameter]:
    """The current command's options that its command line gives (not defaults)."""
    ctx = click.get_current_context()
    source = click.core.ParameterSource.COMMANDLINE
    return [param for param in ctx.command.params if ctx.get_parameter_source(param.name) == source]


def note_unsearched(subfolders: list[Path]) -> None:
    """Say which subfolders of the input folders a job without ``-r`` does not look in."""
    if subfolders:
        more = f" and {len(subfolders) - 1} more" if len(subfolders) > 1 else ""
        click.echo(f"note: photos in subfolders are not taken without --recursive: {subfolders[0]}{more}", err=True)


def parse_size(value: str, option: str = "--size") -> tuple[int, int]:
    """``HEIGHTxWIDTH`` -> (height, width)."""
    try:
        height, width = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not HEIGHTxWIDTH (e.g. 256x192)", param_hint=option) from None
    if height < 1 or width < 1:
        raise click.BadParameter(f"{value!r}: both sides must be positive", param_hint=option)
    return height, width


def require_torch(purpose: str, extra: str = "train") -> None:
    """Fail with the pip command to run when PyTorch is not installed (without importing it)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise click.ClickException(f'{purpose} needs PyTorch: pip install "clothes-extractor[{extra}]"')


class Progress:
    """A progress bar on a terminal; without one (cron, Kubernetes logs), a line every ``every_s`` s."""

    def __init__(self, total: int, unit: str, what: str, every_s: float = 30.0):
        from tqdm import tqdm

        self.total, self.unit, self.what, self.every_s = total, unit, what, every_s
        self.bar = tqdm(total=total, unit=unit, disable=None, file=sys.stderr, dynamic_ncols=True)
        self.lines = self.bar.disable
        self.done = self.failed = 0
        self.started = self.last = time.monotonic()

    def update(self, count: int = 1, failed: bool = False) -> None:
        self.done += count
        self.failed += failed
        self.bar.update(count)
        now = time.monotonic()
        if self.lines and now - self.last >= self.every_s:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            left = (self.total - self.done) / rate if rate > 0 else 0
            click.echo(
                f"{self.what}: {self.done}/{self.total} {self.unit}s ({100 * self.done / max(self.total, 1):.0f}%), "
                f"{rate:.1f}/s, {self.failed} failed, about {left / 60:.0f} min left",
                err=True,
            )

    def close(self) -> None:
        self.bar.close()


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


def save_image(path: Path, image: Any) -> None:
    """A PIL image (a contact sheet) written atomically, in the format its suffix names."""
    from ..runtime.files import write_atomic

    fmt = path.suffix.lstrip(".").upper().replace("JPG", "JPEG")
    write_atomic(path, lambda handle: image.save(handle, format=fmt))


def _locked(descriptor: int) -> bool:
    """Whether this process now holds the only lock on the open file (POSIX ``flock``; True
    where there is none): two runs writing one report would interleave or empty each other's."""
    try:
        import fcntl

        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except (ImportError, OSError):  # Windows; a filesystem without locks: as before
        pass
    return True


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
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)  # (not emptied before it is locked)
        except OSError as exc:
            raise OutputError(f"cannot write the report file {path}: {exc.strerror or exc}") from None
        if not _locked(descriptor):
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
                self.handle.flush() if self.handle is sys.stdout else self.handle.close()
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
