"""What this machine offers the runtime, as data: ``clothes-extractor info`` prints it."""

from __future__ import annotations

import platform
from typing import Any

from .arena import SHM_DIR, shared_memory_free
from .colour import colour_management
from .hardware import (
    conflicting_onnxruntime_warning,
    cpu_stream_plan,
    distribution_version,
    gpu_names,
    onnxruntime_distributions,
    physical_cores,
)
from .providers import PROVIDERS, RTX_PLUGIN, SessionSettings, import_onnxruntime, probe_provider, short_provider_name


def shared_memory_line() -> str:
    """Where worker processes' arrays cross (``arena``), and how much room it has."""
    free = shared_memory_free()
    if free is None:
        return "room not known here (no /dev/shm): worker processes' arrays cross in shared memory if it is made"
    return f"{free / 2**30:.1f} GiB free in {SHM_DIR} (worker processes' arrays cross there; a job takes at most half)"


def environment_info(probe: bool = True) -> dict[str, Any]:
    """Versions, onnxruntime distributions, GPUs, CPU plan and which providers start here.

    ``info["problems"]`` lists what keeps the runtime from working at all (no or a broken
    onnxruntime); ``info`` exits non-zero when it is not empty.
    """
    dists = onnxruntime_distributions()
    heif = distribution_version("pillow-heif")
    gpus = list(gpu_names())
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": distribution_version("numpy"),
        "Pillow": distribution_version("Pillow"),
        "onnxruntime distributions": dists,
        "gpus": gpus or "none (no NVIDIA GPU found)",
        "cpu": "{} cores; a CPU batch runs as {} streams of {} thread(s) (--cpu-streams)".format(
            physical_cores(), *cpu_stream_plan(SessionSettings())
        ),
        "shared memory": shared_memory_line(),
        "rtx plugin": distribution_version(RTX_PLUGIN.replace("_", "-")) or "not installed",
        "heic photos": f"pillow-heif {heif}" if heif else 'not read (pip install "clothes-extractor[heif]")',
        "colour profiles": colour_management(),
        "problems": [],
    }
    info["warning"] = conflicting_onnxruntime_warning(dists)
    try:
        ort = import_onnxruntime()
        available = ort.get_available_providers()
    except Exception as exc:  # noqa: BLE001 - reported, not raised: info must always print
        info["onnxruntime"] = None
        info["providers"] = {}
        info["problems"].append(f"onnxruntime does not import: {exc}")
        return info
    info["onnxruntime"] = getattr(ort, "__version__", "unknown")
    providers: dict[str, str] = {}
    for short, name in PROVIDERS.items():
        if short == "rtx":
            if not probe:
                providers[short] = "plugin (not probed)"
                continue
            ok, detail = probe_provider(short)
            providers[short] = detail if ok else f"FAILS: {detail}"
        elif name not in available:
            providers[short] = "not in this onnxruntime build"
        elif probe:
            ok, detail = probe_provider(short)
            providers[short] = detail if ok else f"FAILS: {detail}"
            if short == "cpu" and not ok:
                info["problems"].append(f"the CPU provider does not start: {detail}")
        else:
            providers[short] = "available (not probed)"
    info["providers"] = providers
    info["other providers"] = [short_provider_name(p) for p in available if p not in PROVIDERS.values()]
    return info
