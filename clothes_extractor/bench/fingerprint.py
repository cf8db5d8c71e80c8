"""What a result was measured on: CPU, GPU, driver, CUDA, library versions, the model, the date."""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import os
import platform
import re
from pathlib import Path
from typing import Any

from ..runtime.hardware import nvidia_smi


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _onnxruntime() -> tuple[str | None, str | None]:
    """Version and build (CPU or GPU) of the onnxruntime that imports here: the module's own
    word, as a wheel unpacked onto PYTHONPATH can shadow another distribution's metadata."""
    try:
        import onnxruntime
    except ImportError:
        return None, None
    gpu = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    return onnxruntime.__version__, "onnxruntime-gpu" if gpu else "onnxruntime"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info() -> dict[str, Any] | None:
    """Name, driver, memory and CUDA version of the first NVIDIA GPU, or None."""
    rows = nvidia_smi("--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader")
    if not rows:
        return None
    name, driver, memory, *cap = [part.strip() for part in rows[0].split(",")]
    cuda = None
    header = nvidia_smi()
    for line in header[:6]:
        match = re.search(r"CUDA Version:\s*([\d.]+)", line)
        if match:
            cuda = match.group(1)
    return {
        "name": name,
        "driver": driver,
        "memory": memory,
        "compute_capability": cap[0] if cap else None,
        "cuda": cuda,
        "count": len(rows),
    }


def model_fingerprint(path: Path, contract: Any) -> dict[str, Any]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "file": path.name,
        "sha256": digest,
        "bytes": path.stat().st_size,
        "task": contract.task,
        "precision": contract.precision,
        "input": [contract.height, contract.width],
        "architecture": contract.training.get("architecture"),
    }


def machine_fingerprint(label: str | None = None) -> dict[str, Any]:
    """Everything about this machine and its software that a benchmark number depends on."""
    gpu = gpu_info()
    cpu = cpu_name()
    ort_version, ort_build = _onnxruntime()
    return {
        "label": label or (gpu["name"] if gpu else cpu),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": gpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "clothes-extractor": _version("clothes-extractor"),
            "onnxruntime": ort_version,
            "onnxruntime-distribution": ort_build,
            "tensorrt": _version("tensorrt"),
            "torch": _version("torch"),
            "numpy": _version("numpy"),
            "Pillow": _version("Pillow"),
        },
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
