"""The torch-free runtime: numpy, Pillow and onnxruntime only (a test enforces it).

from clothes_extractor.runtime import ModelSession, find_jobs, run_extraction
"""

from .contract import FitSettings, ModelContract
from .fitting import FittedInput, fit_to_model
from .jobs import ExtractJob, MaskIndex, MaskSource, find_jobs
from .pipeline import ExtractionSummary, ExtractOptions, FileResult, run_extraction
from .session import PROVIDER_CHOICES, ModelSession

__all__ = [
    "PROVIDER_CHOICES",
    "ExtractJob",
    "ExtractOptions",
    "ExtractionSummary",
    "FileResult",
    "FitSettings",
    "FittedInput",
    "MaskIndex",
    "MaskSource",
    "ModelContract",
    "ModelSession",
    "find_jobs",
    "fit_to_model",
    "run_extraction",
]
