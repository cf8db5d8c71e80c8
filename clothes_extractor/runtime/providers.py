"""Execution providers: which one a session gets, how it is set up, and a quiet, honest start.

``auto`` tries TensorRT, then CUDA, then the CPU and reports which one it got. A provider
asked for by name either starts or raises ``ProviderError`` with the reason: onnxruntime
falls back to the CPU silently when a GPU provider fails to load, so the providers the
session really got are checked after it is created. onnxruntime's own messages (library
load errors, plugin warnings, its Python ``print`` of fallbacks) are captured while a GPU
session starts: the user sees our one-line reason, and ``-vv`` shows what was captured.

TensorRT runs through onnxruntime's TensorRT provider only (one route): engines and
timing caches live on disk, keyed by GPU, with a batch profile so one engine serves every
batch size; ``export --tensorrt`` builds that cache ahead of time. TensorRT for RTX
(``rtx``) is onnxruntime's plugin provider for GeForce/RTX GPUs, from its own wheel.
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import MissingDependencyError, ModelError, ProviderError
from .hardware import gpu_names, has_nvidia_gpu, onnxruntime_distributions

log = logging.getLogger(__name__)

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "rtx": "NvTensorRTRTXExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
AUTO_ORDER = ("tensorrt", "cuda", "cpu")  # rtx only when asked for: its wheel is the user's choice
PROVIDER_CHOICES = ("auto", *PROVIDERS)
GPU_INSTALL = 'pip uninstall -y onnxruntime && pip install "clothes-extractor[gpu]"'

# A one-node ONNX model (Relu on a float[1]), 84 bytes: enough to see whether a provider
# starts without shipping a model file or needing the onnx package at run time.
PROBE_MODEL = base64.b64decode(
    "CAgSEWNsb3RoZXMtZXh0cmFjdG9yOjcKDAoBeBIBeSIEUmVsdRIFcHJvYmVaDwoBeBIKCggIARIECgIIAWIPCgF5EgoKCAgBEgQKAggBQgQKABAN"
)
TENSORRT_LIBRARIES = ("libnvinfer.so.10", "libnvinfer.so", "nvinfer_10.dll", "nvinfer.dll")
RTX_PLUGIN = "onnxruntime_ep_nv_tensorrt_rtx"  # import name of the TensorRT-RTX plugin wheel


def import_onnxruntime() -> Any:
    """onnxruntime, quietened (errors only), or an error that says which extra to install."""
    # numpy first, from Python: onnxruntime's C module imports it while it starts, where a
    # Ctrl-C becomes "import numpy failed" and a traceback printed from C, not an interrupt
    import numpy  # noqa: F401

    try:
        import onnxruntime
    except ImportError as exc:
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None  # Ctrl-C while the C module started (pybind11 wraps it)
        if isinstance(exc, ModuleNotFoundError) and exc.name == "onnxruntime":
            raise MissingDependencyError(
                "onnxruntime", "cpu", "Running a model (use the [gpu] extra on an NVIDIA machine)"
            ) from None
        raise ProviderError(
            f"onnxruntime is installed but does not import ({exc}); a package it needs is missing or of "
            'another version: reinstall it, pip install --force-reinstall "clothes-extractor[cpu]" '
            "(or [gpu])"
        ) from None
    onnxruntime.set_default_logger_severity(3)
    return onnxruntime


def provider_name(short: str) -> str:
    try:
        return PROVIDERS[short]
    except KeyError:
        raise ProviderError(f"unknown provider {short!r}; choose one of {', '.join(PROVIDER_CHOICES)}") from None


def short_provider_name(ort_name: str) -> str:
    for short, name in PROVIDERS.items():
        if name == ort_name:
            return short
    return ort_name


def tensorrt_runtime_loads() -> bool:
    """Whether TensorRT's runtime library (libnvinfer 10), which its provider needs, loads here."""
    import ctypes

    for name in TENSORRT_LIBRARIES:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def _distributions_hint() -> str:
    dists = onnxruntime_distributions()
    return "installed: " + (", ".join(f"{n} {v}" for n, v in dists.items()) or "none")


