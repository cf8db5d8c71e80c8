"""Learned perceptual distances (LPIPS, DISTS, ...) from ONNX files the user brings.

No package ships the weights such metrics need (LPIPS and DISTS read ImageNet backbones
from model hubs), so none is bundled; a user who has them exports the metric to ONNX once
and ``evaluate --perceptual FILE`` scores every pair with it, beside SSIM and GMSD, without
PyTorch. The file's interface is LPIPS's own: two float32 image inputs (in graph order:
output, reference), NCHW RGB, and one output holding a distance per image (any shape with
the batch first and one value per image: ``[N]``, ``[N, 1]`` or ``[N, 1, 1, 1]``); lower is
better. Pixels are scaled to [-1, 1] (LPIPS's range) unless the model's metadata says
``input_range`` = ``0,1`` (DISTS's). The metric is named by the file's stem
(``lpips-alex.onnx`` -> ``lpips-alex``). README ("Perceptual metrics") shows an export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..runtime.onnxfile import read_onnx
from ..runtime.providers import create_session

RANGES = {"-1,1": (-1.0, 1.0), "0,1": (0.0, 1.0)}


@dataclass
class PerceptualMetric:
    """One perceptual distance, its session open: ``metric(outputs, references)`` gives a
    float64 [N] distance for two uint8 NHWC RGB batches of the same shape."""

    name: str
    session: Any
    inputs: tuple[str, str]
    output: str
    low: float
    high: float
    batched: bool  # the graph takes any batch size (else one image per run)

    @classmethod
    def open(cls, path: str | Path, provider: str = "auto") -> PerceptualMetric:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read the perceptual metric {path}: {exc.strerror or exc}") from None
        range_text = read_onnx(data, str(path)).metadata.get("input_range", "-1,1").replace(" ", "")
        if range_text not in RANGES:
            raise ModelError(
                f"{path}: metadata input_range is {range_text!r}; it must be '-1,1' (LPIPS) or '0,1' (DISTS)"
            )
        session, _ = create_session(data, provider, source=path)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        images = [i for i in inputs if i.type == "tensor(float)" and len(i.shape) == 4]
        if len(inputs) != 2 or len(images) != 2 or len(outputs) < 1:
            got = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs) or "none"
            raise ModelError(
                f"{path} is not a perceptual metric: it needs two float32 NCHW image inputs (output, "
                f"reference) and a distance output, as LPIPS exports; its inputs are {got}"
            )
        if any(isinstance(d, int) and d != 3 for i in images for d in i.shape[1:2]):
            raise ModelError(f"{path}: its image inputs must have 3 channels (RGB, NCHW)")
        batched = not all(isinstance(i.shape[0], int) for i in images)
        low, high = RANGES[range_text]
        return cls(path.stem, session, (images[0].name, images[1].name), outputs[0].name, low, high, batched)

    def _scaled(self, batch: np.ndarray) -> np.ndarray:
        nchw = np.ascontiguousarray(batch[..., :3].transpose(0, 3, 1, 2), dtype=np.float32)
        return nchw * np.float32((self.high - self.low) / 255.0) + np.float32(self.low)

    def __call__(self, outputs: np.ndarray, references: np.ndarray) -> np.ndarray:
        if outputs.shape != references.shape:
            raise ValueError(f"shapes differ: {outputs.shape} vs {references.shape}")
        a, b = self._scaled(outputs), self._scaled(references)
        steps = [slice(0, len(a))] if self.batched else [slice(i, i + 1) for i in range(len(a))]
        found = []
        for part in steps:
            (value,) = self.session.run([self.output], {self.inputs[0]: a[part], self.inputs[1]: b[part]})
            value, n = np.asarray(value, dtype=np.float64), part.stop - part.start
            if value.size != n:
                raise ModelError(
                    f"{self.name}: its output holds {value.size} value(s) for {n} image(s); a perceptual metric "
                    "gives one per image (export it without averaging over the batch)"
                )
            found.append(value.reshape(n))
        return np.concatenate(found)
