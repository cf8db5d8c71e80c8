"""Train-time augmentation: the same random changes on photos (Pillow, per sample) and on
batches of fitted inputs on the training device (PyTorch), from the same ranges.

Photo, mask, label map and catalog garment always move together; the catalog garment
takes the photo's colour changes (jitter, black and white) inside its silhouette only (its
background stays white), but not another light (``lighting_gains``): that is the photo's.
Framing changes teach the models photos of any framing: the segmenter sees whole photos
zoomed out and shifted, the generator fitted inputs resampled from fewer pixels. A
segmenter batch can also take garment-free photos and photos of other aspects (``scenes``).
Randomness comes only from the generator passed in, so a run is reproducible and resumable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance

from ..eval.datasets import garment_silhouette
from .distributed import to_device
from .scene_photos import ScenePhotos
from .scenes import with_scenes

# The training settings that are changes of the samples (``TrainConfig`` names, ``Augmentation`` fields)
CHANGES = (
    "framing",
    "negatives",
    "letterbox",
    "backdrops",
    "busy",
    "retexture",
    "catalogs",
    "objects",
    "full_length",
    "retexture_lower",
    "drawn",
    "grayscale",
    "lighting",
    "scene_share",
)


@dataclass(frozen=True)
class Augmentation:
    """Random changes applied to the photo and its mask together (and the garment where it matters).

    Framing (catalog photos come in every framing, from close-up to full-body studio
    shots): ``zoom_out`` shrinks the whole photo to as little as that fraction of the frame
    (padded with the background colour, shifted anywhere inside) with probability
    ``framing``, for the segmenter, which sees the whole photo; ``degrade`` resamples the
    generator's fitted input from as few as that fraction of its pixels with probability
    ``framing``, as a garment that fills a fifth of a full-body photo arrives.
    """

    flip: float = 0.5  # probability of a horizontal flip (photo, mask and catalog garment)
    rotate_degrees: float = 5.0  # +- rotation of photo and mask
    scale: float = 0.08  # +- relative zoom of photo and mask
    jitter: float = (
        0.1  # +- brightness / contrast / saturation, photo and garment alike (the garment, not its background)
    )
    framing: float = 0.0  # probability of a framing change (zoom_out for the segmenter, degrade for the generator)
    zoom_out: float = 0.35  # smallest scale of a zoomed-out photo
    degrade: float = 0.4  # smallest share of the fitted input's resolution kept
    negatives: float = 0.0  # segmenter: share of samples replaced by photos with no garment at all
    letterbox: float = 0.0  # segmenter: probability of a sample cropped to another aspect and letterboxed
    backdrops: float = 0.0  # parser: probability of a sample on another backdrop (its labels say where)
    busy: float = 0.0  # parser: probability of a sample on a busy backdrop (and share of busy negatives)
    retexture: float = 0.0  # parser: probability of a sample whose garment gets another fabric (a texture)
    catalogs: float = 0.0  # segmenter: probability of a sample replaced by its catalog garment alone
    objects: float = 0.0  # segmenter: share of the negatives that are objects alone on a backdrop
    full_length: float = 0.0  # parser: probability of a sample drawn on down to the feet (full_length)
    retexture_lower: float = 0.0  # parser: probability of a sample whose lower clothes get another fabric
    drawn: float = 0.0  # parser: probability of a sample drawn in flat colours (scenes.with_drawn)
    aspects: tuple[float, float] = (0.4, 2.4)  # range of a letterboxed crop's width / height (log-uniform)
    grayscale: float = 0.0  # probability of a black-and-white photo (and garment: saturation 0, after the jitter)
    lighting: float = 0.0  # probability of another light on the photo alone: exposure x white balance
    exposure: tuple[float, float] = (0.4, 1.3)  # range of a lighting change's exposure gain
    white_balance: float = 0.25  # +- gain of each colour channel in a lighting change, on top of the exposure
    scene_share: float = 0.0  # parser: share of the busy scenes that are crops of scene_photos
    scene_photos: ScenePhotos | None = None  # parser: photographed garment-free scenes (train.scene_photos)

    @classmethod
    def from_config(cls, config) -> Augmentation:
        """The augmentation of a training run's settings (``TrainConfig``): its ``CHANGES``."""
        photos = ScenePhotos.load(config.scene_photos) if config.scene_photos else None
        return cls(**{name: getattr(config, name) for name in CHANGES}, scene_photos=photos)


