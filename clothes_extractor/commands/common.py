"""Helpers shared by the commands: error reporting, interrupts, shared options and progress
(the report of folder jobs and the checks of their side files: ``reports``)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

import click

from ..errors import ClothesExtractorError, lookup_error, path_error
from ..interrupts import Terminated
from ..runtime.limits import LARGEST_BATCH

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
STDOUT = Path("-")  # what -o and --report take for standard output
MAX_FAILURES_SHOWN = 20  # failures said one by one, at most (the report lists them all)


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
            type=LocalPath(path_type=Path, dir_okay=False, allow_dash=True),
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


class LocalPath(click.Path):
    """A ``click.Path`` that refuses a URI: as a path, ``s3://bucket/out`` is the local folder
    ``s3:/bucket/out``, and the user would look for the files in the bucket. A path that must
    exist and that the system cannot look up (a name too long, a loop of links) says so, where
    click would say it "does not exist". With ``urls``, an http(s) URL is taken as it is given
    (a ``str``, where a path is a ``Path``: the command fetches it, ``given.fetched``); with
    ``allow_dash`` too, ``-`` for standard input."""

    def __init__(self, *args: Any, urls: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.urls = urls

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..api.web import is_url
        from ..runtime.files import from_file_uri, not_local

        if self.urls and (is_url(value) or (self.allow_dash and value == "-")):
            return value  # (standard input: read into a file like a URL's, ``given.resolve_inputs``)
        value = from_file_uri(value)
        problem = not_local(value)
        if problem is not None and self.urls:  # (s3://, gs://: an object store's address)
            problem = f"{value} is a URI: this takes local files and folders, and http(s) URLs; copy it here, or give "
            problem += "an http(s) address of it (a presigned URL)"
        if problem is not None:
            self.fail(problem, param, ctx)
        if self.exists and not (self.allow_dash and value == "-"):
            problem = lookup_error(value)  # (None for a path not there: click's own message)
            if problem is not None:
                self.fail(problem, param, ctx)
        return super().convert(value, param, ctx)


class CheckpointPath(LocalPath):
    """A checkpoint ``train`` wrote (``RUN/best.pt``, ``RUN/last.pt``; a served ``.onnx`` where
    the command takes one), or the run folder ``RUN`` itself, which stands for its ``best.pt``
    (the best validation), else its ``last.pt``, said on stderr (a folder said "is a directory")."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = super().convert(value, param, ctx)
        if not os.path.isdir(path):
            return path
        for name in ("best.pt", "last.pt"):
            chosen = os.path.join(path, name)
            if os.path.isfile(chosen):
                click.echo(f"{param.human_readable_name if param else 'checkpoint'} {path}: {chosen}", err=True)
                return self.coerce_path_result(chosen)
        self.fail(
            f"{path} is a folder with no checkpoint in it: give a run folder that train wrote (RUN/best.pt, "
            "RUN/last.pt) or one of those files",
            param,
            ctx,
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
        except OSError as exc:
            if exc.filename is None:
                raise  # (not about a file the user named: a bug, with its traceback)
            logging.getLogger(__name__).debug("the error's traceback", exc_info=True)
            raise click.ClickException(path_error(exc)) from None
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


def given_options() -> list[click.Parameter]:
    """The current command's options that its command line gives (not defaults)."""
    ctx = click.get_current_context()
    source = click.core.ParameterSource.COMMANDLINE
    return [param for param in ctx.command.params if ctx.get_parameter_source(param.name) == source]


def check_stdin_piped(what: str, example: str) -> None:
    """``UsageError`` where standard input is a terminal: reading it (for ``what``) would wait,
    silently, for someone to type an image or a list; ``example`` says how to pipe it in."""
    if sys.stdin is None or sys.stdin.isatty():
        raise click.UsageError(
            f"{what} reads standard input, which is a terminal here: pipe or redirect it in ({example})"
        )


def note_unsearched(subfolders: list[Path]) -> None:
    """Say which subfolders of the input folders a job without ``-r`` does not look in."""
    if subfolders:
        more = f" and {len(subfolders) - 1} more" if len(subfolders) > 1 else ""
        click.echo(f"note: photos in subfolders are not taken without --recursive: {subfolders[0]}{more}", err=True)


def batch_size_option(unit: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--batch-size``: ``unit``s run through the models together, 8 by default, at most ``LARGEST_BATCH``
    (``runtime.limits``)."""
    return click.option(
        "--batch-size",
        type=click.IntRange(1, LARGEST_BATCH),
        default=8,
        show_default=True,
        help=f"{unit.capitalize()}s run through the models together (at most {LARGEST_BATCH}: they are in memory "
        "together).",
    )


# The longest side a size option takes (a model's, a synthetic dataset's, a timed photo's): 100000x100000
# ran the process out of memory and the system killed it without a word (data synth at 20000x15000 too).
LARGEST_SIDE = 8192


def parse_size(value: str, option: str = "--size") -> tuple[int, int]:
    """``HEIGHTxWIDTH`` -> (height, width), each from 1 to ``LARGEST_SIDE``."""
    try:
        height, width = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not HEIGHTxWIDTH (e.g. 256x192)", param_hint=option) from None
    if height < 1 or width < 1:
        raise click.BadParameter(f"{value!r}: both sides must be positive", param_hint=option)
    if max(height, width) > LARGEST_SIDE:
        raise click.BadParameter(f"{value!r}: at most {LARGEST_SIDE} pixels a side (e.g. 1024x768)", param_hint=option)
    return height, width


def require_torch(purpose: str, extra: str = "train") -> None:
    """Fail with the pip command to run when PyTorch is not installed (without importing it)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise click.ClickException(f'{purpose} needs PyTorch: pip install "clothes-extractor[{extra}]"')


class Progress:
    """A progress bar on a terminal; without one (cron, Kubernetes logs), a line every ``every_s`` s.
    ``total`` None: a job that does not know how many will come (``extract --watch``): a count."""

    def __init__(self, total: int | None, unit: str, what: str, every_s: float = 30.0):
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        self.total, self.unit, self.what, self.every_s = total, unit, what, every_s
        self.bar = tqdm(total=total, unit=unit, disable=None, file=sys.stderr, dynamic_ncols=True)
        self.lines = self.bar.disable
        self._logging = contextlib.ExitStack()
        if not self.lines:  # a bar: a warning while it runs (a server that stops answering) above it, not through it
            self._logging.enter_context(logging_redirect_tqdm())
        self.done = self.failed = 0
        self.started = self.last = time.monotonic()

    def update(self, count: int = 1, failed: int = 0) -> None:
        """``count`` more done, and ``failed`` more failed (a watch's photo that failed, written
        again and done: -1)."""
        self.done += count
        self.failed += failed
        self.bar.update(count)
        now = time.monotonic()
        if self.lines and now - self.last >= self.every_s:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            if self.total is None:
                click.echo(f"{self.what}: {self.done} {self.unit}s, {rate:.1f}/s, {self.failed} failed", err=True)
                return
            left = (self.total - self.done) / rate if rate > 0 else 0
            click.echo(
                f"{self.what}: {self.done}/{self.total} {self.unit}s ({100 * self.done / max(self.total, 1):.0f}%), "
                f"{rate:.1f}/s, {self.failed} failed, about {left / 60:.0f} min left",
                err=True,
            )

    def say(self, line: str) -> None:
        """A line on standard error, above the bar (on a terminal) rather than through it."""
        self.bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
        self._logging.close()
