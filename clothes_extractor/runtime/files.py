"""Writing files so that they are either complete or absent: the one atomic write.

Every file the package writes (garments, masks, reports' sheets, exported models,
checkpoints, benchmark results) goes through ``write_atomic``: the bytes go to a
temporary file in the same folder, are flushed to disk (fsync), and the file is renamed
into place. The temporary name is short (``.ce-HOST-PID-RANDOM.partial``) whatever the
target's name, so a legal 255-byte output name stays legal, and it carries the writer's
machine (``HOST``: a digest of the host name and PID namespace) and process id: a process
killed mid-write (SIGKILL, power loss) leaves a partial file that the next run on that
machine in that folder recognises as stale and removes (``remove_stale_partials``). One of
another machine or container (shards of a job writing one shared folder) is not its to judge
by a process id: it is removed once it is a day old. A folder
made whole (a dataset ``data synth`` or ``data downsample`` writes) is filled the same way:
under a temporary name beside it, renamed into place when complete (``filled_folder``).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import IO, Callable, Iterator

from ..errors import DiskFull, OutputError

FULL = frozenset({errno.ENOSPC, errno.EDQUOT})  # no space left, quota exceeded
# .ce-HOST-PID-RANDOM.partial; before the 55th stop of round 2, .ce-PID-RANDOM.partial (no HOST)
PARTIAL_PATTERN = re.compile(r"^\.ce-(?:([0-9a-f]{8})-)?(\d+)-[0-9a-f]{8}\.partial$")
FOREIGN_STALE_S = 24 * 3600  # another machine's partial file is taken for stale at this age
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # scheme://...: not a local path (pathlib makes s3://b s3:/b)


@functools.cache
def writer_host() -> str:
    """Eight hex digits naming this machine and PID namespace: where a partial file's process
    id means this machine's process (a container on one host has its own namespace, and a
    shard on another machine writing the same folder its own host name)."""
    namespace = ""
    with contextlib.suppress(OSError):
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    return hashlib.sha256(f"{socket.gethostname()}/{namespace}".encode()).hexdigest()[:8]


def partial_name(path: Path) -> Path:
    """A fresh temporary name beside ``path`` for writing it."""
    return path.with_name(f".ce-{writer_host()}-{os.getpid()}-{secrets.token_hex(4)}.partial")


def _stale(path: Path, host: str | None, pid: int) -> bool:
    """Whether the partial file ``path`` of writer ``host`` / ``pid`` is left by one that no
    longer runs: one of this machine's by its process; another's by its age (a name without a
    host, from before, by its process as it was)."""
    if host is None or host == writer_host():
        return not _pid_alive(pid)
    try:
        return time.time() - path.lstat().st_mtime > FOREIGN_STALE_S
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    """Whether this machine's process ``pid`` runs. Never by ``os.kill`` on Windows, which ends
    the process there whatever the signal (a rerun ended the process that had the pid of a
    killed run's partial file): asked through the Windows API instead."""
    if pid == os.getpid():
        return True
    if os.name == "nt":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether process ``pid`` has ended and waits to be reaped (Linux's /proc; where nothing
    reaps it, a container's first process, it would be taken for live for as long as it is there)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def _windows_pid_alive(pid: int) -> bool:
    """``_pid_alive`` on Windows (``OpenProcess`` + ``GetExitCodeProcess``, as psutil asks); a
    process it cannot ask about is taken for alive (its file is kept: the safe side)."""
    import ctypes
    from ctypes import wintypes

    query, invalid_parameter, still_active = 0x1000, 87, 259  # PROCESS_QUERY_LIMITED_INFORMATION, ...
    try:
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        kernel32.OpenProcess.restype = wintypes.HANDLE
        kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
        handle = kernel32.OpenProcess(query, False, pid)
        if not handle:
            return ctypes.get_last_error() != invalid_parameter  # (no such process; access denied: one runs)
        try:
            code = wintypes.DWORD()
            return not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) or code.value == still_active
        finally:
            kernel32.CloseHandle(handle)
    except (AttributeError, OSError):
        return True


def remove_stale_partials(folder: Path, recursive: bool = False, wait_s: float = 0.0) -> int:
    """Remove the temporary files of writers that no longer run (``_stale``); how many were removed.
    ``wait_s``: while one of this machine's is left whose writer (another process) still runs, look
    again every tenth of a second, up to that long (writers killed a moment ago: a stopped local
    Ray's workers end just after its shutdown returns)."""
    removed, deadline = 0, time.monotonic() + wait_s
    while True:
        running = 0
        for path in _partials(Path(folder), recursive):
            match = PARTIAL_PATTERN.match(path.name)
            if match and _stale(path, match.group(1), int(match.group(2))):
                try:
                    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
                    removed += 1
                except OSError:
                    pass
            elif match and match.group(1) in (None, writer_host()) and int(match.group(2)) != os.getpid():
                running += 1  # (another process of this machine's: one that is ending is waited for)
        if not running or time.monotonic() >= deadline:
            return removed
        time.sleep(0.1)


def _partials(folder: Path, recursive: bool) -> Iterator[Path]:
    """The temporary names in ``folder`` (and below), not entering them. A folder that cannot be
    read, or is gone by the time it is listed (another writer's temporary folder, removed as
    the walk came to it), is passed over: the walk goes on (``rglob`` stopped there)."""
    pending = [folder]
    while pending:
        try:
            with os.scandir(pending.pop()) as listing:
                entries = list(listing)
        except OSError:
            continue  # an unreadable folder: the job reports what it cannot read
        for entry in entries:
            if entry.name.startswith(".ce-") and entry.name.endswith(".partial"):
                yield Path(entry.path)
            elif recursive and _is_folder(entry):
                pending.append(Path(entry.path))


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def from_file_uri(value: object) -> object:
    """A ``file://`` URI of this machine (``file:///data/x.jpg``, ``file://localhost/...``) as the
    path it names; anything else as it is."""
    if isinstance(value, str) and value[:7].lower() == "file://":
        from urllib.parse import urlsplit
        from urllib.request import url2pathname

        parts = urlsplit(value)
        if parts.netloc.lower() in ("", "localhost"):
            return url2pathname(parts.path)
    return value


def not_local(value: object) -> str | None:
    """Why ``value`` cannot be a local path: a URI (``s3://bucket/out``; as a path, the local folder
    ``s3:/bucket/out``, and the user would look for the files in the bucket); else None. (A
    ``file://`` URI of this machine is ``from_file_uri``'s to turn into its path first.)"""
    if isinstance(value, str) and URI.match(value):
        return f"{value} is a URI: this reads and writes local files and folders; copy them here"
    return None


def check_local(value: object, what: str) -> None:
    """``OutputError`` where ``value``, given as ``what`` ("output", "input", ...), is ``not_local``."""
    problem = not_local(value)
    if problem is not None:
        raise OutputError(f"{what} {problem}")


def locked(descriptor: int) -> bool:
    """Whether this process now holds the only lock on the open file (POSIX ``flock``, released
    when the process ends, however it ends; True where there is none): two runs writing one
    report or one training run folder would interleave or replace each other's files."""
    try:
        import fcntl

        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except (ImportError, OSError):  # Windows; a filesystem without locks: as before
        pass
    return True


@contextlib.contextmanager
def held_folder(folder: Path, busy: str) -> Iterator[None]:
    """``folder`` for this process alone while the block runs: the lock (``locked``) of its
    ``.ce-lock`` file, made with the folder where they are missing; ``OutputError(busy)`` before
    the block if another process holds it. The file goes when the block ends, and the folders
    made for it if they stayed empty (a run that failed before writing anything). One a killed
    process left holds no lock: the next run takes it."""
    folder = Path(folder)
    made = [f for f in (folder, *folder.absolute().parents) if not f.exists()]  # deepest first
    path = folder / ".ce-lock"
    for tries_left in reversed(range(3)):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            break
        except OSError as exc:
            # (a folder removed meanwhile, by a run that made it and failed at once: made again)
            gone = isinstance(exc, FileNotFoundError) or (isinstance(exc, FileExistsError) and not _a_file(folder))
            if not gone or not tries_left:
                raise OutputError(f"cannot write {folder}: {exc.strerror or exc}") from None
    if not locked(descriptor):
        os.close(descriptor)
        raise OutputError(busy)
    try:
        yield
    finally:
        _remove(path)  # (while still held: one that opened it meanwhile is refused, not let in)
        os.close(descriptor)
        for parent in made:
            try:
                parent.rmdir()
            except OSError:
                break  # not empty: the block wrote there


def _a_file(path: Path) -> bool:
    """Whether something that is not a folder is at ``path`` (a file, a link to one)."""
    return os.path.lexists(path) and not os.path.isdir(path)


def write_atomic(path: Path, data: bytes | Callable[[IO[bytes]], None], *, sync: bool = True) -> None:
    """Write ``data`` (bytes, or a function writing to a binary file) to ``path`` atomically.

    ``OutputError`` (with the reason) if it cannot be written, ``DiskFull`` where the disk or
    quota is full; nothing is left behind.
    """
    path = Path(path)
    temp = partial_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temp, "wb") as handle:
            if isinstance(data, (bytes, bytearray, memoryview)):
                handle.write(data)
            else:
                data(handle)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        if path.is_dir():
            raise IsADirectoryError(21, "a folder of that name is in the way")
        os.replace(temp, path)
    except OSError as exc:
        _remove(temp)
        error = DiskFull if exc.errno in FULL else OutputError
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ENAMETOOLONG:
            reason += f" (its name is {len(os.fsencode(path.name))} bytes): give it a shorter name"
        raise error(f"cannot write {path}: {reason}") from None
    except BaseException:
        _remove(temp)
        raise


