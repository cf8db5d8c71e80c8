"""The serving runtime: numpy, Pillow and onnxruntime only, and nothing of the package but
itself and ``errors`` (tests enforce both).

    from clothes_extractor.runtime import ModelSession, fit_to_model
"""

from .contract import FitSettings, ModelContract, TensorSpec
from .fitting import FittedInput, fit_to_model
from .providers import PROVIDER_CHOICES, SessionSettings
from .session import ModelSession

__all__ = [
    "PROVIDER_CHOICES",
    "FitSettings",
    "FittedInput",
    "ModelContract",
    "ModelSession",
    "SessionSettings",
    "TensorSpec",
    "fit_to_model",
]
