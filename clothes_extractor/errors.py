"""The typed errors of the library. Only ``cli.py`` turns them into messages and exit codes;
``path_error`` words what the system says of a path, where no check of ours said it first.

Every message says what is wrong and, where there is one, how to fix it.
"""

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator, Mapping


class ClothesExtractorError(Exception):
    """Base class of every error this package raises on purpose."""


class MissingDependencyError(ClothesExtractorError):
    """An optional dependency is not installed; the message names the pip command."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(f'{purpose} needs {package}, which is not installed: pip install "clothes-extractor[{extra}]"')


class ModelError(ClothesExtractorError):
    """A model file cannot be used: missing, not ONNX, or its contract is broken."""


class ContractError(ModelError):
    """The model's embedded contract is missing, unknown or inconsistent with its graph."""


class ProviderError(ClothesExtractorError):
    """A requested execution provider cannot start."""


class InputError(ClothesExtractorError):
    """One input (photo or mask) cannot be used. Folder jobs report it and go on."""


class NoGarmentError(InputError):
    """The segmenter finds no garment in the photo: reported, never invented. ``how`` says how
    the caller gives a mask instead (an option, a form field, an argument)."""

    SUMMARY = "no garment found in this photo (the segmenter sees none)"  # how a folder job's report begins

    def __init__(self, how: str = "--masks DIR"):
        super().__init__(f"{self.SUMMARY}; if there is one, give its mask: {how}")


class NothingToDressError(InputError):
    """A try-on pair with nothing to work on: no top or arms on the person, or no garment on
    the garment image. Reported, never invented."""


class NoMaskError(InputError):
    """A photo comes with no garment mask and there is no segmenter to find one; the message
    says how to give one."""


class OutputError(ClothesExtractorError):
    """The output cannot be written (folder missing, not writable, name collision)."""


class DiskFull(OutputError):
    """The disk (or the user's quota) that holds an output is full: no later write there can
    succeed, so a folder job stops at it instead of failing every photo that follows (what it
    wrote is complete, and a rerun resumes)."""


class WorkerDied(ClothesExtractorError):
    """A worker process died (killed by the system, out of memory, or crashed on a file) while a
    photo was in its pool. The folder job tries each photo of that pool again, alone; ``alone``:
    the photo's worker died that time too. Without it: the job stopped before the photo's turn."""

    def __init__(self, alone: bool = False) -> None:
        self.alone = alone
        super().__init__(
            "a worker process died twice while working on this photo, the second time with no other photo in "
            "flight: the file crashes its decoder, or it needs more memory than is free (fewer --workers or a "
            "smaller --batch-size leave more); check that the file opens in an image viewer"
            if alone
            else "a worker process died while this photo was in its pool (killed by the system, out of memory, "
            "or crashed on a file), and the job stopped before trying it again: run it again to finish this photo"
        )


class WorkersKeepDying(ClothesExtractorError):
    """Worker processes died again and again: the folder job stops instead of failing every photo."""

    SUMMARY = "worker processes kept dying"  # how the stop's message begins

    def __init__(self, times: int) -> None:
        super().__init__(
            f"{self.SUMMARY} ({'once' if times == 1 else f'{times} times in a row, no photo written in between'}: "
            "killed by the system, out of memory, or crashed on a file). Fewer "
            "--workers, a smaller --batch-size or --threads need less memory; the photos that failed are in the report"
        )


class ExportError(ClothesExtractorError):
    """Export failed, or the exported model does not match PyTorch within tolerance."""


class CheckpointError(ClothesExtractorError):
    """A training checkpoint is missing, unreadable or of another kind."""


@contextlib.contextmanager
def files_named(names: Mapping[Path, str]) -> Iterator[None]:
    """Errors raised inside name each temporary file as the caller knows it (``names[path]``;
    "" for no name): "photo /tmp/ce-x/photo is not an image" -> "photo is not an image". An
    upload's or an in-memory photo's temporary path means nothing to its sender (and a server
    should not tell clients its paths). The error keeps its type."""
    try:
        yield
    except ClothesExtractorError as exc:
        exc.args = (renamed(str(exc), names),)
        raise


def renamed(text: str, names: "Mapping[Path, str] | Mapping[str, str]") -> str:
    """``text`` (a message) with each path of ``names`` named ``names[path]`` ("": not named)."""
    for path, name in sorted(names.items(), key=lambda item: -len(str(item[0]))):  # photo-10 before photo-1
        for before, after in ((f": {path}", f": {name}"), (f" {path}", f" {name}"), (str(path), name)):
            text = text.replace(before, after if name else "")
    return text


def path_error(exc: OSError) -> str:
    """What the system said of a path (one too long, a loop of links, one unreadable) where no
    check said it first: the path and the reason, as one line."""
    names = [os.fsdecode(n) if isinstance(n, bytes) else str(n) for n in (exc.filename, exc.filename2) if n is not None]
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENAMETOOLONG and names:
        longest = max(len(os.fsencode(part)) for part in Path(names[0]).parts)
        reason += f" (a name in it is {longest} bytes): give a shorter one"
    return f"{' -> '.join(names)}: {reason}"


def lookup_error(path: str | os.PathLike) -> str | None:
    """What the system says of a path it cannot look up (a name too long, a loop of links), as
    ``path_error`` words it; None where it can, or where the path is simply not there (the
    caller says "not found" its own way)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return path_error(exc)
    return None
