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
import torch.nn.functional as F
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


def preload(
    dataset: GarmentDataset, device: torch.device, workers: int, batch_size: int = 64
) -> dict[str, torch.Tensor]:
    """Every item of ``dataset`` decoded and fitted once, stacked as uint8 tensors on ``device``.

    At 256x192 a generator sample is 344 KB (photo, mask, catalog image), so VITON's 7,000
    training pairs take 2.4 GB: nothing for a GPU, and they never cross the bus again.
    """
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in loader:
        for name, tensor in batch.items():
            parts.setdefault(name, []).append(tensor.to(device))
    return {name: torch.cat(tensors) for name, tensors in parts.items()}


def _gray(rgb: torch.Tensor) -> torch.Tensor:
    """Pillow's RGB -> L conversion (ITU-R 601-2 luma) of float [N, 3, H, W]: [N, 1, H, W]."""
    return (rgb[:, 0:1] * 299 + rgb[:, 1:2] * 587 + rgb[:, 2:3] * 114) / 1000


def _jitter(rgb: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Pillow's Brightness, Contrast and Color enhancers in turn, each back to uint8 levels.

    ``rgb``: float [N, 3, H, W] in 0..255; ``factors``: [N, 3]. Each enhancer is a blend
    with a degenerate image, which Pillow truncates to uint8.
    """
    f = factors[:, :, None, None, None]

    def blend(degenerate: torch.Tensor, image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return (degenerate + factor * (image - degenerate)).clamp(0, 255).floor()

    out = blend(torch.zeros_like(rgb), rgb, f[:, 0])  # brightness: with black
    mean = _gray(out).round().mean(dim=(1, 2, 3), keepdim=True).add(0.5).floor()  # contrast: with the mean gray
    out = blend(mean, out, f[:, 1])
    return blend(_gray(out).round(), out, f[:, 2])  # color: with the image's own gray version


def augment_batch(
    batch: dict[str, torch.Tensor],
    rng: np.random.Generator,
    settings: Augmentation,
    fill_rgb: tuple[int, int, int] = (255, 255, 255),
) -> dict[str, torch.Tensor]:
    """``augment`` for a batch of fitted uint8 NHWC tensors, on their device.

    The same changes with the same ranges as the per-photo augmentation of the loader
    path, applied to the fitted model input instead of the full photo: a flip of photo,
    mask and catalog image; a rotation and zoom of photo and mask about the input's
    centre, uncovered pixels filled with the background colour (photo) or 0 (mask);
    brightness/contrast/saturation jitter of photo and catalog image alike.
    """
    image, mask = batch["image"], batch.get("mask")
    n, height, width = image.shape[:3]
    device = image.device
    flip = torch.from_numpy(rng.random(n) < settings.flip).to(device)
    angle = np.radians(rng.uniform(-settings.rotate_degrees, settings.rotate_degrees, n))
    zoom = rng.uniform(1 - settings.scale, 1 + settings.scale, n)
    factors = rng.uniform(1 - settings.jitter, 1 + settings.jitter, (n, 3)) if settings.jitter else None

    def nchw(t: torch.Tensor) -> torch.Tensor:
        t = t.permute(0, 3, 1, 2).float()
        return torch.where(flip[:, None, None, None], t.flip(-1), t)

    photo = nchw(image)
    # Inverse map (output -> input) of rotation + zoom about the centre, in the normalised
    # coordinates of affine_grid; the aspect ratio enters because x and y scale differently.
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    theta = np.zeros((n, 2, 3), dtype=np.float32)
    theta[:, 0, 0], theta[:, 0, 1] = cos, sin * height / width
    theta[:, 1, 0], theta[:, 1, 1] = -sin * width / height, cos
    grid = F.affine_grid(torch.from_numpy(theta).to(device), [n, 1, height, width], align_corners=False)
    planes = [photo, torch.ones_like(photo[:, :1])]
    if mask is not None:
        planes.append(nchw(mask))
    warped = F.grid_sample(torch.cat(planes, 1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    coverage = warped[:, 3:4]
    fill = torch.tensor(fill_rgb, dtype=photo.dtype, device=device)[None, :, None, None]
    photo = warped[:, :3] + (1 - coverage) * fill
    out = dict(batch)
    if mask is not None:
        out["mask"] = warped[:, 4:5].round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    target = nchw(batch["target"]) if "target" in batch else None
    if target is not None and "mask" not in batch:
        # Segmenter: the target is the mask and moves with the photo.
        target = F.grid_sample(target, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    elif factors is not None and target is not None:
        target = _jitter(target, torch.from_numpy(factors).float().to(device))
    if factors is not None:
        photo = _jitter(photo.round().clamp(0, 255), torch.from_numpy(factors).float().to(device))
    out["image"] = photo.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    if target is not None:
        out["target"] = target.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return out


class DeviceLoader:
    """Batches of a dataset held on the device (``preload``), gathered and augmented there.

    Follows ``sampler`` (so the order, the sharding across processes and a mid-epoch
    resume are the loader path's), drops the last partial batch when ``drop_last``;
    augmentation randomness comes from ``(seed, epoch, batch index)``.
    """

    def __init__(
        self,
        arrays: dict[str, torch.Tensor],
        batch_size: int,
        sampler: EpochSampler | None = None,
        augmentation: Augmentation | None = None,
        seed: int = 0,
        fill_rgb: tuple[int, int, int] = (255, 255, 255),
        drop_last: bool = False,
    ):
        self.arrays, self.batch_size, self.sampler = arrays, batch_size, sampler
        self.augmentation, self.seed, self.fill_rgb, self.drop_last = augmentation, seed, fill_rgb, drop_last
        self.size = len(next(iter(arrays.values())))

    def __len__(self) -> int:
        items = len(self.sampler) if self.sampler is not None else self.size
        return items // self.batch_size if self.drop_last else -(-items // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self.sampler is None:
            epoch, first, order = 0, 0, list(range(self.size))
        else:
            epoch, first = self.sampler.epoch, self.sampler.start // self.batch_size
            order = [index for _, index in self.sampler]
        device = next(iter(self.arrays.values())).device
        for number in range(len(self)):
            chosen = order[number * self.batch_size : (number + 1) * self.batch_size]
            index = torch.tensor(chosen, device=device)
            batch = {name: tensor.index_select(0, index) for name, tensor in self.arrays.items()}
            if self.augmentation is not None:
                rng = np.random.default_rng([self.seed, epoch, first + number])
                batch = augment_batch(batch, rng, self.augmentation, self.fill_rgb)
            yield batch
