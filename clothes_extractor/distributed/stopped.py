"""A Ray job's files in progress where its writers were killed: none left behind.

A terminal's Ctrl-C reaches every process of a local Ray (the job's process group); a worker
killed in a write dies before its write's clean-up (``files.write_atomic``) and leaves its
``.partial`` file (1 run in 6 of ``test_ray``'s stopped job, before). The job that started
that Ray ends it when it stops and removes those files from the output folders it wrote last
(``end_stopped``); and each write task clears a folder of its machine's dead writers' files the
first time its process writes there (``clear_once``), as local ``extract`` does
(``jobs.removing_stale_partials``): on a cluster, a node's at its next write there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

from ..runtime.files import remove_stale_partials
from .jobsource import is_remote

log = logging.getLogger(__name__)
KILLED_WAIT_S = 3.0  # how long a stopped job's sweep waits for the writers its Ray's shutdown killed to end
RECENT_FOLDERS = 64  # a stopped job's writes in progress were in the output folders it wrote last: so many

_CLEARED: set[Path] = set()  # the output folders this worker process has cleared (``clear_once``)


def clear_once(folder: Path) -> None:
    """Remove from ``folder``, the first time this process writes there, the ``.partial`` files
    of writers that no longer run on this machine (another machine's once a day old)."""
    if folder not in _CLEARED:
        _CLEARED.add(folder)
        remove_stale_partials(folder)


def output_folders(jobs: Iterable[Any]) -> list[Path]:
    """The local output folder of a ``JobWalk`` (none for a URI, a list of jobs)."""
    output = getattr(jobs, "output", None)
    return [Path(output)] if output is not None and not is_remote(output) else []


def note_folder(recent: dict[str, None], folder: str) -> None:
    """``folder`` written last, in ``recent``: the ``RECENT_FOLDERS`` written last, in order."""
    recent.pop(folder, None)
    recent[folder] = None
    if len(recent) > RECENT_FOLDERS:
        del recent[next(iter(recent))]


def end_stopped(ray: Any, rows: Any, folders: Iterable[Path | str]) -> None:
    """A stopped job's own local Ray ended at once (``rows``, Ray Data's iterator, closed first),
    its workers with it; then the ``.partial`` files of those killed in a write removed from
    ``folders`` (the output folder and those ``note_folder`` kept: where the writes in progress
    were)."""
    try:
        close = getattr(rows, "close", None)
        if close is not None:
            close()  # (Ray Data's executor stops its tasks and actors)
        ray.shutdown()
    except Exception:  # noqa: BLE001 - the stop goes on: Ray ends with the process in any case
        log.debug("ending the local Ray failed", exc_info=True)
        return  # (its workers may still run: their files in progress are theirs)
    for folder in folders:  # (its workers end a moment after the shutdown: their files are waited for, a little)
        remove_stale_partials(Path(folder), wait_s=KILLED_WAIT_S)
