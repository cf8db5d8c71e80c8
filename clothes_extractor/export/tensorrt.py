"""ONNX model -> TensorRT engine, with a sidecar that says where the engine can run.

Written to TensorRT's documented Python API (``tensorrt`` >= 10). An engine only runs on
the GPU model and TensorRT version it was built with, so ``MODEL.engine`` gets
``MODEL.engine.json`` beside it: the model contract, the optimisation profile, the GPU
name and compute capability and the TensorRT version; ``runtime.engine.EngineSession``
runs it and refuses an engine whose sidecar does not match the machine, with the reason.

Precision: TensorRT 10 takes fp16 as a builder flag on an fp32 network; TensorRT 11
removed that flag and takes precision from the ONNX types, so there an fp16 engine needs
an fp16 ONNX file (``export --precision fp16``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import ExportError
from ..runtime.contract import TASK_IO, ModelContract
from ..runtime.engine import check_engine, current_gpu, import_tensorrt

__all__ = ["build_engine", "check_engine", "import_tensorrt"]

log = logging.getLogger(__name__)


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    *,
    min_batch: int = 1,
    opt_batch: int = 32,
    max_batch: int = 128,
    fp16: bool = True,
    workspace_gib: float = 4.0,
    timing_cache: Path | None = None,
) -> dict[str, Any]:
    """Build ``engine_path`` (and its sidecar) from the served ONNX model; returns the sidecar."""
    trt = import_tensorrt()
    from ..runtime.session import ModelSession

    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ExportError(f"batch profile must satisfy 1 <= min <= opt <= max, got {min_batch}/{opt_batch}/{max_batch}")
    contract: ModelContract = ModelSession(onnx_path, "cpu").contract
    gpu = current_gpu()
    major = int(trt.__version__.split(".")[0])
    has_fp16_flag = hasattr(trt.BuilderFlag, "FP16")
    if fp16 and not has_fp16_flag and contract.precision != "fp16":
        raise ExportError(
            f"TensorRT {trt.__version__} takes precision from the ONNX types: export the model with "
            "--precision fp16 to build an fp16 engine"
        )
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode since TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * 2**30))
    if fp16 and has_fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    h, w = contract.size
    for name, channels in TASK_IO[contract.task][0].items():
        profile.set_shape(name, (min_batch, h, w, channels), (opt_batch, h, w, channels), (max_batch, h, w, channels))
    config.add_optimization_profile(profile)
    cache_bytes = timing_cache.read_bytes() if timing_cache is not None and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    temp = engine_path.with_name(f".{engine_path.name}.partial")
    temp.write_bytes(bytes(serialized))
    os.replace(temp, engine_path)
    if timing_cache is not None:
        timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    sidecar = {
        "contract": json.loads(next(iter(contract.to_metadata().values()))),
        "onnx": str(Path(onnx_path).name),
        "profile": {"min": min_batch, "opt": opt_batch, "max": max_batch},
        "fp16": bool(fp16),
        "gpu": {"name": gpu["name"], "compute_capability": gpu["compute_capability"]},
        "tensorrt": trt.__version__,
        "tensorrt_major": major,
    }
    Path(f"{engine_path}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    log.info("built %s for %s (TensorRT %s)", engine_path, gpu["name"], trt.__version__)
    return sidecar
