"""IO binding on CUDA: device buffers allocated once per batch size, optional CUDA graphs.

``session.run`` with numpy arrays allocates device memory and copies on every call; here
each batch size gets input and output buffers on the GPU once, inputs are copied into
them in place, and with CUDA graphs the whole launch sequence of that batch size is
replayed from one graph (onnxruntime's ``gpu_graph_id`` run option; a graph needs fixed
shapes and addresses, which the per-size buffers give). A batch of a size with no graph
yet is padded up to the next captured size, so a short tail batch reuses a graph.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

import numpy as np

from .contract import TASK_IO


@dataclass
class _Buffers:
    inputs: dict[str, Any]  # name -> OrtValue on the GPU
    output: Any
    binding: Any
    graph_id: int


class BoundRunner:
    """Batches through preallocated CUDA buffers; ``run`` takes and returns numpy arrays."""

    def __init__(self, model: Any, cuda_graph: bool, device: str = "cuda", device_id: int = 0, pad: bool | None = None):
        """``device`` "cpu" runs the same buffer logic on the CPU provider (used by tests);
        ``pad`` (default: with CUDA graphs) pads batches up to an allocated size."""
        import onnxruntime as ort

        self._ort = ort
        self.model = model
        self.cuda_graph = cuda_graph
        self.device, self.device_id = device, device_id
        self.pad = cuda_graph if pad is None else pad
        self._buffers: dict[int, _Buffers] = {}
        self._sizes: list[int] = []

    def _allocate(self, batch: int) -> _Buffers:
        ort, session = self._ort, self.model.session
        h, w = self.model.contract.size
        inputs_spec, outputs_spec = TASK_IO[self.model.contract.task]
        inputs = {
            name: ort.OrtValue.ortvalue_from_shape_and_type([batch, h, w, c], np.uint8, self.device, self.device_id)
            for name, c in inputs_spec.items()
        }
        ((out_name, out_channels),) = outputs_spec.items()
        output = ort.OrtValue.ortvalue_from_shape_and_type(
            [batch, h, w, out_channels], np.uint8, self.device, self.device_id
        )
        binding = session.io_binding()
        for name, value in inputs.items():
            binding.bind_ortvalue_input(name, value)
        binding.bind_ortvalue_output(out_name, output)
        buffers = _Buffers(inputs, output, binding, graph_id=len(self._buffers))
        self._buffers[batch] = buffers
        bisect.insort(self._sizes, batch)
        return buffers

    def _size_for(self, batch: int) -> int:
        if not self.pad or batch in self._buffers:
            return batch
        index = bisect.bisect_left(self._sizes, batch)
        return self._sizes[index] if index < len(self._sizes) else batch

    def warm_up(self, batch_sizes: list[int]) -> None:
        """Allocate (and with CUDA graphs, capture) every batch size before serving."""
        for batch in batch_sizes:
            h, w = self.model.contract.size
            feeds = {
                name: np.zeros((batch, h, w, c), np.uint8) for name, c in TASK_IO[self.model.contract.task][0].items()
            }
            self.run(**feeds)

    def run(self, **arrays: np.ndarray) -> np.ndarray:
        batch = len(next(iter(arrays.values())))
        size = self._size_for(batch)
        buffers = self._buffers.get(size) or self._allocate(size)
        for name, array in arrays.items():
            if size != batch:
                padded = np.zeros((size, *array.shape[1:]), np.uint8)
                padded[:batch] = array
                array = padded
            buffers.inputs[name].update_inplace(np.ascontiguousarray(array))
        run_options = self._ort.RunOptions()
        if self.cuda_graph:
            run_options.add_run_config_entry("gpu_graph_id", str(buffers.graph_id))
        self.model.session.run_with_iobinding(buffers.binding, run_options)
        return buffers.output.numpy()[:batch]