def framing_draws(rng: np.random.Generator, n: int, settings: Augmentation) -> tuple[np.ndarray, np.ndarray]:
    """(amount 0..1, [n, 2] shift -1..1 as a share of the room a zoomed-out photo leaves) per
    sample; 0 where no framing change is drawn. Drawn after the other augmentations, so runs
    without framing changes see the random streams they always saw."""
    changed = rng.random(n) < settings.framing
    amount = np.where(changed, rng.uniform(0.0, 1.0, n), 0.0)
    shift = np.where(changed[:, None], rng.uniform(-1, 1, (n, 2)), 0.0)
    return amount, shift


def color_factors(rng: np.random.Generator, n: int, settings: Augmentation) -> np.ndarray | None:
    """[n, 3] brightness / contrast / saturation factors, or None for no colour change.

    Only the jitter's draw is made here; ``with_grayscale`` adds the black-and-white draws
    after every other one, so runs without them see the random streams they always saw."""
    return rng.uniform(1 - settings.jitter, 1 + settings.jitter, (n, 3)) if settings.jitter else None


def with_grayscale(factors: np.ndarray | None, rng: np.random.Generator, n: int, settings: Augmentation):
    """``factors`` with saturation 0 (Pillow's Color enhancer at 0: the photo's own gray
    version) for the samples drawn black and white, with probability ``settings.grayscale``;
    unchanged, and nothing drawn, when that is 0."""
    if not settings.grayscale:
        return factors
    gray = rng.random(n) < settings.grayscale
    if not gray.any():
        return factors
    factors = np.ones((n, 3)) if factors is None else factors.copy()
    factors[gray, 2] = 0.0
    return factors


def lighting_gains(rng: np.random.Generator, n: int, settings: Augmentation) -> np.ndarray | None:
    """[n, 3] gains of each colour channel of the photo (exposure x white balance), 1 where
    no lighting change is drawn (probability ``settings.lighting``); None, and nothing
    drawn, when that is 0. Drawn after every other draw, as ``with_grayscale``.

    The light is the photo's alone: a catalog garment keeps its colours (a generator
    learns to see through the light of the photo), a try-on's catalog garment too, while
    the person photo, its input and its truth, takes the light."""
    if not settings.lighting:
        return None
    changed = rng.random(n) < settings.lighting
    exposure = rng.uniform(*settings.exposure, n)
    balance = rng.uniform(1 - settings.white_balance, 1 + settings.white_balance, (n, 3))
    return np.where(changed[:, None], exposure[:, None] * balance, 1.0)


def relight(rgb: torch.Tensor, gains: np.ndarray) -> torch.Tensor:
    """float [N, 3, H, W] in 0..255 (rounded first) times ``gains`` [N, 3], back to uint8 levels."""
    g = to_device(gains, rgb.device, torch.float32)[:, :, None, None]
    return (rgb.round().clamp(0, 255) * g).clamp(0, 255).floor()


def zoom_for(amount: np.ndarray, settings: Augmentation) -> np.ndarray:
    """The segmenter's zoom-out factor for a framing ``amount``."""
    return 1.0 - amount * (1.0 - settings.zoom_out)


def resolution_for(amount: np.ndarray, settings: Augmentation) -> np.ndarray:
    """The share of the generator input's resolution kept for a framing ``amount``."""
    return 1.0 - amount * (1.0 - settings.degrade)


def degrade(images: torch.Tensor, keep: np.ndarray) -> torch.Tensor:
    """Each uint8 NHWC image resampled through ``keep`` (<= 1) of its resolution and back."""
    out = images.clone()
    h, w = images.shape[1:3]
    for i in np.flatnonzero(keep < 0.999):
        small = (max(2, round(h * keep[i])), max(2, round(w * keep[i])))
        x = images[i : i + 1].permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=small, mode="bilinear", antialias=True, align_corners=False)
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        out[i] = x.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0)
    return out


