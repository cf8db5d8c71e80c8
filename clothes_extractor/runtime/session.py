"""Loading a served model into an onnxruntime session, choosing its execution provider.

``auto`` tries TensorRT, then CUDA, then the CPU and reports which one it got. A provider
asked for by name either starts or raises ``ProviderError`` with the reason: onnxruntime
itself falls back to the CPU silently when a GPU provider fails to load, so the providers
the session really got are checked after it is created.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import itertools
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependencyError, ModelError, ProviderError
from .contract import TASK_IO, ModelContract

log = logging.getLogger(__name__)

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
AUTO_ORDER = ("tensorrt", "cuda", "cpu")
PROVIDER_CHOICES = ("auto", *PROVIDERS)

# A one-node ONNX model (Relu on a float[1]), 84 bytes: enough to see whether a provider
# starts without shipping a model file or needing the onnx package at run time.
PROBE_MODEL = base64.b64decode(
    "CAgSEWNsb3RoZXMtZXh0cmFjdG9yOjcKDAoBeBIBeSIEUmVsdRIFcHJvYmVaDwoBeBIKCggIARIECgIIAWIPCgF5EgoKCAgBEgQKAggBQgQKABAN"
)


def import_onnxruntime() -> Any:
    """onnxruntime, or an error that says which extra to install."""
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError(
            "onnxruntime", "cpu", "Running a model (use the [gpu] extra on an NVIDIA machine)"
        ) from None
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


def _requested_providers(ort: Any, provider: str) -> list[str]:
    available = ort.get_available_providers()
    if provider == "auto":
        chosen = [PROVIDERS[p] for p in AUTO_ORDER if PROVIDERS[p] in available]
        if PROVIDERS["tensorrt"] in chosen and not tensorrt_runtime_loads():
            # onnxruntime-gpu lists TensorRT whether or not libnvinfer is installed; trying
            # it anyway prints an error and retries. auto quietly moves on to CUDA instead.
            log.info("TensorRT provider skipped: TensorRT's libnvinfer is not installed")
            chosen.remove(PROVIDERS["tensorrt"])
        return chosen
    wanted = provider_name(provider)
    if wanted not in available:
        raise ProviderError(
            f"the {provider} provider is not in this onnxruntime build "
            f"({_ort_distribution_hint()}; it offers {', '.join(available)}). "
            + (
                'For CUDA or TensorRT: pip uninstall onnxruntime && pip install "clothes-extractor[gpu]"'
                if provider != "cpu"
                else ""
            )
        )
    if provider == "tensorrt" and not tensorrt_runtime_loads():
        raise ProviderError(
            "the tensorrt provider needs TensorRT's runtime library (libnvinfer 10), which does not "
            'load here: pip install "clothes-extractor[tensorrt]" (or put TensorRT on LD_LIBRARY_PATH), '
            "or use --provider cuda"
        )
    # The CPU provider stays in the list because onnxruntime places a few shape
    # computations there on purpose; the check after creation catches a real fallback.
    return [wanted] if wanted == PROVIDERS["cpu"] else [wanted, PROVIDERS["cpu"]]


TENSORRT_LIBRARIES = ("libnvinfer.so.10", "libnvinfer.so", "nvinfer_10.dll", "nvinfer.dll")


def tensorrt_runtime_loads() -> bool:
    """Whether TensorRT's runtime library (libnvinfer), which its provider needs, loads here."""
    import ctypes

    for name in TENSORRT_LIBRARIES:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def _ort_distribution_hint() -> str:
    from .environment import onnxruntime_distributions

    dists = onnxruntime_distributions()
    return "installed: " + (", ".join(f"{n} {v}" for n, v in dists.items()) or "unknown")


def _preload_gpu_libraries(ort: Any) -> None:
    # onnxruntime-gpu >= 1.21 finds CUDA/cuDNN from the nvidia-* pip wheels this way.
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception as exc:  # noqa: BLE001 - advisory; session creation reports the real failure
            log.debug("onnxruntime.preload_dlls() failed: %s", exc)


