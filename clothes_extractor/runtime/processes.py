"""How the folder job's worker processes start and what they leave to the calling process: a fork
server deaf to Ctrl-C (``process_context``), Ctrl-C ignored, and an end of their own once the
calling process is gone (``worker_started``)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

WATCH_S = 1.0  # how often a worker process looks for the calling process


def process_context() -> Any:
    """How worker processes start: from a fork server (spawned where there is none). The server
    starts with Ctrl-C (SIGINT) ignored, so the processes it forks are born ignoring it: a pool
    starts them as work comes, and each imports what it runs before ``worker_started`` can ignore
    it (up to a second on a loaded machine), a window in which a terminal's Ctrl-C printed that
    worker's ``KeyboardInterrupt`` traceback. Set in the main thread only (where Python sets
    signal dispositions); a Ctrl-C in the few milliseconds the server takes to be spawned is lost."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    from multiprocessing import forkserver

    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        return multiprocessing.get_context("forkserver")  # (its workers ignore it once started)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # (inherited by the server it spawns, and by their children)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)
    return multiprocessing.get_context("forkserver")


def worker_started(caller: int) -> None:
    """A worker process's first step: Ctrl-C is the calling process's to act on
    (``ignore_ctrl_c``), and it ends once that process is gone (``watch_caller``)."""
    ignore_ctrl_c()
    watch_caller(caller)


def ignore_ctrl_c() -> None:
    """SIGINT ignored in this (worker) process. A terminal's Ctrl-C reaches every process of the
    job (its process group): an idle worker printed its ``KeyboardInterrupt`` traceback, and the
    photos ``extract --watch`` finishes after its first Ctrl-C lost their workers (until the 65th
    stop). The calling process stops the job; its workers end with their pool, or once it is
    gone. (SIGTERM stays deadly: it is how the pool ends a worker, ``Process.terminate``; it
    kills without a traceback.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def watch_caller(caller: int) -> None:
    """In a worker process: end it once the calling process ``caller`` is gone. Killed (the
    out-of-memory killer, ``kill -9``), that process leaves its workers waiting for work that
    never comes, forever: they hold the pool's pipes, so they never see them close, and the
    fork server, the shared memory and the semaphores (``/dev/shm``) are kept while they live.
    (POSIX only: on Windows ``os.kill`` with signal 0 would end the calling process instead.)"""
    if os.name == "nt":
        return

    def watch() -> None:
        while True:
            time.sleep(WATCH_S)
            try:
                os.kill(caller, 0)
            except OSError:  # no such process, or another user's (its pid reused): gone
                os._exit(1)  # a write in progress leaves its temporary file: the next run sweeps it

    threading.Thread(target=watch, name="ce-watch-caller", daemon=True).start()