def register_rtx_plugin(ort: Any) -> list[Any]:
    """Register the TensorRT-RTX plugin library with onnxruntime; its devices (maybe none).

    ``ProviderError`` with the install command when the wheel is missing, or with the
    loader's reason when its library cannot load here (no NVIDIA driver, say).
    """
    try:
        plugin = __import__(RTX_PLUGIN)
    except ImportError:
        raise ProviderError(
            'the rtx provider (TensorRT for RTX) needs its plugin wheel: pip install "clothes-extractor[rtx]"'
        ) from None
    name = plugin.get_ep_name()
    if name not in {d.ep_name for d in ort.get_ep_devices()}:
        try:
            ort.register_execution_provider_library(name, plugin.get_library_path())
        except Exception as exc:  # onnxruntime's own untyped error
            reason = str(exc).split("with error:")[-1].strip() or type(exc).__name__
            raise ProviderError(f"the rtx provider's plugin (TensorRT for RTX) does not load here: {reason}") from None
    return [d for d in ort.get_ep_devices() if d.ep_name == name]


def _requested_providers(ort: Any, provider: str) -> list[str]:
    available = ort.get_available_providers()
    if provider == "auto":
        chosen = [PROVIDERS[p] for p in AUTO_ORDER if PROVIDERS[p] in available]
        if PROVIDERS["tensorrt"] in chosen and not tensorrt_runtime_loads():
            # onnxruntime-gpu lists TensorRT whether or not libnvinfer is installed; trying
            # it anyway prints an error and retries. auto quietly moves on to CUDA instead.
            log.info("TensorRT provider skipped: TensorRT's libnvinfer is not installed")
            chosen.remove(PROVIDERS["tensorrt"])
        if PROVIDERS["cuda"] in chosen and not has_nvidia_gpu():
            log.info("CUDA provider skipped: no NVIDIA GPU (nvidia-smi sees none)")
            chosen = [p for p in chosen if p == PROVIDERS["cpu"]]
        return chosen
    wanted = provider_name(provider)
    if provider == "rtx":
        return [wanted]
    if wanted not in available:
        fix = f" For CUDA or TensorRT: {GPU_INSTALL}" if provider != "cpu" else ""
        raise ProviderError(
            f"the {provider} provider is not in this onnxruntime build ({_distributions_hint()}; "
            f"it offers {', '.join(available)}).{fix}"
        )
    if provider in ("cuda", "tensorrt") and not has_nvidia_gpu():
        raise ProviderError(f"the {provider} provider needs an NVIDIA GPU, and this machine has none (nvidia-smi)")
    if provider == "tensorrt" and not tensorrt_runtime_loads():
        raise ProviderError(
            "the tensorrt provider needs TensorRT's runtime library (libnvinfer 10), which does not "
            'load here: pip install "clothes-extractor[tensorrt]" (or put TensorRT on LD_LIBRARY_PATH), '
            "or use --provider cuda"
        )
    # The CPU provider stays in the list because onnxruntime places a few shape
    # computations there on purpose; the check after creation catches a real fallback.
    return [wanted] if wanted == PROVIDERS["cpu"] else [wanted, PROVIDERS["cpu"]]