@dataclass(frozen=True)
class SessionSettings:
    """How a session uses the hardware. The defaults are the fast ones measured so far.

    CPU: ``intra_op_threads`` None lets onnxruntime use every core; ``spin`` False stops
    its idle threads from spinning, which steals the cores from extract's readers and
    writers. ``cpu_streams`` (None: 2 where the machine has 2 or more cores) splits a batch
    of 2 or more into that many parts run at once, each by its own session with an equal
    share of the threads: one run synchronises its threads at every operator and leaves
    cores idle while its ConvTranspose scatters columns back (col2im) on one thread; runs
    side by side fill the gaps (2-core EPYC, batch 8: 145 -> 230 images/s; extract 50 ->
    84). A batch of 1 runs on the session with every thread, for latency.

    CUDA: NHWC kernels, the largest cuDNN workspace, an exhaustive algorithm search (done
    once per input shape: warm up every batch size you serve), optionally
    CUDA graphs (``cuda_graph``: fixed shapes, IO binding, one graph per batch size).
    TensorRT: engines and timing caches on disk, keyed by GPU, fp16 where asked.
    ``pad_batches`` (default: on GPU providers) runs a batch smaller than the largest seen
    so far padded up to it, so a folder job's short tail batch (or the segmenter's odd
    sizes) reuses the searched algorithms / built engine instead of paying for a new
    input shape.
    """

    intra_op_threads: int | None = None
    cpu_streams: int | None = None
    pad_batches: bool | None = None
    spin: bool = True
    cuda_graph: bool = False
    cudnn_conv_algo_search: str = "EXHAUSTIVE"
    prefer_nhwc: bool = True
    trt_fp16: bool = True
    trt_cache_dir: Path | None = None  # default: ~/.cache/clothes-extractor/tensorrt/<GPU>

    def provider_options(self, ort_name: str) -> dict[str, str]:
        if ort_name == PROVIDERS["cuda"]:
            return {
                "device_id": "0",
                "cudnn_conv_algo_search": self.cudnn_conv_algo_search,
                "cudnn_conv_use_max_workspace": "1",
                "prefer_nhwc": "1" if self.prefer_nhwc else "0",
                "enable_cuda_graph": "1" if self.cuda_graph else "0",
            }
        if ort_name == PROVIDERS["tensorrt"]:
            cache = str(self.trt_cache_dir or tensorrt_cache_dir())
            return {
                "device_id": "0",
                "trt_fp16_enable": "True" if self.trt_fp16 else "False",
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": cache,
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": cache,
                "trt_cuda_graph_enable": "True" if self.cuda_graph else "False",
            }
        return {}


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


