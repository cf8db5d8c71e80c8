"""IO binding on CUDA: device buffers allocated once per input shape, optional CUDA graphs.

Benchmark-only: ``bench --io device|pipelined`` and ``--cuda-graph`` time what a
device-resident or copy-overlapping caller of the runtime would see; ``extract`` is
host-bound and runs ``ModelSession.run``.

``session.run`` with numpy arrays allocates device memory and copies on every call; here
each batch size gets input and output buffers on the GPU once, inputs are copied into
them in place, and with CUDA graphs the whole launch sequence of that batch size is
replayed from one graph (onnxruntime's ``gpu_graph_id`` run option; a graph needs fixed
shapes and addresses, which the per-size buffers give). A batch of a size with no graph
yet is padded up to the next captured size, so a short tail batch reuses a graph.

``PipelinedRunner`` keeps several such buffer sets and overlaps the upload of the next
batch and the download of the previous one with the compute of the current one.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

from ..runtime.session import check_feeds, pad_batch

_GRAPH_NUMBERS: dict[int, Iterator[int]] = {}


def graph_numbers(model: Any) -> Iterator[int]:
    """The CUDA graph numbers of ``model``'s session: runners sharing a session never reuse one."""
    return _GRAPH_NUMBERS.setdefault(id(model.session), itertools.count())


@dataclass
class _Buffers:
    inputs: dict[str, Any]  # name -> OrtValue on the GPU
    outputs: dict[str, Any]
    binding: Any
    graph_id: int


