"""Photos changed before a model sees them (``evaluate --grayscale`` / ``--light``): how a
model does on black-and-white photos, or in another light, measured on a dataset's pairs.
The changes are those training's augmentation makes (``train --grayscale``, ``--lighting``):
a light changes the photo alone (a catalog garment keeps its colours; a try-on's truth is
the person photo itself, so it takes the light), black and white changes the photo and the
catalog image alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class PhotoChange:
    grayscale: bool = False
    light: tuple[float, float, float] | None = None  # gains of the photo's red, green and blue

    @classmethod
    def parse_light(cls, text: str) -> tuple[float, float, float]:
        """``GAIN`` (an exposure: every channel) or ``R,G,B`` gains, each above 0; ValueError
        that says what is wrong."""
        try:
            gains = tuple(float(part) for part in text.split(","))
        except ValueError:
            gains = ()
        if len(gains) == 1:
            gains = gains * 3
        if len(gains) != 3 or not all(0 < g < 100 for g in gains):
            raise ValueError(f"{text!r} is not GAIN or R,G,B (gains above 0: 0.5 is a stop darker, 1.1,1,0.8 warmer)")
        return gains  # type: ignore[return-value]

    def __bool__(self) -> bool:
        return self.grayscale or self.light is not None

    def photo(self, image: Image.Image) -> Image.Image:
        """The photo in this light, then in black and white."""
        if self.light is not None:
            lit = np.asarray(image.convert("RGB")).astype(np.float32) * np.float32(self.light)
            image = Image.fromarray(np.floor(np.clip(lit, 0, 255)).astype(np.uint8))
        return black_and_white(image) if self.grayscale else image

    def catalog(self, image: Image.Image | None) -> Image.Image | None:
        """The catalog image: black and white with the photo; never in the photo's light."""
        return black_and_white(image) if self.grayscale and image is not None else image

    def describe(self) -> str:
        """As ``evaluate`` prints it: ``light x0.45, black and white``."""
        parts = []
        if self.light is not None:
            gains = sorted(set(self.light))
            parts.append(
                f"light x{gains[0]:g}" if len(gains) == 1 else "light x" + ",".join(f"{g:g}" for g in self.light)
            )
        if self.grayscale:
            parts.append("black and white")
        return ", ".join(parts)


def black_and_white(image: Image.Image) -> Image.Image:
    """``image`` as a black-and-white photo in RGB (Pillow's luma, the three channels equal)."""
    return image.convert("L").convert("RGB")
