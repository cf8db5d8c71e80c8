"""A served model in an onnxruntime session: the one session type of the runtime.

``ModelSession(path, provider)`` reads the file, checks the weights against the checksum
its contract recorded at export, reads the contract, starts the session and checks the
graph against the contract; ``run(**inputs)`` returns every output by name (``outputs=``
opens the model cut to the outputs the caller reads: onnxruntime would compute the others
anyway). Providers come from ``providers`` (auto order, explicit-or-error, quiet start);
``cpu_streams`` splits a CPU batch into parts run side by side, and a CPU batch runs
``CPU_ROWS_PER_RUN`` rows at a time.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Collection, Iterable

import numpy as np

from ..errors import ContractError, ModelError
from .contract import TASK_OUTPUTS, ModelContract, TensorSpec
from .hardware import cpu_stream_plan
from .onnxfile import keep_outputs, read_onnx
from .providers import SessionSettings, create_session

log = logging.getLogger(__name__)

Outputs = dict[str, np.ndarray]

# On the CPU a batch runs this many rows at a time: throughput does not grow past a few rows
# (2-core EPYC, generator: 74 images/s at batch 8, 73 at 16 to 64; parser 159 -> 168), while
# onnxruntime's activations grow with the rows and its arena keeps their peak for the rest of
# the process (extract --batch-size 512 on 504 VITON photos: 10.3 GB, against 0.6 GB at 8).
CPU_ROWS_PER_RUN = 16


def check_feeds(contract: ModelContract, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs of one batch, checked against the contract (names, dtype, shape, batch), C-contiguous."""
    want = {spec.name: spec for spec in contract.inputs}
    if set(arrays) != set(want):
        raise ValueError(f"this {contract.task} takes {sorted(want)}, got {sorted(arrays)}")
    batch = None
    feeds = {}
    for name, spec in want.items():
        array = arrays[name]
        if spec.resolution == "model":
            ok_size, wanted = array.shape[1:3] == contract.size, f"{contract.height}, {contract.width}"
        else:
            ok_size, wanted = array.ndim == 4 and min(array.shape[1:3]) >= 1, "H, W"
        if array.dtype != np.uint8 or array.ndim != 4 or not ok_size or array.shape[3] != spec.channels:
            raise ValueError(
                f"{name} must be uint8 [N, {wanted}, {spec.channels}], got {array.dtype} {list(array.shape)}"
            )
        if batch is None:
            batch = array.shape[0]
        elif array.shape[0] != batch:
            raise ValueError(f"batch sizes differ: {batch} and {array.shape[0]} ({name})")
        feeds[name] = np.ascontiguousarray(array)
    return feeds


