"""How close a served model must come to the PyTorch network it was exported from
(``onnx_export.validate_export``, ``benchmarks/gpu_parity.py``): one home for the bounds.
"""

from __future__ import annotations

from ..runtime.contract import ModelContract

# Tolerances on the uint8 outputs of the exported graph against eager PyTorch fp32, as
# (max |error|, mean |error|) in output levels. fp32: folding BatchNorm and onnxruntime's
# kernels change the last bits, which flips the rounding of a value sitting at .5: off by
# one, rarely two. fp16: 11-bit mantissas through a dozen conv layers can move a pixel by
# a few levels; the bound leaves room for that (measured on 256x192 ngf-16 generators on
# onnxruntime's CPU provider: max 1, mean 0.04).
# fp32 arithmetic on weights stored as fp16 ("fp32/fp16-weights"): each weight rounded to
# 11 bits once (measured on the trained 256x192 ngf-16 and ngf-32 generators against PyTorch
# fp32: max 1, mean 0.009-0.016 on seeded inputs and 16 VITON photos).
# A warping generator (a try-on) samples the photo (the garment) where its grid points: a grid
# moved by a fraction of a pixel moves a sharp edge's value by many levels at that one pixel
# (a try-on in fp16: 29 levels at one pixel of 16 VITON pairs, mean 0.027), so its max bound
# is loose and its mean bound is what catches a broken export.
TOLERANCES = {"fp32": (2, 0.05), "fp16": (16, 1.0), "fp32/fp16-weights": (4, 0.1)}
# A parser's ``labels`` are class indices, not levels: a pixel whose two top classes are
# nearly tied may flip (from class 1 to 7 is "6 levels"), so labels are checked as the
# share of pixels whose class differs.
LABEL_TOLERANCES = {"fp32": 0.001, "fp16": 0.01, "fp32/fp16-weights": 0.005}
FLOW_TOLERANCES = {"fp32": (16, 0.1), "fp16": (96, 1.5), "fp32/fp16-weights": (48, 0.3)}


def tolerances_for(contract: ModelContract) -> dict[str, tuple[int, float]]:
    """(max, mean) by precision: a model that samples by a grid (warping, try-on) gets FLOW's."""
    return FLOW_TOLERANCES if contract.catalog_resolution or contract.task == "tryon" else TOLERANCES
