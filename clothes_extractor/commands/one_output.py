"""Where one photo's (or one pair's) output goes: an image file, whose suffix names its
format, or standard output (``-o -``), in ``--format``; and the scratch folder such a job
(standard input, a URL) needs."""

from __future__ import annotations

import contextlib
import functools
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import click

from ..errors import ClothesExtractorError
from .common import given_options

IMAGE_OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
FORMATS = ("png", "jpg", "webp")

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="png",
    show_default=True,
    help="Folder outputs, and standard output (-o -); a file's suffix names its own.",
)


def names_an_image_file(output: Path, what: str) -> bool:
    """Whether ``-o`` names one image file (else a folder); ``UsageError`` for an image name in
    a format ``what`` is not written in (``x.gif`` would otherwise become a folder)."""
    from ..runtime.images import IMAGE_SUFFIXES

    suffix = output.suffix.lower()
    if suffix in IMAGE_OUTPUT_SUFFIXES:
        return True
    if suffix in IMAGE_SUFFIXES and not output.is_dir():
        raise click.UsageError(f"-o {output}: {what} are written as .png, .jpg or .webp files (or into a folder)")
    return False


def one_output(output: str | Path, fmt: str, scratch: Callable[[], Path], name: str | Path) -> Path:
    """Where one photo's (one pair's) output is made: for standard output (``-o -``) the
    temporary file ``name`` (a path) in the ``scratch()`` folder, with ``--format``'s suffix; else the
    file itself, whose suffix decides its format, and a ``--format`` given for another format
    is refused (it would be ignored)."""
    if str(output) == "-":
        return (scratch() / name).with_suffix(f".{fmt}")
    from ..runtime.stages import output_format

    try:
        named = output_format(Path(output))
    except ClothesExtractorError:
        return Path(output)  # (its suffix is refused where outputs are checked)
    if named != fmt and any(param.name == "fmt" for param in given_options()):
        raise click.UsageError(
            f"-o {output} is written as {dict(jpg='JPEG').get(named, named.upper())}, the format its suffix names; "
            f"--format {fmt} would be ignored: leave it out, or name the file .{fmt}"
        )
    return Path(output)


def check_stdout_takes_an_image() -> None:
    """``-o -``: refused on a terminal, which the image's bytes would garble."""
    if sys.stdout.isatty():
        raise click.UsageError("-o - writes the image to standard output, a terminal here: redirect or pipe it")


def write_to_stdout(path: Path) -> None:
    """The bytes of ``path`` (a finished image) on standard output."""
    sys.stdout.buffer.write(path.read_bytes())
    sys.stdout.buffer.flush()


@contextlib.contextmanager
def scratch_folder() -> Iterator[Callable[[], Path]]:
    """A temporary folder, made on the first call of what this yields and removed at the end.
    What needs one asks for it (a photo from standard input or a URL, a one-photo job, a
    try-on pair for standard output, garments extracted for try-on); a folder of local photos
    needs none, so a folder job killed outright (SIGKILL, which skips every cleanup) leaves
    nothing in the system's temporary folder."""
    with contextlib.ExitStack() as stack:
        made = functools.cache(lambda: stack.enter_context(tempfile.TemporaryDirectory(prefix="clothes-extractor-")))
        yield lambda: Path(made())