def augment(
    photo: Image.Image,
    mask: Image.Image,
    garment: Image.Image | None,
    rng: np.random.Generator,
    settings: Augmentation,
    fill_rgb: tuple[int, int, int] = (255, 255, 255),
    zoom_out: bool = False,
    labels: Image.Image | None = None,
) -> tuple[Image.Image, Image.Image, Image.Image | None, Image.Image | None]:
    """Augment one sample; photo, mask and ``labels`` (a parser's class map, moved with
    nearest neighbours) always move together. ``zoom_out``: framing changes of the whole
    photo (the segmenter's input)."""
    flip = Image.Transpose.FLIP_LEFT_RIGHT
    if rng.random() < settings.flip:
        photo, mask = photo.transpose(flip), mask.transpose(flip)
        garment = garment.transpose(flip) if garment is not None else None
        labels = labels.transpose(flip) if labels is not None else None
    angle = math.radians(rng.uniform(-settings.rotate_degrees, settings.rotate_degrees))
    zoom = rng.uniform(1 - settings.scale, 1 + settings.scale)
    jitter = color_factors(rng, 1, settings)
    amount, (shift,) = framing_draws(rng, 1, settings) if zoom_out else (np.zeros(1), np.zeros((1, 2)))
    jitter = with_grayscale(jitter, rng, 1, settings)
    gains = lighting_gains(rng, 1, settings)
    zoom *= float(zoom_for(amount, settings)[0])
    if angle or zoom != 1:
        # Inverse affine map (output -> input pixel) of a rotation + zoom about the centre,
        # then a shift of the zoomed-out photo within the room it leaves (a share of the size).
        # The mask's own centre is used for the mask, so masks of another resolution stay aligned.
        room = max(0.0, 1.0 - zoom) / 2

        def warp(image: Image.Image, fill, resample) -> Image.Image:
            cx, cy = image.width / 2, image.height / 2
            tx, ty = shift[0] * room * image.width, shift[1] * room * image.height
            cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
            matrix = (
                cos,
                sin,
                cx - cos * (cx + tx) - sin * (cy + ty),
                -sin,
                cos,
                cy + sin * (cx + tx) - cos * (cy + ty),
            )
            return image.transform(image.size, Image.Transform.AFFINE, matrix, resample=resample, fillcolor=fill)

        photo = warp(photo, fill_rgb, Image.Resampling.BILINEAR)
        mask = warp(mask, 0, Image.Resampling.BILINEAR)
        labels = warp(labels, 0, Image.Resampling.NEAREST) if labels is not None else None
    if gains is not None:
        lit = relight(torch.from_numpy(np.asarray(photo).astype(np.float32)).permute(2, 0, 1)[None], gains)
        photo = Image.fromarray(lit[0].permute(1, 2, 0).numpy().astype(np.uint8))
    if jitter is not None:
        factors = jitter[0]
        enhancers = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
        original = garment
        for enhancer, factor in zip(enhancers, factors, strict=True):
            photo = enhancer(photo).enhance(factor)
            if garment is not None:
                garment = enhancer(garment).enhance(factor)
        if garment is not None:
            # The garment changes with the photo; the catalog background stays the background.
            inside = garment_silhouette(np.asarray(original), fill_rgb)
            garment = Image.composite(garment, original, Image.fromarray(inside.astype(np.uint8) * 255, "L"))
    return photo, mask, garment, labels


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
    mask, catalog image and its silhouette (``alpha``); a rotation and zoom of photo and
    mask about the input's centre, uncovered pixels filled with the background colour
    (photo) or 0 (mask); brightness/contrast/saturation jitter (black and white: saturation
    0) of the photo and of the catalog garment inside its silhouette alike; another light on
    the photo alone; framing changes (zoom-out and shift for a
    segmenter batch, whose target is the mask; a resolution loss for a generator batch).
    """
    image, mask = batch["image"], batch.get("mask")
    segmenter = mask is None
    n, height, width = image.shape[:3]
    device = image.device
    flip = to_device(rng.random(n) < settings.flip, device)
    angle = np.radians(rng.uniform(-settings.rotate_degrees, settings.rotate_degrees, n))
    zoom = rng.uniform(1 - settings.scale, 1 + settings.scale, n)
    factors = color_factors(rng, n, settings)
    amount, shift = framing_draws(rng, n, settings)
    factors = with_grayscale(factors, rng, n, settings)
    gains = lighting_gains(rng, n, settings)
    if segmenter:
        zoom = zoom * zoom_for(amount, settings)
    room = np.clip(1.0 - zoom, 0.0, None)[:, None] * shift if segmenter else np.zeros((n, 2))

    def nchw(t: torch.Tensor) -> torch.Tensor:
        t = t.permute(0, 3, 1, 2).float()
        return torch.where(flip[:, None, None, None], t.flip(-1), t)

    photo = nchw(image)
    # Inverse map (output -> input) of rotation + zoom about the centre and a shift, in the
    # normalised coordinates of affine_grid; the aspect ratio enters because x and y scale
    # differently. The shift moves a zoomed-out photo within the room it leaves.
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    theta = np.zeros((n, 2, 3), dtype=np.float32)
    theta[:, 0, 0], theta[:, 0, 1] = cos, sin * height / width
    theta[:, 1, 0], theta[:, 1, 1] = -sin * width / height, cos
    theta[:, 0, 2] = -(theta[:, 0, 0] * room[:, 0] + theta[:, 0, 1] * room[:, 1])
    theta[:, 1, 2] = -(theta[:, 1, 0] * room[:, 0] + theta[:, 1, 1] * room[:, 1])
    grid = F.affine_grid(to_device(theta, device), [n, 1, height, width], align_corners=False)
    planes = [photo, torch.ones_like(photo[:, :1])]
    if mask is not None:
        planes.append(nchw(mask))
    warped = F.grid_sample(torch.cat(planes, 1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    coverage = warped[:, 3:4]
    fill = to_device(fill_rgb, device, photo.dtype)[None, :, None, None]
    if segmenter:  # a zoomed-out photo continues in its own backdrop's colour, not in a white frame
        border = torch.cat([photo[:, :, 0], photo[:, :, -1], photo[:, :, :, 0], photo[:, :, :, -1]], dim=2)
        fill = border.median(dim=2).values[:, :, None, None]
    photo = warped[:, :3] + (1 - coverage) * fill
    out = dict(batch)
    if mask is not None:
        out["mask"] = warped[:, 4:5].round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    target = nchw(batch["target"]) if "target" in batch else None
    alpha = nchw(batch["alpha"]) if "alpha" in batch else None
    if target is not None and segmenter:
        # Segmenter: the target is the mask and moves with the photo.
        target = F.grid_sample(target, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    elif factors is not None and target is not None:
        jittered = _jitter(target, to_device(factors, device, torch.float32))
        # The garment changes with the photo; the catalog background stays the background.
        target = jittered if alpha is None else torch.where(alpha > 127, jittered, target)
    if gains is not None:
        photo = relight(photo, gains)
    if factors is not None:
        photo = _jitter(photo.round().clamp(0, 255), to_device(factors, device, torch.float32))
    out["image"] = photo.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    if not segmenter:
        out["image"] = degrade(out["image"], resolution_for(amount, settings))
    if target is not None:
        out["target"] = target.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    if alpha is not None:
        out["alpha"] = alpha.to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    if "labels" in batch:
        labels = F.grid_sample(nchw(batch["labels"]), grid, mode="nearest", padding_mode="zeros", align_corners=False)
        out["labels"] = labels.to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    if segmenter:
        out = with_scenes(
            out,
            rng,
            settings.negatives,
            settings.letterbox,
            settings.aspects,
            settings.backdrops,
            settings.catalogs,
            settings.busy,
            settings.retexture,
            settings.objects,
            settings.full_length,
            settings.retexture_lower,
            settings.drawn,
            settings.scene_photos,
            settings.scene_share,
        )
    return out


def augment_tryon_batch(
    batch: dict[str, torch.Tensor], rng: np.random.Generator, settings: Augmentation
) -> dict[str, torch.Tensor]:
    """A try-on batch augmented on its device: person, region, worn mask, garment and its mask
    flipped together; the person and the garment take the same colour change, the garment
    inside its silhouette only."""
    n = len(batch["person"])
    device = batch["person"].device
    flip = to_device(rng.random(n) < settings.flip, device)
    factors = with_grayscale(color_factors(rng, n, settings), rng, n, settings)
    gains = lighting_gains(rng, n, settings)
    out = {}
    for name, tensor in batch.items():
        flipped = torch.where(flip[:, None, None, None], tensor.flip(2), tensor)
        out[name] = flipped.contiguous()
    if gains is not None:
        lit = relight(out["person"].permute(0, 3, 1, 2).float(), gains)
        out["person"] = lit.to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    if factors is not None:
        jitter = to_device(factors, device, torch.float32)
        for name in ("person",):
            x = out[name].permute(0, 3, 1, 2).float()
            out[name] = _jitter(x, jitter).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        garment = out["garment"].permute(0, 3, 1, 2).float()
        changed = _jitter(garment, jitter)
        inside = out["garment_mask"].permute(0, 3, 1, 2) > 127
        garment = torch.where(inside, changed, garment)
        out["garment"] = garment.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return out