def cpu_stream_plan(settings: SessionSettings) -> tuple[int, int]:
    """(streams, intra-op threads per stream) for the CPU provider under ``settings``."""
    cores = settings.intra_op_threads or physical_cores()
    streams = settings.cpu_streams if settings.cpu_streams is not None else min(2, cores)
    if streams < 1:
        raise ValueError(f"cpu_streams must be >= 1, got {streams}")
    return streams, max(1, cores // streams)


def tensorrt_cache_dir() -> Path:
    """Where TensorRT engines are cached: engines only run on the GPU model they were built for."""
    import re

    from .environment import gpu_names

    gpus = gpu_names()
    tag = re.sub(r"[^A-Za-z0-9.-]+", "_", gpus[0].split(",")[0]) if gpus else "unknown-gpu"
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "clothes-extractor" / "tensorrt" / tag


def create_session(
    model: str | Path | bytes,
    provider: str = "auto",
    *,
    settings: SessionSettings | None = None,
) -> tuple[Any, str]:
    """An ``InferenceSession`` on ``provider`` and the short name of the provider it got."""
    ort = import_onnxruntime()
    settings = settings or SessionSettings()
    providers = _requested_providers(ort, provider)
    if any(p != PROVIDERS["cpu"] for p in providers):
        _preload_gpu_libraries(ort)
    if PROVIDERS["tensorrt"] in providers:
        (settings.trt_cache_dir or tensorrt_cache_dir()).mkdir(parents=True, exist_ok=True)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: provider fallbacks are reported by us
    if settings.intra_op_threads:
        options.intra_op_num_threads = settings.intra_op_threads
    if not settings.spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    with_options = [(name, settings.provider_options(name)) for name in providers]
    try:
        # onnxruntime prints its provider fallbacks ("EP Error ...") with print(): keep them
        # off stdout, which may be carrying JSON (`info --json`, `bench`).
        with contextlib.redirect_stdout(sys.stderr):
            session = ort.InferenceSession(source, sess_options=options, providers=with_options)
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        where = "the model" if isinstance(model, bytes) else str(model)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if provider not in ("auto", "cpu") and "provider" in message.lower():
            raise ProviderError(f"the {provider} provider failed to start: {message}") from None
        raise ModelError(f"{where} is not a loadable ONNX model: {message}") from None
    got = session.get_providers()[0]
    if provider != "auto" and got != provider_name(provider):
        raise ProviderError(
            f"the {provider} provider did not start (onnxruntime fell back to {got}); "
            "its CUDA/cuDNN or TensorRT libraries are probably missing or of the wrong "
            "version. `clothes-extractor info` shows what is installed and what starts"
        )
    return session, short_provider_name(got)


def probe_provider(provider: str) -> tuple[bool, str]:
    """Whether ``provider`` really starts here, with the reason when it does not."""
    try:
        _, got = create_session(PROBE_MODEL, provider, settings=SessionSettings(trt_fp16=False))
    except (ProviderError, ModelError, MissingDependencyError) as exc:
        return False, str(exc)
    return True, f"started ({got})"


def open_session(path: str | Path, provider: str = "auto", settings: "SessionSettings | None" = None):
    """A ``ModelSession`` on an ONNX model, or an ``EngineSession`` on a TensorRT engine (``*.engine``)."""
    path = Path(path)
    if path.suffix == ".engine":
        if provider not in ("auto", "tensorrt"):
            raise ProviderError(
                f"{path} is a TensorRT engine: it runs with --provider tensorrt (or auto), not {provider}; "
                "for another provider pass the ONNX model it was built from"
            )
        from .engine import EngineSession

        return EngineSession(path)
    return ModelSession(path, provider, settings=settings)


def check_feeds(contract: ModelContract, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs of one batch, checked against the contract (names, dtype, shape, batch), C-contiguous."""
    want = TASK_IO[contract.task][0]
    if set(arrays) != set(want):
        raise ValueError(f"this {contract.task} takes {sorted(want)}, got {sorted(arrays)}")
    batch = None
    feeds = {}
    for name, channels in want.items():
        array = arrays[name]
        shape = (contract.height, contract.width, channels)
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1:] != shape:
            raise ValueError(
                f"{name} must be uint8 [N, {shape[0]}, {shape[1]}, {shape[2]}], got {array.dtype} {list(array.shape)}"
            )
        if batch is None:
            batch = array.shape[0]
        elif array.shape[0] != batch:
            raise ValueError(f"batch sizes differ: {batch} and {array.shape[0]} ({name})")
        feeds[name] = np.ascontiguousarray(array)
    return feeds


def empty_output(contract: ModelContract) -> np.ndarray:
    """The output of a batch of 0."""
    ((_, channels),) = TASK_IO[contract.task][1].items()
    return np.zeros((0, *contract.size, channels), np.uint8)


class ModelSession:
    """A served model, loaded and checked against its contract, ready for batches."""

    def __init__(
        self,
        path: str | Path,
        provider: str = "auto",
        *,
        settings: SessionSettings | None = None,
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}")
        if self.path.stat().st_size == 0:
            raise ModelError(f"model file is empty (0 bytes): {self.path}")
        self.settings = settings or SessionSettings()
        self.session, self.provider = create_session(self.path, provider, settings=self.settings)
        meta = self.session.get_modelmeta()
        self.metadata: dict[str, str] = dict(meta.custom_metadata_map)
        self.contract = ModelContract.from_metadata(self.metadata, source=str(self.path))
        self.contract.check_graph(
            [(i.name, i.type, i.shape) for i in self.session.get_inputs()],
            [(o.name, o.type, o.shape) for o in self.session.get_outputs()],
            source=str(self.path),
        )
        self.input_names = list(TASK_IO[self.contract.task][0])
        self._output = next(iter(TASK_IO[self.contract.task][1]))
        pad = self.settings.pad_batches
        self._pad = self.provider in ("cuda", "tensorrt") if pad is None else pad
        self._largest_batch = 0
        # CUDA graph numbers of this session: every runner that captures graphs on it draws here.
        self.graph_ids = itertools.count()
        # (parts a CPU batch runs as, threads of each part's session)
        self._stream_plan = cpu_stream_plan(self.settings) if self.provider == "cpu" else (1, None)
        self._lanes: list[Any] = []  # the streams' sessions, opened at the first batch that splits
        self._lanes_lock = threading.Lock()
        self._lane_pool: ThreadPoolExecutor | None = None
        self._bound = None
        if self.settings.cuda_graph and self.provider in ("cuda", "tensorrt"):
            from .gpu import BoundRunner  # CUDA graphs need IO binding with fixed buffers

            self._bound = BoundRunner(self, cuda_graph=True)
        log.info("loaded %s on %s", self.path, self.provider)

    def require_task(self, task: str) -> "ModelSession":
        """This session, or ``ModelError`` if its model serves another task."""
        if self.contract.task != task:
            raise ModelError(f"{self.path} is a {self.contract.task} model; a {task} is needed here")
        return self

    def run(self, **arrays: np.ndarray) -> np.ndarray:
        """Run one batch: ``run(image=[N,H,W,3] uint8, mask=[N,H,W,1] uint8)``."""
        feeds = check_feeds(self.contract, arrays)
        if len(next(iter(feeds.values()))) == 0:
            return empty_output(self.contract)
        if self._bound is not None:
            return self._bound.run(**feeds)
        batch = len(next(iter(feeds.values())))
        if self._pad and batch < self._largest_batch:
            padded = {}
            for name, array in feeds.items():
                padded[name] = np.zeros((self._largest_batch, *array.shape[1:]), np.uint8)
                padded[name][:batch] = array
            return self.session.run([self._output], padded)[0][:batch]
        self._largest_batch = max(self._largest_batch, batch)
        if self.cpu_streams > 1 and batch > 1:
            return self._run_streams(feeds, batch)
        return self.session.run([self._output], feeds)[0]

    @property
    def cpu_streams(self) -> int:
        """How many parts a CPU batch is split into (1 on GPU providers)."""
        return self._stream_plan[0]

    def _run_streams(self, feeds: dict[str, np.ndarray], batch: int) -> np.ndarray:
        """The batch split into ``cpu_streams`` parts, run at once on the streams' sessions."""
        with self._lanes_lock:
            if not self._lanes:
                streams, threads = self._stream_plan
                lane_settings = dataclasses.replace(self.settings, intra_op_threads=threads, cpu_streams=1)
                self._lanes = [create_session(self.path, "cpu", settings=lane_settings)[0] for _ in range(streams)]
                self._lane_pool = ThreadPoolExecutor(streams, thread_name_prefix="cpu-stream")
        assert self._lane_pool is not None
        bounds = np.linspace(0, batch, min(len(self._lanes), batch) + 1).round().astype(int)
        parts = [
            self._lane_pool.submit(lane.run, [self._output], {k: v[a:b] for k, v in feeds.items()})
            for lane, a, b in zip(self._lanes, bounds[:-1], bounds[1:], strict=False)
        ]
        return np.concatenate([part.result()[0] for part in parts])
