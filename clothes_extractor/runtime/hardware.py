"""Facts about this machine the runtime decides by: cores, GPUs, onnxruntime distributions."""

from __future__ import annotations

import functools
import glob
import importlib.metadata
import os
import shutil
import subprocess
from pathlib import Path

# Distributions that install the `onnxruntime` import package. Any two of them in one
# environment overwrite each other's files; the GPU providers then vanish.
ORT_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-silicon",
)


def distribution_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def onnxruntime_distributions() -> dict[str, str]:
    """Installed distributions that provide ``import onnxruntime``, name -> version."""
    found = {}
    for dist in ORT_DISTRIBUTIONS:
        version = distribution_version(dist)
        if version is not None:
            found[dist] = version
    return found


def conflicting_onnxruntime_warning(dists: dict[str, str]) -> str | None:
    """The fix for two onnxruntime distributions installed together, or None."""
    if len(dists) < 2:
        return None
    names = ", ".join(dists)
    if "onnxruntime-gpu" in dists:
        reinstall = 'pip install "clothes-extractor[gpu]"'  # brings the CUDA and cuDNN wheels back too
    else:
        reinstall = f"pip install {next(iter(dists))}"
    return (
        f"{names} are installed together: they overwrite each other's files and the GPU "
        f"providers break. Fix: pip uninstall -y {' '.join(dists)} && {reinstall}"
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


@functools.lru_cache(maxsize=1)
def gpu_names() -> tuple[str, ...]:
    """ "name, driver" of each NVIDIA GPU nvidia-smi sees; empty without a driver."""
    return tuple(nvidia_smi("--query-gpu=name,driver_version", "--format=csv,noheader"))


def has_nvidia_gpu() -> bool:
    """Whether an NVIDIA GPU is visible: nvidia-smi lists one, or the driver's device files exist."""
    return bool(gpu_names()) or Path("/proc/driver/nvidia/version").exists() or bool(glob.glob("/dev/nvidia[0-9]*"))


@functools.lru_cache(maxsize=1)
def physical_cores() -> int:
    """Cores this process may run on, counting SMT siblings once (as onnxruntime does)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: logical CPUs (SMT or not, the threads then cover every core)
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        try:
            siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip()
        except OSError:
            siblings = str(cpu)
        cores.add(siblings)
    return max(1, len(cores))


def cpu_stream_plan(settings) -> tuple[int, int]:
    """(streams, intra-op threads per stream) for the CPU provider under ``settings``
    (a ``SessionSettings``): by default 2 streams where there are 2 or more cores."""
    cores = settings.intra_op_threads or physical_cores()
    streams = settings.cpu_streams if settings.cpu_streams is not None else min(2, cores)
    if streams < 1:
        raise ValueError(f"cpu_streams must be >= 1, got {streams}")
    return streams, max(1, cores // streams)
