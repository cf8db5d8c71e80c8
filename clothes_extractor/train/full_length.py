"""A photo cut at the thighs (VITON's framing) drawn on down to the feet as a full-length
studio shot (Dress Code's): what both the ``alone`` head's "full length" scenes and a
parser's ``--full-length`` samples are made of.

The person goes on below the frame in two legs drawn from the photo's bottom rows (each
column's colour, tapering apart, shaded, shoes at the ends) or, ``light_legs`` of the time,
in light trousers near the wall's colour (what a parser sees least of); on the photo's border
colour, its top cut off (anywhere from the hair down to the mouth for the head's scenes, down
to the neck for a parser's samples), in a portrait frame the person is narrow in.
``FullLength.laid_out`` lays another plane of the photo (its labels, its mask) out the same
way, so a drawn sample keeps its labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The share of drawn legs that are light trousers near the wall's colour, not the photo's
# bottom rows' colours: a full-length man in beige chinos on a light wall, his legs parsed as
# background and arms, was what an ``alone`` head took for a garment alone.
LIGHT_LEGS = 0.5


@dataclass(frozen=True)
class FullLength:
    """A drawn full-length frame: ``image`` float [H, W, 3] (0..255), where the drawn trousers
    (``legs``) and shoes (``shoes``) are, bool [H, W], whether the trousers are the light
    ones (``light``), and where the photo lies in the frame (its top ``cut`` rows cut off, its
    columns from ``x0``)."""

    image: np.ndarray
    legs: np.ndarray
    shoes: np.ndarray
    light: bool
    cut: int
    x0: int

    def laid_out(self, plane: np.ndarray, fill: float = 0) -> np.ndarray:
        """``plane`` (the photo's [h, w] or [h, w, C]: labels, a mask) where the photo lies in
        the frame, ``fill`` elsewhere (the drawn legs and shoes too: the caller labels them)."""
        height, width = self.image.shape[:2]
        out = np.full((height, width, *plane.shape[2:]), fill, plane.dtype)
        rows = plane.shape[0] - self.cut
        out[:rows, self.x0 : self.x0 + plane.shape[1]] = plane[self.cut :]
        return out


def draw_full_length(
    pixels: np.ndarray,
    keep: np.ndarray,
    wall: np.ndarray,
    rng: np.random.Generator,
    light_legs: float,
    cut: tuple[float, float] = (0.0, 0.15),
) -> FullLength | None:
    """The full-length frame of a photo (``pixels``, float [h, w, 3]) whose person is ``keep``
    (float [h, w] 0..1) on a wall of colour ``wall``, its top cut off by a share of its height
    in ``cut`` (0.15: from the hair down to the mouth; 0.35: the head and neck gone, as many
    catalog photos are framed); None (and nothing drawn from ``rng``) where nothing of the
    person reaches the photo's bottom."""
    h, w = pixels.shape[:2]
    columns = np.nonzero(keep[-4:].mean(0) > 0.5)[0]
    if len(columns) < 4:
        return None
    length, band = int(h * rng.uniform(0.45, 0.75)), max(2, h // 20)
    t = (np.arange(length, dtype=np.float32) / length)[:, None]
    x = np.arange(w, dtype=np.float32)[None]
    centre, half = (columns[0] + columns[-1]) / 2, (columns[-1] - columns[0] + 1) / 2
    outer, gap = half * (1 - rng.uniform(0.2, 0.45) * t), half * np.clip(rng.uniform(0.3, 0.5) * t - 0.02, 0, None)
    legs = (np.abs(x - centre) <= outer) & (np.abs(x - centre) >= gap)
    worn, kept = pixels[h - band :], keep[h - band :] > 0.5  # the bottom rows, the person's pixels in them
    masked = np.where(kept[..., None], worn, np.nan)
    colour = np.nanmedian(np.where(kept.any(0)[None, :, None], masked, worn), axis=0)  # each column's, robust to a hand
    light = bool(rng.random() < light_legs)
    if light:
        colour = np.broadcast_to(wall * rng.uniform(0.72, 0.95) + rng.uniform(-12, 12, 3), colour.shape)
    fabric = colour[None] * (1 - rng.uniform(0.0, 0.2) * t)[..., None] + rng.normal(0, 4, (length, w, 1))
    shoes = t >= 1 - rng.uniform(0.05, 0.09)
    fabric = np.where(shoes[..., None], rng.integers(10, 120, 3).astype(np.float32), fabric)
    below = np.where(legs[..., None], fabric, wall)
    person = np.concatenate([keep[..., None] * pixels + (1 - keep[..., None]) * wall, below])
    cut = int(h * rng.uniform(*cut))
    person = person[cut:]
    width = max(w, int(len(person) * rng.uniform(0.7, 0.8)))
    canvas = np.broadcast_to(wall, (len(person), width, 3)).copy()
    x0 = int(rng.integers(0, width - w + 1))
    canvas[:, x0 : x0 + w] = person
    drawn = np.zeros((len(person), width), bool)
    drawn[h - cut :, x0 : x0 + w] = legs & ~shoes
    shod = np.zeros_like(drawn)
    shod[h - cut :, x0 : x0 + w] = legs & shoes
    return FullLength(canvas, drawn, shod, light, cut, x0)