@dataclass(frozen=True)
class SessionSettings:
    """How a session uses the hardware. The defaults are the fast ones measured so far.

    CPU: ``intra_op_threads`` None lets onnxruntime use every core; ``spin`` False stops
    its idle threads from spinning, which steals the cores from extract's readers and
    writers. ``cpu_streams`` (None: 2 where the machine has 2 or more cores) splits a batch
    of 2 or more into that many parts run at once, each by its own session with an equal
    share of the threads (see ``ModelSession._run_streams``). A batch of 1 runs on the
    session with every thread, for latency.

    CUDA: NHWC kernels, the largest cuDNN workspace, an exhaustive algorithm search (done
    once per input shape: warm up every batch size you serve); ``tf32`` False: fp32
    convolutions in fp32, not TF32 (onnxruntime's default; ``ModelSession`` turns it off for
    a model exported for fp32 arithmetic, whose outputs then stay within its export tolerance
    of the CPU's: with TF32 the bundled fp32 generator was 5 levels off at batch 32 on an
    H200, its tolerance 4; the fp16 files, which CUDA runs by default, are fp16 anyway).
    TensorRT: engines and timing caches on disk, keyed by GPU, fp16 where asked, one profile
    for batches ``trt_batch`` (min, opt, max). ``pad_batches`` (default: on GPU providers)
    runs a batch smaller than the largest seen so far padded up to it, so a folder job's
    short tail batch reuses the searched algorithms / built engine instead of paying for a
    new shape.
    """

    intra_op_threads: int | None = None
    cpu_streams: int | None = None
    pad_batches: bool | None = None
    spin: bool = True
    cudnn_conv_algo_search: str = "EXHAUSTIVE"
    prefer_nhwc: bool = True
    trt_fp16: bool = True
    trt_batch: tuple[int, int, int] = (1, 32, 128)
    trt_cache_dir: Path | None = None  # default: ~/.cache/clothes-extractor/tensorrt/<GPU>
    cuda_graph: bool = False  # for callers that run through IO binding with fixed buffers (bench)
    tf32: bool | None = None  # None: onnxruntime's default (on)

    def provider_options(self, ort_name: str, shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, str]:
        """onnxruntime options of provider ``ort_name``; ``shapes``: model-size inputs (no batch)
        for TensorRT's profile."""
        if ort_name == PROVIDERS["cuda"]:
            return {
                "device_id": "0",
                "cudnn_conv_algo_search": self.cudnn_conv_algo_search,
                "cudnn_conv_use_max_workspace": "1",
                "prefer_nhwc": "1" if self.prefer_nhwc else "0",
                "enable_cuda_graph": "1" if self.cuda_graph else "0",
                **({"use_tf32": "0"} if self.tf32 is False else {}),
            }
        if ort_name == PROVIDERS["tensorrt"]:
            cache = str(self.trt_cache_dir or tensorrt_cache_dir())
            options = {
                "device_id": "0",
                "trt_fp16_enable": "True" if self.trt_fp16 else "False",
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": cache,
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": cache,
                "trt_cuda_graph_enable": "True" if self.cuda_graph else "False",
            }
            if shapes:
                for key, batch in zip(("min", "opt", "max"), self.trt_batch, strict=True):
                    profile = ",".join(f"{name}:{'x'.join(map(str, (batch, *dims)))}" for name, dims in shapes.items())
                    options[f"trt_profile_{key}_shapes"] = profile
            return options
        return {}


def tensorrt_cache_dir() -> Path:
    """Where TensorRT engines are cached: engines only run on the GPU model they were built for."""
    gpus = gpu_names()
    tag = re.sub(r"[^A-Za-z0-9.-]+", "_", gpus[0].split(",")[0]) if gpus else "unknown-gpu"
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "clothes-extractor" / "tensorrt" / tag


@contextlib.contextmanager
def native_output_captured(enabled: bool = True) -> Iterator[io.StringIO]:
    """Capture what onnxruntime writes to the process's stdout/stderr (its C++ logger and
    library loader write to the file descriptors directly; its Python side prints), so that
    a provider's start-up noise never reaches the user's terminal or a JSON stdout."""
    captured = io.StringIO()
    if not enabled:
        yield captured
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.write(sink.read().decode("utf-8", "replace"))
    text = captured.getvalue().strip()
    if text:
        log.debug("onnxruntime said while starting: %s", text)


