"""The folder job's workers, and what crosses to them.

Threads share the photo with the calling process; a worker process gets what it needs
pickled, and what it returns is unpickled by the calling process's threads, which share its
GIL with the batching (``pipeline``): so a photo crosses without its decoded pixels wherever
the other side can decode the file again.
"""

from __future__ import annotations

from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Callable

from .options import ExtractOptions
from .stages import NeedsMask


def make_pool(options: ExtractOptions) -> Executor:
    """The workers: threads, or processes started by a fork server (forking a process that
    runs onnxruntime's threads is not safe)."""
    if not options.use_processes:
        return ThreadPoolExecutor(options.workers, thread_name_prefix="ce-worker")
    import multiprocessing

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(options.workers, mp_context=multiprocessing.get_context(method))


def read_lightly(read: Callable[..., Any], *args: Any) -> Any:
    """``read(*args)`` in a worker process, with a photo left for the segmenter returned light
    (``NeedsMask.light``): the worker that makes a closer look's crop, or ``finish``, decodes
    it again, instead of the calling process unpickling every decoded photo (2.4 MB at
    1024x768) on its way to the GPU."""
    item = read(*args)
    if isinstance(item, tuple) and isinstance(item[0], NeedsMask):  # (item, route): gpudecode.read_for_gpu's
        return (item[0].light(), *item[1:])
    return item.light() if isinstance(item, NeedsMask) else item


def for_closer_look(item: NeedsMask, options: ExtractOptions) -> NeedsMask:
    """A photo as it goes to a worker for its closer look's crop (``stages.closer_crop``): to a
    process light (it decodes the file again), to a thread whole (the photo it has)."""
    return item.for_worker() if options.use_processes else item