def pad_batch(arrays: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Each array grown along the batch axis to ``size`` with zeros (the one padding helper)."""
    padded = {}
    for name, array in arrays.items():
        if len(array) == size:
            padded[name] = array
            continue
        grown = np.zeros((size, *array.shape[1:]), array.dtype)
        grown[: len(array)] = array
        padded[name] = grown
    return padded


def _output_shape(spec: TensorSpec, contract: ModelContract, feeds: dict[str, np.ndarray]) -> tuple[int, ...]:
    photo = feeds["photo"].shape[1:3] if "photo" in feeds else None
    return (*spec.plane(contract.size, photo), spec.channels)


class ModelSession:
    """A served model, loaded and checked against its contract, ready for batches.

    ``outputs``: the outputs the caller reads, in any order (None: all the contract's), or a
    function of the model's contract that says them (where they depend on the model: its
    aspect); the graph is cut to them before the session starts, so the others cost nothing (a
    generator whose silhouette is not read takes 30% less time on the CPU). Usable as a context
    manager; ``close`` releases the session (and the provider's memory).
    """

    def __init__(
        self,
        path: str | Path,
        provider: str = "auto",
        *,
        settings: SessionSettings | None = None,
        outputs: Collection[str] | Callable[[ModelContract], Collection[str] | None] | None = None,
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}")
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read the model file {self.path}: {exc.strerror or exc}") from None
        if not data:
            raise ModelError(f"model file is empty (0 bytes): {self.path}")
        onnx_file = read_onnx(data, str(self.path))
        self.metadata: dict[str, str] = onnx_file.metadata
        self.digest = onnx_file.graph_sha256  # of the graph and weights: which model wrote an output
        self.contract = ModelContract.from_metadata(self.metadata, source=str(self.path))
        expected = self.contract.weights_sha256
        if expected and expected != onnx_file.graph_sha256:
            raise ModelError(
                f"{self.path} is damaged: its graph and weights do not match the checksum recorded at "
                "export (a truncated or corrupted copy?). Copy or download the model again"
            )
        self.settings = settings or SessionSettings()
        if self.settings.tf32 is None and self.contract.precision == "fp32":  # fp32 arithmetic, as exported
            self.settings = dataclasses.replace(self.settings, tf32=False)
        given = [spec.name for spec in self.contract.outputs]
        if callable(outputs):
            outputs = outputs(self.contract)
        if outputs is not None and (not outputs or not set(outputs) <= set(given)):
            wanted = next((task for task, specs in TASK_OUTPUTS.items() if set(outputs) & {o.name for o in specs}), "")
            if wanted:  # (a model of another task given for this one: said as such)
                self.require_task(wanted)
            raise ModelError(
                f"{self.path} is a {self.contract.task} model giving {', '.join(given)}; "
                f"it cannot serve outputs {sorted(outputs)}"
            )
        self.output_names = [name for name in given if outputs is None or name in outputs]
        data = onnx_file.data
        if len(self.output_names) < len(given):
            data = keep_outputs(data, frozenset(self.output_names))
        shapes = {s.name: (*self.contract.size, s.channels) for s in self.contract.inputs if s.resolution == "model"}
        self.session, self.provider = create_session(
            data, provider, settings=self.settings, source=self.path, shapes=shapes
        )
        self.contract.check_graph(
            [(i.name, i.type, i.shape) for i in self.session.get_inputs()],
            [(o.name, o.type, o.shape) for o in self.session.get_outputs()],
            source=str(self.path),
            serving=self.output_names,
        )
        self.input_names = [spec.name for spec in self.contract.inputs]
        pad = self.settings.pad_batches
        self._pad = self.provider != "cpu" if pad is None else pad
        self._largest: dict[tuple, int] = {}  # largest batch per input shape, for padding
        self._data = data  # for the CPU streams' sessions
        # (parts a CPU batch runs as, threads of each part's session)
        self._stream_plan = cpu_stream_plan(self.settings) if self.provider == "cpu" else (1, 0)
        self._lanes: list[Any] = []  # the streams' sessions, opened at the first batch that splits
        self._lanes_lock = threading.Lock()
        self._lane_pool: ThreadPoolExecutor | None = None
        log.info("loaded %s on %s", self.path, self.provider)

    @property
    def task(self) -> str:
        return self.contract.task

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        """The contract's outputs this session gives (all, unless it was opened for fewer)."""
        return tuple(spec for spec in self.contract.outputs if spec.name in self.output_names)

    def require_task(self, task: str) -> "ModelSession":
        """This session, or ``ModelError`` if its model serves another task."""
        if self.contract.task != task:
            raise ModelError(f"{self.path} is a {self.contract.task} model; a {task} is needed here")
        return self

    @property
    def cpu_streams(self) -> int:
        """How many parts a CPU batch is split into (1 on GPU providers)."""
        return self._stream_plan[0]

    def run(self, **arrays: np.ndarray) -> Outputs:
        """Run one batch: ``run(image=[N,H,W,3] uint8, mask=[N,H,W,1] uint8)`` -> outputs by name."""
        if self.session is None:
            raise ModelError(f"the session on {self.path} is closed; open a new one (new_session) to run it")
        feeds = check_feeds(self.contract, arrays)
        batch = len(next(iter(feeds.values())))
        if batch == 0:
            return {
                spec.name: np.zeros((0, *_output_shape(spec, self.contract, feeds)), np.uint8)
                for spec in self.output_specs
            }
        shapes = tuple(a.shape[1:] for a in feeds.values())
        largest = self._largest.get(shapes, 0)
        if self._pad and batch < largest:
            outputs = self.session.run(self.output_names, pad_batch(feeds, largest))
            return {name: out[:batch] for name, out in zip(self.output_names, outputs, strict=True)}
        self._largest[shapes] = max(largest, batch)
        if self.provider == "cpu" and batch > CPU_ROWS_PER_RUN:
            chunks = [
                self._run_rows({k: v[a : a + CPU_ROWS_PER_RUN] for k, v in feeds.items()})
                for a in range(0, batch, CPU_ROWS_PER_RUN)
            ]
            return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in self.output_names}
        return self._run_rows(feeds)

    def _run_rows(self, feeds: dict[str, np.ndarray]) -> Outputs:
        batch = len(next(iter(feeds.values())))
        if self.cpu_streams > 1 and batch > 1:
            return self._run_streams(feeds, batch)
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds), strict=True))

    def _run_streams(self, feeds: dict[str, np.ndarray], batch: int) -> Outputs:
        """The batch split into ``cpu_streams`` parts, run at once on the streams' sessions.

        One run synchronises its threads at every operator and leaves cores idle while its
        ConvTranspose scatters columns back on one thread; runs side by side fill the gaps
        (2-core EPYC, batch 8: 145 -> 230 images/s for the ngf-16 U-Net).
        """
        with self._lanes_lock:
            if not self._lanes:
                streams, threads = self._stream_plan
                lane_settings = dataclasses.replace(self.settings, intra_op_threads=threads, cpu_streams=1)
                self._lanes = [
                    create_session(self._data, "cpu", settings=lane_settings, source=self.path)[0]
                    for _ in range(streams)
                ]
                self._lane_pool = ThreadPoolExecutor(streams, thread_name_prefix="cpu-stream")
        assert self._lane_pool is not None
        bounds = np.linspace(0, batch, min(len(self._lanes), batch) + 1).round().astype(int)
        parts = [
            self._lane_pool.submit(lane.run, self.output_names, {k: v[a:b] for k, v in feeds.items()})
            for lane, a, b in zip(self._lanes, bounds[:-1], bounds[1:], strict=False)
        ]
        results = [part.result() for part in parts]
        return {name: np.concatenate([r[i] for r in results]) for i, name in enumerate(self.output_names)}

    def trim(self) -> None:
        """Give back the CPU memory onnxruntime's arena holds after a run (it grows to the
        largest run's activations and keeps them: the bundled try-on model, 250 MB after a
        batch of 8), for a job that runs another model next or goes idle; the next batch
        grows it again. One one-row run with arena shrinkage on each of the session's CPU
        sessions (~20 ms). Nothing to do on a GPU provider, or before the first run."""
        if self.provider != "cpu" or self.session is None or not self._largest:
            return
        import onnxruntime

        shapes = next(iter(self._largest))  # (a row shape this session has run)
        feeds = {name: np.zeros((1, *shape), np.uint8) for name, shape in zip(self.input_names, shapes, strict=True)}
        options = onnxruntime.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        for session in (self.session, *self._lanes):
            session.run(self.output_names, feeds, options)

    def close(self) -> None:
        """Release the sessions and their threads; the object cannot run afterwards."""
        if self._lane_pool is not None:
            self._lane_pool.shutdown(wait=True)
            self._lane_pool = None
        self._lanes = []
        self.session = None

    def __enter__(self) -> "ModelSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """The model as ``info`` and ``serve`` report it."""
        return {
            "path": str(self.path),
            "provider": self.provider,
            "contract": self.contract.to_json(),
            "inputs": [dataclasses.asdict(spec) for spec in self.contract.inputs],
            "outputs": [dataclasses.asdict(spec) for spec in self.output_specs],
        }


def trim_memory(sessions: Iterable[ModelSession | None]) -> None:
    """Give back the CPU memory a finished stage or a quiet server holds: each session's
    onnxruntime arena (``ModelSession.trim``), then the C heap's free pages (glibc's
    ``malloc_trim``: the photos, batches and outputs a stage freed stay in the heap, in
    pieces, otherwise). ``serve`` after a burst from 16 clients on the 2-core CPU: 583 MB
    kept, 267 MB trimmed (the arenas alone: ~400). The heap's step needs glibc (Linux)."""
    for session in sessions:
        if session is not None:
            session.trim()
    heap_trim = _heap_trim()
    if heap_trim is not None:
        heap_trim(0)


@functools.cache
def _heap_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # (glibc; musl has none)
    except (OSError, AttributeError):
        return None


def contract_of(path: str | Path) -> ModelContract:
    """The contract of an ONNX model file, read without starting a session."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read the model file {path}: {exc.strerror or exc}") from None
    return ModelContract.from_metadata(read_onnx(data, str(path)).metadata, source=str(path))


__all__ = ["ContractError", "ModelSession", "Outputs", "SessionSettings", "check_feeds", "contract_of", "pad_batch"]