class BoundRunner:
    """Batches through preallocated CUDA buffers; ``run`` takes and returns numpy arrays."""

    def __init__(
        self,
        model: Any,
        cuda_graph: bool,
        device: str = "cuda",
        device_id: int = 0,
        pad: bool | None = None,
        graph_ids: Iterator[int] | None = None,
    ):
        """``device`` "cpu" runs the same buffer logic on the CPU provider (used by tests);
        ``pad`` (default: with CUDA graphs) pads batches up to an allocated size;
        ``graph_ids``: where graph numbers come from (default: the session's own counter, so
        runners sharing a session never reuse a number)."""
        import onnxruntime as ort

        self._ort = ort
        self.model = model
        self.cuda_graph = cuda_graph
        self.device, self.device_id = device, device_id
        self.pad = cuda_graph if pad is None else pad
        self._buffers: dict[tuple, _Buffers] = {}
        self._sizes: dict[tuple, list[int]] = {}  # allocated batch sizes per input shapes
        self._graph_ids = graph_ids if graph_ids is not None else graph_numbers(model)

    def _allocate(self, batch: int, shapes: dict[str, tuple[int, ...]]) -> _Buffers:
        ort, session, contract = self._ort, self.model.session, self.model.contract
        inputs = {
            name: ort.OrtValue.ortvalue_from_shape_and_type([batch, *shape], np.uint8, self.device, self.device_id)
            for name, shape in shapes.items()
        }
        binding = session.io_binding()
        for name, value in inputs.items():
            binding.bind_ortvalue_input(name, value)
        outputs = {}
        for spec in self.model.output_specs:
            size = spec.plane(contract.size, shapes["photo"][:2] if "photo" in shapes else None)
            outputs[spec.name] = ort.OrtValue.ortvalue_from_shape_and_type(
                [batch, *size, spec.channels], np.uint8, self.device, self.device_id
            )
            binding.bind_ortvalue_output(spec.name, outputs[spec.name])
        buffers = _Buffers(inputs, outputs, binding, graph_id=next(self._graph_ids))
        key = self._key(batch, shapes)
        self._buffers[key] = buffers
        bisect.insort(self._sizes.setdefault(key[1], []), batch)
        return buffers

    @staticmethod
    def _key(batch: int, shapes: dict[str, tuple[int, ...]]) -> tuple[int, tuple]:
        return batch, tuple(sorted(shapes.items()))

    def _size_for(self, batch: int, shapes: dict[str, tuple[int, ...]]) -> int:
        key = self._key(batch, shapes)
        if not self.pad or key in self._buffers:
            return batch
        sizes = self._sizes.get(key[1], [])
        index = bisect.bisect_left(sizes, batch)
        return sizes[index] if index < len(sizes) else batch

    def warm_up(self, batch_sizes: list[int], photo: tuple[int, int] | None = None) -> None:
        """Allocate (and with CUDA graphs, capture) every batch size before serving."""
        contract = self.model.contract
        for batch in batch_sizes:
            feeds = {
                spec.name: np.zeros((batch, *(photo or contract.size), spec.channels), np.uint8)
                if spec.resolution == "photo"
                else np.zeros((batch, *contract.size, spec.channels), np.uint8)
                for spec in contract.inputs
            }
            self.run(**feeds)

    def upload(self, arrays: dict[str, np.ndarray]) -> tuple[_Buffers, int]:
        """Copy one batch into its shape's device buffers (padded where that size is larger)."""
        arrays = check_feeds(self.model.contract, arrays)
        batch = len(next(iter(arrays.values())))
        shapes = {name: tuple(array.shape[1:]) for name, array in arrays.items()}
        size = self._size_for(batch, shapes)
        buffers = self._buffers.get(self._key(size, shapes)) or self._allocate(size, shapes)
        if size != batch:
            arrays = pad_batch(arrays, size)
        for name, array in arrays.items():
            buffers.inputs[name].update_inplace(array)
        return buffers, batch

    def compute(self, buffers: _Buffers) -> None:
        """Run the model on uploaded buffers (replaying the shape's CUDA graph if enabled)."""
        run_options = self._ort.RunOptions()
        if self.cuda_graph:
            run_options.add_run_config_entry("gpu_graph_id", str(buffers.graph_id))
        self.model.session.run_with_iobinding(buffers.binding, run_options)
        buffers.binding.synchronize_outputs()

    def download(self, buffers: _Buffers, batch: int) -> dict[str, np.ndarray]:
        """The outputs of the last compute on ``buffers`` as new numpy arrays."""
        # A GPU buffer's numpy() is a copy; a CPU buffer's is a view the next batch overwrites.
        copy = self.device == "cpu"
        return {
            name: (value.numpy()[:batch].copy() if copy else value.numpy()[:batch])
            for name, value in buffers.outputs.items()
        }

    def run(self, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        buffers, batch = self.upload(arrays)
        self.compute(buffers)
        return self.download(buffers, batch)


class PipelinedRunner:
    """Batches through ``slots`` sets of device buffers, three stages in flight.

    While batch k computes, batch k+1 is copied to the device on one thread and batch k-1's
    output is copied back on another (onnxruntime releases the GIL in all three), so a
    numpy-in/numpy-out stream hides most copy time behind compute. Results come back in
    order. Three slots are needed: a slot is reused for upload only after its previous
    output has been downloaded. Every batch size is warmed up (with CUDA graphs: captured)
    one slot at a time before streaming, since a capture must not see copies from other
    threads.
    """

    def __init__(
        self,
        model: Any,
        cuda_graph: bool,
        device: str = "cuda",
        device_id: int = 0,
        slots: int = 3,
        graph_ids: Iterator[int] | None = None,
    ):
        if slots < 3:
            raise ValueError("a pipeline of upload, compute and download needs at least 3 buffer slots")
        ids = graph_ids if graph_ids is not None else graph_numbers(model)
        self._slots = [BoundRunner(model, cuda_graph, device, device_id, graph_ids=ids) for _ in range(slots)]
        self._copies = ThreadPoolExecutor(2, thread_name_prefix="ce-copy")

    def warm_up(self, batch_sizes: list[int]) -> None:
        for runner in self._slots:
            runner.warm_up(batch_sizes)

    def close(self) -> None:
        self._copies.shutdown(wait=True)

    def __enter__(self) -> "PipelinedRunner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        """One batch, no overlap (as ``BoundRunner.run``)."""
        return self._slots[0].run(**arrays)

    def map(self, batches: Iterable[dict[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
        """Outputs of ``batches`` (dicts of input arrays), in order, copies overlapped with compute."""
        slots = len(self._slots)
        source = iter(batches)
        downloads: deque[Future] = deque()
        first = next(source, None)
        if first is None:
            return
        upload = self._copies.submit(self._slots[0].upload, first)
        for k in itertools.count():
            runner = self._slots[k % slots]
            buffers, batch = upload.result()
            following = next(source, None)
            if following is not None:
                # Slot (k+1) % slots last held batch k+1-slots: its output must be home first.
                while len(downloads) > slots - 2:
                    yield downloads.popleft().result()
                upload = self._copies.submit(self._slots[(k + 1) % slots].upload, following)
            runner.compute(buffers)
            downloads.append(self._copies.submit(runner.download, buffers, batch))
            if following is None:
                break
        while downloads:
            yield downloads.popleft().result()
