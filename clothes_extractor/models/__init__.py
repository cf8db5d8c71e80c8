"""The models embedded in the package: data, and which file suits which provider.

Each default model ships in two precisions: ``fp16`` for GPU providers (half the bytes,
tensor cores) and ``fp32`` for the CPU, where onnxruntime's fp16 path is slower than
fp32 (2-core AMD EPYC, onnxruntime 1.32: 129 vs 170 images/s at batch 1 for the ngf-16
U-Net; benchmarks/results/cpu-2core.md). Files are ``<task>-<precision>.onnx``; each task
has a model card, ``<task>.md``. Opening one is ``clothes_extractor.api.new_session``'s job.
"""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
TASKS = ("generator", "segmenter", "tryon")
GPU_PROVIDERS = ("cuda", "tensorrt", "rtx")


def bundled_model(task: str, precision: str) -> Path | None:
    """The bundled ``task`` model in ``precision``, or None if this install has none."""
    path = MODELS_DIR / f"{task}-{precision}.onnx"
    return path if path.is_file() else None


def bundled_models() -> list[str]:
    return sorted(p.name for p in MODELS_DIR.glob("*.onnx"))


def model_for(task: str, gpu: bool) -> Path | None:
    """The bundled model for ``task`` that suits a GPU (fp16) or the CPU (fp32); the other
    precision if only that one is installed; None if neither is."""
    preferred = ("fp16", "fp32") if gpu else ("fp32", "fp16")
    for precision in preferred:
        path = bundled_model(task, precision)
        if path is not None:
            return path
    return None


def task_model(task: str, gpu: bool) -> Path:
    """``model_for``, or ``ModelError`` where this install bundles no ``task`` model."""
    from ..errors import ModelError

    path = model_for(task, gpu)
    if path is None:
        raise ModelError(
            f"this install bundles no {task} model; export one with `clothes-extractor export` and pass its path"
        )
    return path
