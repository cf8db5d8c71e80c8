"""What this machine offers the runtime: versions, onnxruntime distribution, providers, GPU."""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import subprocess
from typing import Any

# Distributions that install the `onnxruntime` import package. Any two of them in one
# environment overwrite each other's files; the GPU providers then vanish.
ORT_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-silicon",
)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def onnxruntime_distributions() -> dict[str, str]:
    """Installed distributions that provide ``import onnxruntime``, name -> version."""
    found = {}
    for dist in ORT_DISTRIBUTIONS:
        version = _version(dist)
        if version is not None:
            found[dist] = version
    return found


def conflicting_onnxruntime_warning(dists: dict[str, str]) -> str | None:
    if len(dists) < 2:
        return None
    names = ", ".join(dists)
    keep = "onnxruntime-gpu" if "onnxruntime-gpu" in dists else next(iter(dists))
    others = " ".join(d for d in dists if d != keep)
    return (
        f"{names} are installed together: they overwrite each other's files and the CUDA "
        f"provider breaks. Fix: pip uninstall -y {' '.join(dists)} && pip install {keep}"
        + (f"  (dropping {others})" if others else "")
    )


def nvidia_smi(*args: str) -> list[str]:
    """The non-empty output lines of ``nvidia-smi ARGS``; empty without a driver or on failure."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, *args], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def gpu_names() -> list[str]:
    """ "name, driver" of each NVIDIA GPU nvidia-smi sees; empty without a driver."""
    return nvidia_smi("--query-gpu=name,driver_version", "--format=csv,noheader")


def environment_info(probe: bool = True) -> dict[str, Any]:
    """Everything ``clothes-extractor info`` prints, as data."""
    from .. import __version__
    from ..models import MODELS_DIR
    from .session import (
        PROVIDERS,
        SessionSettings,
        cpu_stream_plan,
        import_onnxruntime,
        physical_cores,
        probe_provider,
        short_provider_name,
    )

    info: dict[str, Any] = {
        "clothes-extractor": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": _version("numpy"),
        "Pillow": _version("Pillow"),
        "onnxruntime distributions": onnxruntime_distributions(),
        "gpus": gpu_names(),
        "cpu": "{} cores; a CPU batch runs as {} streams of {} thread(s) (--cpu-streams)".format(
            physical_cores(), *cpu_stream_plan(SessionSettings())
        ),
        "bundled models": sorted(p.name for p in MODELS_DIR.glob("*.onnx")),
    }
    info["warning"] = conflicting_onnxruntime_warning(info["onnxruntime distributions"])
    # Running TensorRT engines directly (`--model MODEL.engine`) needs both of these.
    trt, cuda = _version("tensorrt"), _version("cuda-bindings") or _version("cuda-python")
    info["tensorrt engines"] = (
        f"tensorrt {trt}, cuda-python {cuda}"
        if trt and cuda
        else 'not installed: pip install "clothes-extractor[tensorrt]"'
    )
    try:
        ort = import_onnxruntime()
    except Exception as exc:  # noqa: BLE001 - reported, not raised: info must always print
        info["onnxruntime"] = None
        info["onnxruntime error"] = str(exc)
        info["providers"] = {}
        return info
    info["onnxruntime"] = getattr(ort, "__version__", "unknown")
    available = ort.get_available_providers()
    providers: dict[str, str] = {}
    for short, name in PROVIDERS.items():
        if name not in available:
            providers[short] = "not in this onnxruntime build"
        elif probe:
            ok, detail = probe_provider(short)
            providers[short] = detail if ok else f"FAILS: {detail}"
        else:
            providers[short] = "available (not probed)"
    info["providers"] = providers
    info["other providers"] = [short_provider_name(p) for p in available if p not in PROVIDERS.values()]
    return info
