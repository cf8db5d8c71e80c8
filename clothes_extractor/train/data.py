"""PyTorch datasets over the runtime's dataset records, with train-time augmentation.

Photos and masks are decoded and fitted to the model by the runtime's own functions
(``load_sample``, ``fit_sample``), so training sees exactly what serving will. Items are
uint8 NHWC arrays, the served model's own input format; the loop converts them on the
device with the same functions the exported graph uses.

Augmentation randomness comes from ``(seed, epoch, index)`` alone, so a run gives the same
batches whatever the number of loader workers, and a resumed run continues exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageEnhance

from ..runtime.contract import ModelContract
from ..runtime.datasets import Sample, fit_sample, load_sample


@dataclass(frozen=True)
class Augmentation:
    """Random changes applied to the photo and its mask together (and the garment where it matters)."""

    flip: float = 0.5  # probability of a horizontal flip (photo, mask and catalog garment)
    rotate_degrees: float = 5.0  # +- rotation of photo and mask
    scale: float = 0.08  # +- relative zoom of photo and mask
    jitter: float = 0.1  # +- brightness / contrast / saturation, photo and garment alike


def augment(
    photo: Image.Image,
    mask: Image.Image,
    garment: Image.Image | None,
    rng: np.random.Generator,
    settings: Augmentation,
    fill_rgb: tuple[int, int, int] = (255, 255, 255),
) -> tuple[Image.Image, Image.Image, Image.Image | None]:
    """Augment one sample; photo and mask always move together."""
    if rng.random() < settings.flip:
        photo, mask = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), mask.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if garment is not None:
            garment = garment.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    angle = math.radians(rng.uniform(-settings.rotate_degrees, settings.rotate_degrees))
    zoom = rng.uniform(1 - settings.scale, 1 + settings.scale)
    if angle or zoom != 1:
        # Inverse affine map (output -> input pixel) of a rotation + zoom about the centre.
        # The mask's own centre is used for the mask, so masks of another resolution stay aligned.
        def warp(image: Image.Image, fill, resample) -> Image.Image:
            cx, cy = image.width / 2, image.height / 2
            cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
            matrix = (cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)
            return image.transform(image.size, Image.Transform.AFFINE, matrix, resample=resample, fillcolor=fill)

        photo = warp(photo, fill_rgb, Image.Resampling.BILINEAR)
        mask = warp(mask, 0, Image.Resampling.BILINEAR)
    if settings.jitter:
        factors = rng.uniform(1 - settings.jitter, 1 + settings.jitter, 3)
        enhancers = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
        for enhancer, factor in zip(enhancers, factors, strict=True):
            photo = enhancer(photo).enhance(factor)
            if garment is not None:
                garment = enhancer(garment).enhance(factor)
    return photo, mask, garment


class GarmentDataset(torch.utils.data.Dataset):
    """Items are dicts of uint8 arrays as ``fit_sample`` makes them, keyed by input name.

    Indexed by ``(epoch, index)`` pairs (``EpochSampler`` yields them), so augmentation is a
    pure function of seed, epoch and index.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        contract: ModelContract,
        augmentation: Augmentation | None = None,
        seed: int = 0,
    ):
        self.samples = list(samples)
        self.contract = contract
        self.augmentation = augmentation
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        photo, mask, garment = load_sample(self.samples[index])
        if self.augmentation is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            photo, mask, garment = augment(photo, mask, garment, rng, self.augmentation, self.contract.fit.pad_rgb)
        arrays = fit_sample(photo, mask, garment, self.contract)
        return {name: torch.from_numpy(np.require(a, requirements=["C", "W"])) for name, a in arrays.items()}


class EpochSampler(torch.utils.data.Sampler):
    """A seeded shuffle per epoch, sharded across ``world`` processes, resumable mid-epoch.

    Yields ``(epoch, index)``. Every rank gets ``len(dataset) // world`` items, so all ranks
    run the same number of steps.
    """

    def __init__(self, size: int, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1):
        self.size, self.seed, self.shuffle, self.rank, self.world = size, seed, shuffle, rank, world
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Next iteration yields ``epoch``'s items from item ``start`` (not batch) on."""
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.size // self.world - self.start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
            if self.shuffle
            else np.arange(self.size)
        )
        per_rank = self.size // self.world
        mine = order[self.rank :: self.world][:per_rank]
        for index in mine[self.start :]:
            yield self.epoch, int(index)
