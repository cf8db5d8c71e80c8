"""TensorRT through onnxruntime's TensorRT provider: the one TensorRT route of the project.

``build_tensorrt_cache`` starts a TensorRT session on an exported model with the batch
profile the runtime uses, runs one batch at the profile's optimum, and so leaves the
built engine (and the timing cache) in the provider's cache folder for this GPU, where
every later session of that model finds it instead of building it again (minutes).
The code is written to onnxruntime's documented provider options; no machine of this
project has TensorRT's libnvinfer, so it has never run here (see the README).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import ProviderError
from ..runtime.providers import SessionSettings, tensorrt_cache_dir, tensorrt_runtime_loads
from ..runtime.session import ModelSession

log = logging.getLogger(__name__)


def build_tensorrt_cache(
    onnx_path: Path, batch: tuple[int, int, int] = (1, 32, 128), fp16: bool = True, cache_dir: Path | None = None
) -> Path:
    """Build the TensorRT engine of ``onnx_path`` into its cache folder; that folder."""
    if not tensorrt_runtime_loads():
        raise ProviderError(
            "TensorRT's runtime library (libnvinfer 10) does not load here: install TensorRT "
            '(pip install "clothes-extractor[tensorrt]") on a machine with an NVIDIA GPU'
        )
    if not 1 <= batch[0] <= batch[1] <= batch[2]:
        raise ValueError(f"batch profile must satisfy 1 <= min <= opt <= max, got {batch}")
    cache = cache_dir or tensorrt_cache_dir()
    settings = SessionSettings(trt_fp16=fp16, trt_batch=batch, trt_cache_dir=cache)
    with ModelSession(onnx_path, "tensorrt", settings=settings) as session:
        contract = session.contract
        feeds = {spec.name: np.zeros((batch[1], *contract.size, spec.channels), np.uint8) for spec in contract.inputs}
        session.run(**feeds)
    log.info("TensorRT engine of %s cached in %s", onnx_path, cache)
    return cache
