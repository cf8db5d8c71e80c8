"""The models embedded in the package, and how the runtime picks one.

Each default model ships in two precisions: ``fp16`` for GPU providers (half the bytes,
tensor cores) and ``fp32`` for the CPU, where onnxruntime's fp16 path is slower than
fp32 (measured on the 256x192 ngf-16 generator, 2-core AMD EPYC, onnxruntime 1.32:
129 vs 170 images/s at batch 1, 143 vs 198 at batch 8; benchmarks/results/cpu-2core.md).
Files are ``<task>-<precision>.onnx``; each task has a model card, ``<task>.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..runtime.session import ModelSession, SessionSettings

MODELS_DIR = Path(__file__).resolve().parent
TASKS = ("generator", "segmenter")


def bundled_model(task: str, precision: str) -> Path | None:
    """The bundled ``task`` model in ``precision``, or None if this install has none."""
    path = MODELS_DIR / f"{task}-{precision}.onnx"
    return path if path.is_file() else None


def default_model(task: str, provider: str) -> Path | None:
    """The bundled model for ``task`` that suits ``provider`` (auto, tensorrt, cuda, cpu).

    ``auto`` takes fp16 when this onnxruntime build offers a GPU provider; if that then
    starts on the CPU after all, ``ModelSession`` callers may ask again with ``cpu``.
    """
    gpu = provider in ("cuda", "tensorrt")
    if provider == "auto":
        try:
            import onnxruntime

            gpu_providers = {"CUDAExecutionProvider", "TensorrtExecutionProvider"}
            gpu = bool(gpu_providers & set(onnxruntime.get_available_providers()))
        except ImportError:
            gpu = False
    preferred = ("fp16", "fp32") if gpu else ("fp32", "fp16")
    for precision in preferred:
        path = bundled_model(task, precision)
        if path is not None:
            return path
    return None


def open_model(
    path: Path | None, task: str, provider: str, settings: SessionSettings | None = None
) -> ModelSession | None:
    """A session on ``path``, or on the bundled ``task`` model of the precision that suits
    the provider it gets (fp16 on a GPU, fp32 on the CPU); None if there is neither."""
    from ..runtime.session import ModelSession, open_session

    if path is not None:
        return open_session(path, provider, settings).require_task(task)
    chosen = default_model(task, provider)
    if chosen is None:
        return None
    session = ModelSession(chosen, provider, settings=settings)
    fp32 = bundled_model(task, "fp32")
    if session.provider == "cpu" and fp32 is not None and chosen != fp32:
        session = ModelSession(fp32, "cpu", settings=settings)  # auto found no working GPU after all
    return session
