"""What a Ray job reads: the command's photos as jobs, walked in the cluster as the job goes.

The driver holds a ``JobWalk`` (the inputs, the output, the settings) and a count, never a
list of the jobs: one Ray read task walks the folders (``runtime.jobs.iter_jobs``, or a
pyarrow listing for ``s3://``-style URIs) and streams the jobs out, pickled, a block of
rows at a time; a streaming repartition cuts them into small blocks, so the photos are
prepared by many tasks at once. The driver's memory barely moves with the folder's size.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..runtime.jobs import ExtractJob, MaskIndex, count_jobs, iter_jobs
from ..runtime.records import file_stamp
from ..runtime.walk import MaskSource

REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "hdfs://", "abfs://", "file://")
# Jobs per prepare task, at most: every Ray task costs tens of milliseconds to schedule, which a
# resume run (mostly skips) feels: 65,536 done photos on 2 cores took 74 s in blocks of 256, 31 s in
# blocks of 1,024. A small job gets four tasks per CPU instead.
ROWS_PER_BLOCK = 1024
ROWS_PER_READ = 1024  # pickled jobs per block the walk yields (Ray merges them up to its block size)


def is_remote(path: str) -> bool:
    return str(path).startswith(REMOTE_SCHEMES)


def find_remote_jobs(inputs: Iterable[str], out_dir: str, fmt: str, recursive: bool) -> list[ExtractJob]:
    """Jobs for photos under pyarrow-reachable URIs (``s3://bucket/prefix``); outputs under ``out_dir``."""
    import pyarrow.fs as pafs

    from ..runtime.images import IMAGE_SUFFIXES

    jobs = []
    for uri in inputs:
        fs, root = pafs.FileSystem.from_uri(uri)
        prefix = uri[: len(uri) - len(root)] if uri.endswith(root) else uri.split(root)[0]
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.File:
            entries = [info]
            base = str(Path(root).parent)
        elif info.type == pafs.FileType.Directory:
            entries = fs.get_file_info(pafs.FileSelector(root, recursive=recursive))
            base = root
        else:
            jobs.append(ExtractJob(uri, out_dir, MaskSource("auto"), error=f"input not found: {uri}"))
            continue
        for entry in sorted(entries, key=lambda e: e.path):
            name = Path(entry.path).name
            if (
                entry.type != pafs.FileType.File
                or name.startswith(".")
                or Path(name).suffix.lower() not in IMAGE_SUFFIXES
            ):
                continue
            rel = str(Path(entry.path).relative_to(base).with_suffix(""))
            output = f"{out_dir.rstrip('/')}/{rel}.{fmt}"
            # URIs stay strings: Path would fold "s3://" into "s3:/"
            target = output if is_remote(out_dir) else Path(output)
            jobs.append(ExtractJob(prefix + entry.path, target, MaskSource("auto"), stamp=object_stamp(entry)))
    return jobs


def object_stamp(info: Any) -> str | None:
    """A listed object's size and modification time (ns), as ``runtime.records.input_state`` records
    a local photo's (``SIZE:MTIME``): a rerun redoes the output of a photo uploaded again under
    its name (its store gives it a new time). None where the store gives no time."""
    if info.size is None or info.mtime_ns is None:
        return None
    return file_stamp(info.size, info.mtime_ns)


@dataclass(frozen=True)
class JobWalk:
    """A command's photos as jobs, found where they are iterated (in a Ray read task): local
    ``inputs`` as ``extract`` walks them, ``remote`` URIs through pyarrow, outputs under
    ``output`` (a folder or a URI: a local photo's output is then rebuilt under the URI, and
    masks are not saved beside it). Holds no job: it pickles small whatever the folder."""

    inputs: tuple[Path, ...]
    remote: tuple[str, ...]
    output: str
    fmt: str
    masks: Path | None = None
    recursive: bool = False
    save_masks: Path | None = None
    listing: Path | None = None  # --files-from: the photos it names under the one local input folder

    def __iter__(self) -> Iterator[ExtractJob]:
        if self.inputs:
            base = Path(self.output)  # a URI folded into a path ("s3:/..."): rebuilt below
            masks = MaskIndex(self.masks) if self.masks is not None else None
            walk = iter_jobs(self.inputs, base, self.fmt, masks, self.recursive, self.save_masks, listing=self.listing)
            for job in walk:
                if is_remote(self.output):
                    rel = Path(job.output).relative_to(base).as_posix()
                    job = dataclasses.replace(job, output=f"{self.output.rstrip('/')}/{rel}", mask_output=None)
                yield job
        if self.remote:
            yield from find_remote_jobs(self.remote, self.output, self.fmt, self.recursive)

    def count(self) -> int:
        """How many jobs the walk gives (local folders walked keeping nothing; URIs listed)."""
        total = 0
        if self.inputs:
            output = Path(self.output)
            total += count_jobs(self.inputs, output, self.recursive, self.save_masks, self.masks, listing=self.listing)
        if self.remote:
            total += len(find_remote_jobs(self.remote, self.output, self.fmt, self.recursive))
        return total


def pack(value: Any) -> dict[str, bytes]:
    return {"payload": pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)}


def unpack(row: dict[str, Any]) -> Any:
    return pickle.loads(row["payload"])


def rows_per_block(total: int, cpus: float) -> int:
    """Jobs per prepare task: four tasks per CPU for a small job, at most ``ROWS_PER_BLOCK``."""
    return max(1, min(ROWS_PER_BLOCK, math.ceil(total / max(1.0, 4 * cpus))))


def read_jobs(ray: Any, jobs: Iterable[ExtractJob], rows: int) -> Any:
    """A Ray dataset of ``jobs`` (a ``JobWalk`` or a list), rows ``{"payload": pickled ExtractJob}``
    in blocks of at most ``rows``. One read task iterates them, taking no CPU (the walk waits on
    the filesystem; the CPUs are the prepare tasks'). Ray merges what a read task yields up to
    its block size in bytes (~400,000 jobs), so a streaming repartition cuts the blocks."""
    import pyarrow as pa
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    def read() -> Iterator[Any]:
        payloads: list[bytes] = []
        for job in jobs:
            payloads.append(pack(job)["payload"])
            if len(payloads) == ROWS_PER_READ:
                yield pa.table({"payload": pa.array(payloads, pa.binary())})
                payloads = []
        if payloads:
            yield pa.table({"payload": pa.array(payloads, pa.binary())})

    class Jobs(Datasource):
        def estimate_inmemory_data_size(self) -> None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None):
            metadata = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=None)
            return [ReadTask(read, metadata)]

    data = ray.data.read_datasource(Jobs(), override_num_blocks=1, num_cpus=0)
    return data.repartition(target_num_rows_per_block=rows)


__all__ = ["JobWalk", "find_remote_jobs", "is_remote", "read_jobs", "rows_per_block"]
