"""Run a TensorRT engine directly: execution context, device buffers, no onnxruntime.

``export --tensorrt`` writes ``MODEL.engine`` and the sidecar ``MODEL.engine.json`` (the
model contract, the batch profile, the GPU and TensorRT version it was built for).
``EngineSession`` refuses an engine built for another GPU or TensorRT version, then
serves it with the ``ModelSession`` interface (``contract``, ``run``, ``require_task``):
device buffers allocated once and grown when a larger batch comes, host->device copy,
``execute_async_v3`` and the copy back on one CUDA stream. Batches above the profile's
maximum are split, batches below its minimum padded.

Written to TensorRT's documented Python API (``tensorrt`` >= 10) and CUDA's runtime API
as cuda-python exposes it (``cuda.bindings.runtime``; ``cuda.cudart`` in older releases).
Both come with ``pip install "clothes-extractor[tensorrt]"``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependencyError, ModelError
from .contract import METADATA_KEY, TASK_IO, ModelContract
from .session import check_feeds, empty_output

log = logging.getLogger(__name__)

PROVIDER = "tensorrt-engine"


def import_tensorrt(purpose: str = "Building a TensorRT engine") -> Any:
    try:
        import tensorrt
    except ImportError:
        raise MissingDependencyError("tensorrt", "tensorrt", purpose) from None
    return tensorrt


def import_cudart() -> Any:
    """CUDA's runtime API from cuda-python."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError:
            raise MissingDependencyError("cuda-python", "tensorrt", "Running a TensorRT engine") from None
    return cudart


def current_gpu() -> dict[str, Any]:
    from ..bench.fingerprint import gpu_info

    gpu = gpu_info()
    if gpu is None:
        raise ModelError("TensorRT needs an NVIDIA GPU, and nvidia-smi finds none here")
    return gpu


def check_engine(sidecar: dict[str, Any], gpu: dict[str, Any], tensorrt_version: str) -> None:
    """Refuse an engine built for another GPU or TensorRT version, saying which differs."""
    problems = []
    built = sidecar.get("gpu", {})
    if built.get("name") != gpu.get("name"):
        problems.append(f"it was built on a {built.get('name')}, this GPU is a {gpu.get('name')}")
    if built.get("compute_capability") != gpu.get("compute_capability"):
        problems.append(f"compute capability {built.get('compute_capability')} vs {gpu.get('compute_capability')} here")
    if sidecar.get("tensorrt") != tensorrt_version:
        problems.append(f"TensorRT {sidecar.get('tensorrt')} built it, this is TensorRT {tensorrt_version}")
    if problems:
        raise ModelError("this TensorRT engine cannot run here: " + "; ".join(problems) + ". Build it again here")


def load_engine_sidecar(engine_path: Path, tensorrt_version: str) -> dict[str, Any]:
    """The sidecar of ``engine_path``, checked against this machine's GPU and TensorRT."""
    sidecar_path = Path(f"{engine_path}.json")
    if not sidecar_path.is_file():
        raise ModelError(f"{engine_path} has no sidecar {sidecar_path.name}: build it with `export --tensorrt`")
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{sidecar_path} is not a readable engine sidecar: {exc}") from None
    check_engine(sidecar, current_gpu(), tensorrt_version)
    return sidecar


class EngineSession:
    """A TensorRT engine served like ``ModelSession``: ``run(image=..., mask=...)`` -> uint8 array."""

    provider = PROVIDER
    cpu_streams = 1  # a batch runs whole on the GPU

    def __init__(self, path: str | Path, device_id: int = 0):
        started = time.perf_counter()
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"engine not found: {self.path}")
        trt = import_tensorrt("Running a TensorRT engine")
        self._cudart = cudart = import_cudart()
        sidecar = load_engine_sidecar(self.path, trt.__version__)
        self.contract = ModelContract.from_metadata(
            {METADATA_KEY: json.dumps(sidecar.get("contract"))}, source=f"{self.path}.json"
        )
        profile = sidecar.get("profile", {})
        self.min_batch, self.max_batch = int(profile.get("min", 1)), int(profile.get("max", 1))
        self._call(cudart.cudaSetDevice(device_id), "cudaSetDevice")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise ModelError(f"TensorRT could not load {self.path} (see its log above)")
        self._context = self._engine.create_execution_context()
        names = {self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)}
        inputs, outputs = TASK_IO[self.contract.task]
        wanted = {*inputs, *outputs}
        if names != wanted:
            raise ModelError(f"{self.path}: engine tensors {sorted(names)}, the contract wants {sorted(wanted)}")
        self.input_names = list(inputs)
        self._output = next(iter(outputs))
        self._stream = self._call(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self.load_ms = (time.perf_counter() - started) * 1000  # deserializing + the execution context

    def _call(self, result: Any, what: str) -> Any:
        """cuda-python returns (error, *values): raise on an error, return the value(s)."""
        error, *values = result if isinstance(result, tuple) else (result,)
        if int(error) != 0:
            raise ModelError(f"{what} failed: {error}")
        return values[0] if len(values) == 1 else tuple(values) or None

    def _device(self, name: str, nbytes: int) -> int:
        pointer, capacity = self._buffers.get(name, (0, 0))
        if capacity < nbytes:
            if pointer:
                self._call(self._cudart.cudaFree(pointer), "cudaFree")
            pointer = int(self._call(self._cudart.cudaMalloc(nbytes), "cudaMalloc"))
            self._buffers[name] = (pointer, nbytes)
        return pointer

    def require_task(self, task: str) -> "EngineSession":
        if self.contract.task != task:
            raise ModelError(f"{self.path} is a {self.contract.task} engine; a {task} is needed here")
        return self

    def run(self, **arrays: np.ndarray) -> np.ndarray:
        """Run one batch of any size (split above the profile's maximum, padded below its minimum)."""
        feeds = check_feeds(self.contract, arrays)
        batch = len(next(iter(feeds.values())))
        if batch == 0:
            return empty_output(self.contract)
        parts = [
            self._run_chunk({name: array[start : start + self.max_batch] for name, array in feeds.items()})
            for start in range(0, batch, self.max_batch)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _run_chunk(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        cudart, context = self._cudart, self._context
        batch = len(next(iter(feeds.values())))
        for name, array in feeds.items():
            if batch < self.min_batch:
                padded = np.zeros((self.min_batch, *array.shape[1:]), np.uint8)
                padded[:batch] = array
                array = padded
            context.set_input_shape(name, array.shape)
            pointer = self._device(name, array.nbytes)
            copy = cudart.cudaMemcpyAsync(
                pointer, array.ctypes.data, array.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self._stream
            )
            self._call(copy, "cudaMemcpyAsync (upload)")
            # The source must outlive the asynchronous copy: keep it until the stream syncs.
            feeds[name] = array
            context.set_tensor_address(name, pointer)
        output = np.empty(tuple(context.get_tensor_shape(self._output)), np.uint8)
        pointer = self._device(self._output, output.nbytes)
        context.set_tensor_address(self._output, pointer)
        if not context.execute_async_v3(int(self._stream)):
            raise ModelError(f"TensorRT failed to run {self.path} on a batch of {batch}")
        download = cudart.cudaMemcpyAsync(
            output.ctypes.data, pointer, output.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self._stream
        )
        self._call(download, "cudaMemcpyAsync (download)")
        self._call(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return output[:batch]

    def close(self) -> None:
        """Free the device buffers and the stream (also done when the session is collected)."""
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        for pointer, _ in getattr(self, "_buffers", {}).values():
            cudart.cudaFree(pointer)
        self._buffers = {}
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the CUDA module may be gone already
            pass
