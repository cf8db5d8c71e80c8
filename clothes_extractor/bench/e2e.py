"""``bench --e2e``: the ``extract`` pipeline end to end on a folder of real photos, against the
host ceiling measured in the same run (decode, fit and encode on every core, no model), and
the calling process's CPU per photo, which bounds the rate where the models are fast. No PyTorch.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..runtime.providers import SessionSettings
from ..runtime.session import ModelSession


class StageClock:
    """Seconds spent per pipeline stage, summed over threads (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def timed(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - t0)

        return wrapper


class CountedRuns:
    """A model session whose runs' CPU on the calling thread is added up (``cpu_s``): the
    calling process's main thread runs the models, and on a GPU their launches are part of the
    serial work that bounds ``extract``; the rest is the pipeline's own."""

    def __init__(self, session: ModelSession):
        self._session, self.cpu_s = session, 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def run(self, **arrays: Any) -> Any:
        t0 = time.thread_time()
        try:
            return self._session.run(**arrays)
        finally:
            self.cpu_s += time.thread_time() - t0


class PoolThreadsCpu:
    """CPU seconds of the calling process's process-pool threads while a job runs: the pool's
    manager thread (it takes the workers' results off their pipe and unpickles them) and its call
    queue's feeder (it pickles the work to them). They share the GIL with the main thread, so with
    it they are the serial work that bounds ``extract`` where the models are fast. They end with
    the job, so they are sampled from ``/proc`` while it runs (``seconds`` is None where there is
    no ``/proc``; 0.0 for a job with no process pool)."""

    INTERVAL_S = 0.02

    def __init__(self) -> None:
        self._ticks: dict[int, int] = {}
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="ce-bench-sampler", daemon=True)
        self.available = os.path.isdir("/proc/self/task")

    def __enter__(self) -> PoolThreadsCpu:
        if self.available:
            self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.available:
            self._stop.set()
            self._sampler.join()

    @property
    def seconds(self) -> float | None:
        return sum(self._ticks.values()) / os.sysconf("SC_CLK_TCK") if self.available else None

    def _sample(self) -> None:
        while not self._stop.wait(self.INTERVAL_S):
            for thread in threading.enumerate():
                if type(thread).__name__ == "_ExecutorManagerThread" or thread.name == "QueueFeederThread":
                    try:
                        with open(f"/proc/self/task/{thread.native_id}/stat") as stat:
                            fields = stat.read().rsplit(")", 1)[1].split()
                    except OSError:  # it ended between the two
                        continue
                    self._ticks[thread.native_id] = int(fields[11]) + int(fields[12])  # utime + stime


def _ceiling_one(path: Path, size: tuple[int, int], detail: tuple[int, int]) -> bool:
    """What ``extract`` must do for a photo besides running models: decode (draft), fit, encode."""
    from ..runtime.fitting import letterbox
    from ..runtime.images import encode_image, load_photo

    try:
        photo, _ = load_photo(path, lambda shown: min(1.0, max(detail[0] / shown[1], detail[1] / shown[0])))
    except Exception:  # noqa: BLE001 - a bad photo costs what it costs; extract reports it
        return False
    image, _ = letterbox(photo, size, (255, 255, 255))
    encode_image(image, "png")
    return True


def host_ceiling(photos: list[Path], size: tuple[int, int], detail: tuple[int, int], workers: int) -> dict[str, Any]:
    """Photos/s of decode (JPEG draft) + fit + PNG encode on ``workers`` processes, no model:
    what the host can feed, against which ``extract``'s rate is read."""
    from concurrent.futures import ProcessPoolExecutor

    from ..runtime.processes import ignore_ctrl_c, process_context

    with ProcessPoolExecutor(workers, mp_context=process_context(), initializer=ignore_ctrl_c) as pool:
        list(pool.map(_ceiling_one, photos[: workers * 2], [size] * workers * 2, [detail] * workers * 2))  # start-up
        t0 = time.perf_counter()
        done = sum(pool.map(_ceiling_one, photos, [size] * len(photos), [detail] * len(photos), chunksize=8))
        seconds = time.perf_counter() - t0
    return {"photos": done, "workers": workers, "seconds": seconds, "images_per_s": done / seconds if seconds else 0.0}


