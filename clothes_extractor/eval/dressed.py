"""A try-on scored as ``tryon`` runs it: the region to dress found by the parser, not the dataset's.

``evaluate`` scores a try-on on each pair's parse map by default: the model alone, dressing the
region a person drew. A user's person photos have no parse map; ``tryon`` finds the region with
the parser (``runtime.dressing.Dresser``: its looks, the person kept among several, its refusals)
and pastes the dressed window back into the photo. Here each pair (a person in their own garment)
goes through that same ``Dresser`` and the dressed photo, as ``tryon`` writes it, is scored
against the photo itself in the window the try-on dressed (the whole of a half-body photo, the
upper body of a full-length one: what ``evaluate --resolution native`` scores on parse maps), at
the photo's own resolution: the number a user of ``tryon`` sees. A pair ``tryon`` refuses (no top
to dress, no garment in the catalog image) is reported failed.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ..errors import ClothesExtractorError, InputError
from ..runtime.dressing import Dresser, Fitted, paste
from ..runtime.images import load_garment, load_person
from .changes import PhotoChange
from .datasets import Sample


def dresser_for(tryon: Any, parser: Any, native: bool) -> Dresser:
    """The ``Dresser`` of ``tryon --resolution photo`` (``native``) or ``model``."""
    return Dresser(tryon, parser, resolution="photo" if native else "model")


def dressed(
    samples: Sequence[Sample], dresser: Dresser, change: PhotoChange | None = None, pool: Executor | None = None
) -> list[tuple[Sample, dict[str, np.ndarray] | str]]:
    """Each sample's person dressed in its own garment as ``tryon`` dresses them: (sample, the
    item to score, or why there is none: a refusal for its catalog image names that file). An
    item holds the ``person`` photo and the ``garment`` as fitted for the model (for the sheet),
    and the dressed photo as ``output`` and the photo as ``target``, each cut to the try-on's
    window (``window_in``) at the photo's own resolution. ``pool``: threads that decode and
    paste side by side."""
    mapped = pool.map if pool is not None else map

    def loaded(sample: Sample) -> tuple[Any, Any, np.ndarray] | str:
        try:
            if sample.garment is None:
                raise InputError("a try-on sample needs its catalog garment image")
            photo, garment = load_person(sample.photo), load_garment(sample.garment)
            if change:
                photo, garment = change.photo(photo).convert("RGB"), change.catalog(garment).convert("RGB")
            return dresser.person(photo), dresser.garment(garment), np.asarray(photo)
        except ClothesExtractorError as exc:
            return str(exc)

    found: list[tuple[Sample, Any]] = list(zip(samples, mapped(loaded, samples), strict=True))
    ready = [index for index, (_, item) in enumerate(found) if not isinstance(item, str)]
    drawn = dresser.draw_pairs([found[index][1][:2] for index in ready]) if ready else []

    def pasted(index: int, result: tuple[Fitted, np.ndarray] | Exception) -> dict[str, np.ndarray] | str:
        if isinstance(result, ClothesExtractorError):  # (one its catalog image is refused for names that image)
            sample, (_, garment, _) = found[index]
            return f"{sample.garment}: {result}" if dresser.refusal(garment) is not None else str(result)
        if isinstance(result, Exception):
            raise result
        fitted, image = result
        photo = found[index][1][2]
        x0, y0, x1, y1 = window_in(fitted.window, photo.shape)
        return {
            "person": photo,
            "garment": fitted.inputs["garment"],
            "output": np.asarray(paste(fitted, image))[y0:y1, x0:x1],
            "target": photo[y0:y1, x0:x1],
        }

    for index, item in zip(ready, mapped(pasted, ready, drawn), strict=True):
        found[index] = (found[index][0], item)
    return found


def window_in(window: tuple[float, float, float, float], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The try-on's window (photo pixels, which may reach past the photo: its letterbox's
    padding) as whole pixels inside a photo of ``shape`` (height, width, ...)."""
    height, width = shape[:2]
    x0, y0 = max(0, round(window[0])), max(0, round(window[1]))
    return x0, y0, max(x0 + 1, min(width, round(window[2]))), max(y0 + 1, min(height, round(window[3])))


def pasted(upsampled: np.ndarray, items: list[dict[str, np.ndarray]]) -> np.ndarray:
    """A model-size try-on's output, upsampled to its targets, put into them through its region
    (bilinear) as ``tryon`` pastes it into the photo: outside the region, the photo's own pixels."""
    size = upsampled.shape[2:0:-1]
    regions = np.stack([np.asarray(Image.fromarray(item["region"][..., 0]).resize(size, Image.Resampling.BILINEAR))
                        for item in items])[..., None] / 255.0  # fmt: skip
    targets = np.stack([item["target"] for item in items])
    return np.rint(regions * upsampled + (1 - regions) * targets).astype(np.uint8)
