"""Catalog scale: the folder job on a Ray cluster, built from the runtime's own stages.

    walk (one read task, ``jobsource``)  ->  prepare (Ray tasks, CPUs)  ->  segment + finish +
        generate (actor pool: the models, loaded once per actor; one actor per GPU with
        num_gpus=1)  ->  write (Ray tasks)

Ray Data streams the photos through these operators with backpressure; its actor pools
restart a dead actor and retry its batch (``max_restarts`` / ``max_task_retries`` default
to unlimited for Ray Data actors). The stages are ``runtime.stages``': the same photo gives
the same bytes as local ``extract`` on the CPU provider. Photos and outputs can live on any
filesystem pyarrow reaches (``s3://``, ``gs://``, ``file://``) as well as local paths: a
remote photo is fetched by the task that prepares it; an output is uploaded in one PUT
(object stores have no rename; a PUT is complete or absent). A local photo waiting for the
segmenter goes to the actor without its decoded pixels (``NeedsMask.light``): the actor
decodes it again for a closer look and ``finish``, as local ``extract`` does.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import tempfile
import threading
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import MissingDependencyError
from ..runtime.jobs import ExtractJob
from ..runtime.options import ExtractOptions, make_plan
from ..runtime.resume import already_done
from ..runtime.signature import check_replaceable, read_signature
from ..runtime.stages import (
    ExtractionSummary,
    FileResult,
    NeedsMask,
    Plan,
    Prepared,
    SegmentedMask,
    describe_error,
    finish,
    output_format,
    prepare,
    segment,
    write,
)
from ..runtime.walk import MaskSource
from .jobsource import JobWalk, find_remote_jobs, is_remote, pack, read_jobs, rows_per_block, unpack
from .quiet import RAY_FALSE_ALARM, stderr_without
from .stopped import clear_once, end_stopped, note_folder, output_folders

log = logging.getLogger(__name__)


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingDependencyError("ray[data]", "ray", "Running extract on Ray") from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """How the job uses the cluster. ``actors``: model actors per model (default: one per GPU,
    else one); ``gpus_per_actor``: 1 on GPU nodes (None: 1 when the cluster has GPUs)."""

    address: str | None = None  # None: a local Ray on this machine
    actors: int | None = None
    gpus_per_actor: float | None = None
    cpus_per_actor: float = 1.0
    provider: str = "auto"
    num_cpus: int | None = None  # for the local Ray only
    extract: ExtractOptions = field(default_factory=ExtractOptions)


def _fetch(job: ExtractJob, folder: Path) -> ExtractJob:
    """A job whose remote photo (and mask) are local files in ``folder``."""
    import pyarrow.fs as pafs

    def local(uri: str, name: str) -> Path:
        fs, path = pafs.FileSystem.from_uri(uri)
        target = folder / f"{name}{Path(path).suffix}"
        with fs.open_input_stream(path) as stream:
            target.write_bytes(stream.read())
        return target

    photo = local(str(job.photo), "photo") if is_remote(str(job.photo)) else job.photo
    mask = job.mask
    if mask.path is not None and is_remote(str(mask.path)):
        mask = MaskSource(mask.kind, local(str(mask.path), "mask"))
    return ExtractJob(photo, job.output, mask, job.error, job.mask_output, stamp=job.stamp)


def _remote_already_done(uri: str, job: ExtractJob, plan: Plan, overwrite: bool) -> bool:
    """``resume.already_done`` for an output at a URI: whether it holds this run's result; an
    ``OutputError`` for a file there that this tool did not write (kept unless ``overwrite``)."""
    import pyarrow.fs as pafs

    if overwrite:
        return False
    fs, path = pafs.FileSystem.from_uri(uri)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / Path(path).name
        with fs.open_input_stream(path) as stream:
            local.write_bytes(stream.read())
        check_replaceable(local, shown_as=uri)
        return plan.wrote(read_signature(local, output_format(local)), job.mask, job.stamp)


def prepare_row(row: dict[str, Any], plan: Plan, overwrite: bool) -> dict[str, bytes]:
    """Ray task: a job -> a fitted photo, a photo for the segmenter, a skip or an error."""
    job: ExtractJob = unpack(row)
    if job.error is not None:  # known when the folder was walked
        return pack(FileResult(str(job.photo), "error", None, job.error, None))
    try:
        output = str(job.output)
        if is_remote(output):
            done = _remote_already_done(output, job, plan, overwrite)  # someone else's file there: this job's error
        else:
            done = already_done(job, plan, overwrite)
        if done:
            return pack(FileResult(str(job.photo), "skipped", output, None, None))
        if is_remote(str(job.photo)) or (job.mask.path is not None and is_remote(str(job.mask.path))):
            with tempfile.TemporaryDirectory(prefix="ce-ray-") as tmp:
                item = prepare(_fetch(job, Path(tmp)), plan)
                if isinstance(item, NeedsMask):  # finish decodes the photo again: it must stay reachable
                    item.job = replace(job, stamp=item.job.stamp)  # (with the digest of the bytes read)
        else:  # light: the model actor decodes the photo again for a closer look and ``finish``
            item = prepare(job, plan)
            item = item.light() if isinstance(item, NeedsMask) else item
    except Exception as exc:  # noqa: BLE001 - reported per photo, the job goes on
        source = job.mask.describe() if job.mask.kind != "auto" else None
        return pack(FileResult(str(job.photo), "error", None, describe_error(exc), source))
    return pack(item)


class ModelStage:
    """Actor: the models, loaded once. A batch's photos that need a mask are segmented (with
    the zoomed second look) and fitted; then every fitted photo goes through the generator,
    grouped by output size. One actor class for both models: one actor start per actor."""

    def __init__(self, generator: str, segmenter: str | None, provider: str, plan: Plan):
        from ..api import new_session
        from ..runtime.options import generator_outputs

        outputs = generator_outputs(plan.background, plan.fill, plan.canvas)
        self.generator = new_session(generator, provider, outputs=outputs)
        self.segmenter = new_session(segmenter, provider) if segmenter else None
        self.plan = plan

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        items = [pickle.loads(payload) for payload in batch["payload"]]
        waiting = [i for i, item in enumerate(items) if isinstance(item, NeedsMask)]
        if waiting:
            found = segment([items[i] for i in waiting], self.segmenter)
            for i, mask in zip(waiting, found, strict=True):
                items[i] = self._finish(items[i], mask)
        self._generate(items)
        return {"payload": [pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL) for item in items]}

    def _finish(self, item: NeedsMask, mask: SegmentedMask | Exception) -> Prepared | FileResult:
        job = item.job
        try:
            if not isinstance(mask, SegmentedMask):
                raise mask
            if is_remote(str(job.photo)):
                with tempfile.TemporaryDirectory(prefix="ce-ray-") as tmp:
                    item.job = _fetch(job, Path(tmp))
                    prepared = finish(item, mask, self.plan)
                prepared.job = job
                return prepared
            return finish(item, mask, self.plan)
        except Exception as exc:  # noqa: BLE001 - reported per photo, the job goes on
            return FileResult(str(job.photo), "error", None, describe_error(exc), "segmenter")

    def _generate(self, items: list) -> None:
        groups: dict[tuple, list[int]] = {}
        for i, item in enumerate(items):
            if isinstance(item, Prepared) and item.ready is not None:  # a garment shown alone, cut out already
                items[i] = (item, item.ready)
            elif isinstance(item, Prepared):
                groups.setdefault(item.batch_key, []).append(i)
        for indices in groups.values():
            try:
                names = items[indices[0]].inputs
                outputs = self.generator.run(**{n: np.stack([items[i].inputs[n] for i in indices]) for n in names})
            except Exception as exc:  # noqa: BLE001 - reported per photo
                for i in indices:
                    job = items[i].job
                    message = f"inference failed: {describe_error(exc)}"
                    items[i] = FileResult(str(job.photo), "error", None, message, items[i].mask_source)
                continue
            for row, i in enumerate(indices):
                items[i] = (items[i], {name: array[row] for name, array in outputs.items()})


def write_row(row: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """Ray task: encode and write one garment (or pass a result through); the result record."""
    item = unpack(row)
    if isinstance(item, FileResult):
        return {"result": item.to_json()}
    prepared, outputs = item
    if not is_remote(str(prepared.job.output)):
        clear_once(Path(prepared.job.output).parent)
        return {"result": write(prepared, outputs, plan).to_json()}
    job = prepared.job
    try:
        import pyarrow.fs as pafs

        data, size = plan.encoded(outputs, output_format(Path(str(job.output))), job.mask, job.stamp)
        fs, path = pafs.FileSystem.from_uri(str(job.output))
        fs.create_dir(str(Path(path).parent), recursive=True)
        with fs.open_output_stream(path) as stream:  # one PUT: complete or absent
            stream.write(data)
    except Exception as exc:  # noqa: BLE001 - one bad output must not stop the folder
        return {"result": FileResult(str(job.photo), "error", str(job.output), describe_error(exc)).to_json()}
    return {
        "result": FileResult(str(job.photo), "ok", str(job.output), None, prepared.mask_source, None, size).to_json()
    }


def run_on_ray(
    generator: str | Path,
    segmenter: str | Path | None,
    jobs: Iterable[ExtractJob],
    options: RayOptions,
    on_result: Callable[[FileResult], None] | None = None,
    total: int | None = None,
) -> ExtractionSummary:
    """Extract every job's garment on Ray; ``on_result`` sees each file's result (driver side).

    ``generator`` / ``segmenter``: a model file or a bundled model's task name, opened in the
    actors (and once on the driver, for the contracts). ``jobs``: a ``JobWalk`` (walked in
    the cluster: the driver never holds the list) or a list; ``total``: how many there are
    (a walk's ``count()``; a list's length by default), which sizes the prepare tasks.
    """
    import time

    from ..api import new_session

    ray = import_ray()
    summary = ExtractionSummary()
    started = time.perf_counter()
    total = len(jobs) if total is None else total  # type: ignore[arg-type]
    with (
        new_session(str(generator), "cpu") as gen,
        new_session(str(segmenter), "cpu") if segmenter else _Nothing() as seg,
    ):
        plan = make_plan(gen, seg if segmenter else None, options.extract)
    if total:
        started_here = not ray.is_initialized() and not options.address  # (a local Ray: ended here if stopped)
        _init(ray, options)
        dataset = _dataset(ray, jobs, total, str(generator), str(segmenter) if segmenter else None, plan, options)
        chatty = logging.getLogger().isEnabledFor(logging.DEBUG)
        rows = iter(dataset.iter_rows())
        recent: dict[str, None] = {}  # the output folders written last
        try:
            with stderr_without(RAY_FALSE_ALARM, enabled=not chatty):  # (after ray.init: see ``quiet``)
                for row in rows:
                    record = row["result"]
                    record["size"] = tuple(record["size"]) if record.get("size") is not None else None
                    result = FileResult(**record)
                    summary.add(result)
                    if result.output is not None and not is_remote(result.output):
                        note_folder(recent, os.path.dirname(result.output))  # (no Path made a result)
                    if on_result is not None:
                        on_result(result)
        except BaseException:  # Ctrl-C, SIGTERM (or a failure)
            if started_here:
                end_stopped(ray, rows, [*output_folders(jobs), *recent])
            raise
    summary.seconds = time.perf_counter() - started
    return summary


class _Nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc: object) -> None:
        pass


def _init(ray: Any, options: RayOptions) -> None:
    """Join or start Ray. The notes of a local Ray this job starts (which instance, token
    authentication) and Ray Data's note that its progress bars are off (the job prints its
    own) stay off the user's terminal unless ``-vv``, as onnxruntime's do; Ray Data's
    warnings (a job that cannot get its resources, say) and a cluster's still reach it.

    The process's SIGTERM handling is as it was before: ``ray.init`` replaces it (Python's handler by
    one that exits 15, the C level by Ray's crash handler: a SIGTERM, ``docker stop``, printed
    "*** SIGTERM received ..." and a stack of addresses, and the job exited 15, or aborted where
    the whole process group had it; the command's own handling: 143, "terminated"). A SIGTERM
    while Ray starts is taken as before too, where Ray's Python handler has it; the last seconds
    of a local Ray's start are its crash handler's still."""
    if ray.is_initialized():
        return
    chatty = logging.getLogger().isEnabledFor(logging.DEBUG)
    main_thread = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main_thread else None
    try:
        if options.address:
            ray.init(address=options.address, log_to_driver=False)
        else:
            level = logging.INFO if chatty else logging.ERROR
            ray.init(num_cpus=options.num_cpus, include_dashboard=False, log_to_driver=False, logging_level=level)
    except SystemExit as exc:  # Ray's handler, ``sys.exit(15)``: a SIGTERM while Ray started
        if sigterm is None or exc.code != signal.SIGTERM:
            raise
        signal.signal(signal.SIGTERM, sigterm)
        os.kill(os.getpid(), signal.SIGTERM)  # taken as it would have been: the command's "terminated", 143
        raise  # (where that handler lets it pass: Ray's exit)
    if sigterm is not None:
        signal.signal(signal.SIGTERM, sigterm)  # (Python's handler back at the C level too)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.INFO if chatty else logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.INFO if chatty else logging.ERROR)
    if not chatty:  # a small job has fewer blocks than prepare tasks: a tuning note, not the user's concern
        warnings.filterwarnings("ignore", message="The maximum number of concurrent tasks for", category=UserWarning)


def _dataset(
    ray: Any,
    jobs: Iterable[ExtractJob],
    total: int,
    generator: str,
    segmenter: str | None,
    plan: Plan,
    options: RayOptions,
):
    gpus, cpus = ray.cluster_resources().get("GPU", 0), int(ray.cluster_resources().get("CPU", 1))
    per_actor = options.gpus_per_actor if options.gpus_per_actor is not None else (1.0 if gpus else 0.0)
    actors = options.actors or (max(1, int(gpus // per_actor)) if per_actor else 1)
    provider = options.provider if options.provider != "auto" or per_actor else "cpu"
    batch = options.extract.batch_size
    data = read_jobs(ray, jobs, rows_per_block(total, cpus))
    # Prepare (decode, fit) in tasks of its own, one CPU each. Ray fuses a map into the actor
    # pool after it when their resources match (CPU actors), and one actor would then decode
    # every photo of its batches in turn. A task pool whose size differs from the actor
    # pool's is never fused: at most one prepare task per CPU of the cluster. (GPU actors'
    # resources differ anyway; their prepare tasks are left unbounded, for autoscaling.)
    bound: dict[str, Any] = {}
    if not per_actor and cpus != actors:
        pool = getattr(ray.data, "TaskPoolStrategy", None)  # Ray 2.51+; before, concurrency=N said it
        bound = {"compute": pool(size=cpus)} if pool is not None else {"concurrency": cpus}
    data = data.map(prepare_row, fn_kwargs={"plan": plan, "overwrite": options.extract.overwrite}, **bound)
    actor_args = {
        "compute": ray.data.ActorPoolStrategy(size=actors),
        "num_cpus": options.cpus_per_actor,
        "batch_format": "numpy",
        "batch_size": batch,
    }
    if per_actor:
        actor_args["num_gpus"] = per_actor
    arguments = {"generator": generator, "segmenter": segmenter, "provider": provider, "plan": plan}
    data = data.map_batches(ModelStage, fn_constructor_kwargs=arguments, **actor_args)
    return data.map(write_row, fn_kwargs={"plan": plan})


__all__ = ["JobWalk", "RayOptions", "find_remote_jobs", "is_remote", "run_on_ray"]
