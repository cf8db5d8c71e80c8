"""Models embedded in the package (none yet: the default-models issue adds them)."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_GENERATOR = MODELS_DIR / "generator.onnx"


def default_generator() -> Path | None:
    """The bundled generator, or None in an install that has none."""
    return DEFAULT_GENERATOR if DEFAULT_GENERATOR.is_file() else None