def _first_error_line(text: str) -> str:
    """The most telling line of what onnxruntime said: a library that failed to load first,
    then any other error (its own "falling back" notices say nothing the user needs)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    ranked = [line for line in lines if "failed to load" in line.lower()]
    ranked += [line for line in lines if "[E:onnxruntime" in line]
    ranked += [
        line
        for line in lines
        if ("error" in line.lower() or "fail" in line.lower()) and "falling back" not in line.lower()
    ]
    return re.sub(r"^\S*\[[EW]:onnxruntime:[^\]]*\]\s*", "", ranked[0])[:300] if ranked else ""


def create_session(
    model: bytes,
    provider: str = "auto",
    *,
    settings: SessionSettings | None = None,
    source: str | Path = "the model",
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> tuple[Any, str]:
    """An ``InferenceSession`` on ``provider`` and the short name of the provider it got."""
    ort = import_onnxruntime()
    settings = settings or SessionSettings()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: provider fallbacks are reported by us
    if settings.intra_op_threads:
        options.intra_op_num_threads = settings.intra_op_threads
    if not settings.spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    gpu = provider != "cpu"
    with native_output_captured(enabled=gpu) as said:
        providers = _requested_providers(ort, provider)
        if provider == "rtx":
            devices = register_rtx_plugin(ort)
            if not devices:
                raise ProviderError(
                    "the rtx provider (TensorRT for RTX) registered, but lists no device here: it supports "
                    "GeForce/RTX GPUs (compute capability 7.5, 8.6, 8.9, 12.x); use --provider cuda"
                )
            options.add_provider_for_devices(devices, {})
            providers = []
        if any(p not in (PROVIDERS["cpu"], PROVIDERS["rtx"]) for p in providers):
            _preload_gpu_libraries(ort)
        if PROVIDERS["tensorrt"] in providers:
            (settings.trt_cache_dir or tensorrt_cache_dir()).mkdir(parents=True, exist_ok=True)
        with_options = [(name, settings.provider_options(name, shapes)) for name in providers]
        try:
            session = ort.InferenceSession(
                model, sess_options=options, **({"providers": with_options} if providers else {})
            )
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if provider not in ("auto", "cpu") and "provider" in message.lower():
                raise ProviderError(f"the {provider} provider failed to start: {message}") from None
            raise ModelError(f"{source} is not a loadable ONNX model: {message}") from None
    got = session.get_providers()[0]
    if provider != "auto" and got != provider_name(provider):
        reason = _first_error_line(said.getvalue())
        raise ProviderError(
            f"the {provider} provider did not start (onnxruntime fell back to {got})"
            + (
                f": {reason}"
                if reason
                else "; its CUDA/cuDNN or TensorRT libraries are probably missing or of the wrong version"
            )
            + f". Reinstall with: {GPU_INSTALL}; `clothes-extractor info` shows what is installed and what starts"
        )
    if provider == "auto" and got == PROVIDERS["cpu"] and len(providers) > 1:
        reason = _first_error_line(said.getvalue())
        log.warning("no GPU provider started, running on the CPU%s", f" ({reason})" if reason else "")
    return session, short_provider_name(got)


def _preload_gpu_libraries(ort: Any) -> None:
    # onnxruntime-gpu >= 1.21 finds CUDA/cuDNN from the nvidia-* pip wheels this way.
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception as exc:  # noqa: BLE001 - advisory; session creation reports the real failure
            log.debug("onnxruntime.preload_dlls() failed: %s", exc)


def probe_provider(provider: str) -> tuple[bool, str]:
    """Whether ``provider`` really starts here, with the reason when it does not."""
    try:
        _, got = create_session(PROBE_MODEL, provider, settings=SessionSettings(trt_fp16=False), source="probe")
    except (ProviderError, ModelError, MissingDependencyError) as exc:
        return False, str(exc)
    return True, f"started ({got})"