def bench_extract(
    model_path: Path,
    photo_dir: Path,
    provider: str,
    batch_size: int,
    workers: int,
    segmenter: Path | None = None,
    cpu_streams: int | None = None,
    processes: bool | None = None,
    ceiling: bool = True,
    output_size: str = "model",
    decode: str = "host",
) -> dict[str, Any]:
    """Time ``extract`` on a folder of real photos, with each stage's share of the work (threads
    only) and, in the same run, the host ceiling it is read against. ``decode``: as extract's
    ``--decode`` (the result says where the photos were decoded, and why not on the GPU)."""
    from ..runtime.gpudecode import open_decoder
    from ..runtime.jobs import find_jobs
    from ..runtime.options import ExtractOptions, generator_outputs
    from ..runtime.pipeline import run_extraction
    from ..runtime.stages import DETAIL_FACTOR

    session_settings = SessionSettings(cpu_streams=cpu_streams)
    # model-size outputs by default: what the host ceiling encodes, so the two compare
    options = ExtractOptions(batch_size=batch_size, workers=workers, processes=processes, output_size=output_size)
    outputs = generator_outputs(options.background, options.fill, options.output_size)
    model = CountedRuns(ModelSession(model_path, provider, settings=session_settings, outputs=outputs))
    seg_session = CountedRuns(ModelSession(segmenter, provider, settings=session_settings)) if segmenter else None
    decoder, decode_note = open_decoder(decode, model.provider)
    clock = StageClock()
    with tempfile.TemporaryDirectory(prefix="ce-bench-") as out:
        jobs = find_jobs([photo_dir], Path(out), "png", recursive=True)
        if not jobs:
            raise ValueError(f"no photos in {photo_dir}")
        cpu, main = time.process_time(), time.thread_time()
        with PoolThreadsCpu() as pool_threads:
            summary = run_extraction(model, jobs, options, segmenter=seg_session, clock=clock, decoder=decoder)
        cpu, main = time.process_time() - cpu, time.thread_time() - main
    in_models = model.cpu_s + (seg_session.cpu_s if seg_session is not None else 0.0)
    stage_total = sum(clock.seconds.values()) or 1.0
    result = {
        "photos": len(jobs),
        "ok": summary.ok,
        "failed": summary.failed,
        "provider": model.provider,
        "batch": batch_size,
        "workers": workers,
        "worker_kind": "processes" if options.use_processes else "threads",
        "cpu_streams": model.cpu_streams,
        "segmenter": segmenter.name if segmenter is not None else None,
        "output_size": output_size,
        "decode": "gpu" if decoder is not None else "host",
        "decoded": dict(summary.decoded),
        "crossed": dict(summary.crossed),  # worker processes' tasks: arrays in shared memory, or pickled
        "decode_note": decode_note or None,
        "seconds": summary.seconds,
        "images_per_s": summary.ok / summary.seconds if summary.seconds else 0.0,
        "stage_seconds": clock.seconds,
        "stage_share": {k: v / stage_total for k, v in clock.seconds.items()},
        # the calling process's CPU per photo extracted (all its threads; with worker processes, not
        # theirs) and its main thread's, and how much of that went to the models' runs: serial work
        # that bounds the rate at 1000 / ms photos/s where the models are fast (a GPU); on the CPU
        # provider the models' own threads are in the process's; with worker processes, the pool's
        # own threads (``PoolThreadsCpu``), which share the main thread's GIL
        "calling_cpu_ms": {
            "process": cpu * 1000 / max(summary.ok, 1),
            "main_thread": main * 1000 / max(summary.ok, 1),
            "main_thread_in_models": in_models * 1000 / max(summary.ok, 1),
            "pool_threads": None if pool_threads.seconds is None else pool_threads.seconds * 1000 / max(summary.ok, 1),
        },
        "ceiling": None,
        "vs_ceiling": None,
    }
    if ceiling:
        seg = seg_session.contract if seg_session is not None else model.contract
        detail = (seg.height * DETAIL_FACTOR, seg.width * DETAIL_FACTOR)
        result["ceiling"] = host_ceiling([job.photo for job in jobs], model.contract.size, detail, workers)
        if result["ceiling"]["images_per_s"]:
            result["vs_ceiling"] = result["images_per_s"] / result["ceiling"]["images_per_s"]
    return result