@contextlib.contextmanager
def filled_folder(folder: Path, what: str) -> Iterator[Path]:
    """A new folder, complete or absent: yields a temporary folder beside ``folder`` to write
    into, renamed to ``folder`` when the block ends; removed if the block fails (Ctrl-C
    included). ``OutputError`` before any work if ``folder`` exists and holds anything, so
    nothing there is replaced or mixed into."""
    folder = Path(folder)
    if folder.is_file():
        raise OutputError(f"{what} {folder} is a file; give a new folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise OutputError(f"{what} {folder} already holds files; give a new or empty folder (or remove that one)")
    made = [parent for parent in folder.absolute().parents if not parent.exists()]  # deepest first
    temp = partial_name(folder)
    try:
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_partials(folder.parent)
            temp.mkdir()
            yield temp
            if folder.is_dir():
                folder.rmdir()  # empty, as checked
            os.rename(temp, folder)
        except OSError as exc:
            raise OutputError(f"cannot write {what} {folder}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        for parent in made:  # the folders made for it, so a failed run leaves nothing
            with contextlib.suppress(OSError):
                parent.rmdir()
        raise


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # its folder is not there or not a folder: nothing was created


def same_file(path: Path, other: Path) -> bool:
    """Whether ``path`` names the existing file ``other`` (through a link, too): writing
    ``path`` would replace it. False when either does not exist."""
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False


def check_writable_file(path: Path, what: str, suffixes: tuple[str, ...] = ()) -> None:
    """Fail before any work if ``path`` cannot be written as ``what`` (an output named by an option).

    Checks the suffix, that the folder exists or can be made, and that a file can be
    created there; nothing is left behind.
    """
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise OutputError(f"{what} {path} must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name")
    try:
        write_atomic(path.with_name(f".ce-write-test-{os.getpid()}"), b"", sync=False)
        path.with_name(f".ce-write-test-{os.getpid()}").unlink()
    except OutputError as exc:
        raise OutputError(f"{what} cannot be written: {exc}") from None


def check_output_dir(out_dir: Path, what: str = "the output folder") -> None:
    """``OutputError`` before any work if results cannot be written to ``out_dir``.

    Nothing is made or removed there: a folder under a temporary name is made and removed in
    ``out_dir``, or where it does not exist yet in the nearest folder above it that does, with
    the folders still to make inside it, by their names (the first result makes them). So a
    run that fails later, or writes nothing, leaves no empty folder behind, and shards of one
    job started together into a new folder cannot remove it from under one another (a check
    that made the folder and removed it again did: another shard's write found no folder).
    The temporary name is a partial file's, so one left by a killed check is removed like theirs."""
    out_dir = Path(out_dir)
    target = out_dir.absolute()
    nearest = next(folder for folder in (target, *target.parents) if os.path.lexists(folder))
    probe = partial_name(nearest / "probe")
    try:
        probe.mkdir()
        try:  # the folders still to make, by their names, inside the probe: too long, a character refused
            probe.joinpath(*target.relative_to(nearest).parts).mkdir(parents=True, exist_ok=True)
        finally:
            shutil.rmtree(probe, ignore_errors=True)
    except OSError as exc:
        raise OutputError(
            f"cannot write to {what} {out_dir}: {exc.strerror or exc}; choose another folder or fix its permissions"
        ) from None
