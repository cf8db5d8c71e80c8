"""Segmenter samples that VITON does not hold: persons on other backdrops than VITON's pale
studio, plain or busy (a parser's labels say where the person is), garments in other fabrics
(a busy pattern is no sign of background), photos with no garment at all
(negatives), so that "no garment" is an answer the segmenter knows, a garment photographed
alone (its own catalog image: the garment and nothing of a person), and photos of other
aspects than its frame, letterboxed as the runtime letterboxes them
(``fitting.letterbox_for``), so that the bars around a landscape photo are nothing new,
with or without a garment between them, and persons drawn in flat colours.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..runtime.fitting import border_colour, letterbox
from ..tasks import PARSER_CLASSES, UPPER_CLASS
from .busy import busy_photos, texture
from .full_length import LIGHT_LEGS, draw_full_length
from .products import product_photos
from .scene_photos import ScenePhotos

BACKDROP_KINDS = (0, 1, 3)  # of ``negative_photos``': plain, a gradient or smooth blotches, no pixel noise
NECK_GAP = 0.25  # of the height: the most between chin and a low neckline
LOWER_CLASS, LEGS_CLASS = PARSER_CLASSES.index("lower"), PARSER_CLASSES.index("legs")
SKIN_CLASSES = [PARSER_CLASSES.index(name) for name in ("face", "arms", "legs")]  # one colour in some drawings
# A parser's full-length samples lose their top rows by up to this share of the photo's height:
# the head and neck too, as catalog photos often crop them (cut down to the mouth only, a
# parser taught objects took the tops of headless full-length photos for no garment: 26 of 240)
HEADLESS_CUT = (0.0, 0.35)


def negative_photos(
    n: int, height: int, width: int, rng: np.random.Generator, kinds: tuple[int, ...] | None = None
) -> np.ndarray:
    """``n`` photos with no person and no garment, uint8 [n, H, W, 3]: plain colours, gradients,
    pixel noise and smooth blotches (kinds 0 to 3; ``kinds`` picks some), what a folder job
    meets among real photos."""
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        kind = rng.integers(4) if kinds is None else kinds[rng.integers(len(kinds))]
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        if kind == 0:
            out[i] = a
        elif kind == 1:
            ramp = np.linspace(0, 1, height if rng.random() < 0.5 else width, dtype=np.float32)
            ramp = ramp[:, None, None] if len(ramp) == height else ramp[None, :, None]
            out[i] = np.broadcast_to(a + (b - a) * ramp, (height, width, 3)).astype(np.uint8)
        elif kind == 2:
            out[i] = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        else:
            small = rng.integers(0, 256, (int(rng.integers(2, 9)), int(rng.integers(2, 9)), 3), dtype=np.uint8)
            out[i] = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))
    return out


def busy_scenes(
    n: int, height: int, width: int, rng: np.random.Generator, photos: ScenePhotos | None = None, share: float = 0.0
) -> np.ndarray:
    """``n`` busy scenes, uint8 [n, H, W, 3]: drawn (``busy.busy_photos``), and where ``photos``
    are given about ``share`` of them crops of those photographed scenes (``ScenePhotos.crops``)."""
    if photos is None or not share:
        return busy_photos(n, height, width, rng)
    shot = rng.random(n) < share
    out = np.empty((n, height, width, 3), np.uint8)
    out[~shot] = busy_photos(int((~shot).sum()), height, width, rng)
    out[shot] = photos.crops(int(shot.sum()), height, width, rng)
    return out


def with_backdrops(
    batch: dict[str, torch.Tensor],
    rng: np.random.Generator,
    share: float,
    busy: bool = False,
    scene_photos: ScenePhotos | None = None,
    scene_share: float = 0.0,
) -> dict[str, torch.Tensor]:
    """A parser batch where about ``share`` of the samples stand on another backdrop: a plain
    colour, a gradient or smooth blotches of any colour (``busy``: a busy scene,
    ``busy_scenes``: ``scene_share`` of them photographed, where ``scene_photos`` are given)
    outside the person, blended over one
    pixel at the person's edge. The person is each row of the labels from its first
    non-background pixel to its last, and gaps of up to ``NECK_GAP`` of the height between
    them in a column: VITON's parse maps call neck and chest skin background, and they stay
    skin (the backdrop between an arm and the body stays too). Labels and target are
    unchanged."""
    n, height, width = batch["image"].shape[:3]
    chosen = np.flatnonzero(rng.random(n) < share)
    if not len(chosen):
        return batch
    index = torch.from_numpy(chosen).to(batch["image"].device)
    keep = person_keep(batch["labels"].index_select(0, index))
    if busy:
        backdrops = busy_scenes(len(chosen), height, width, rng, scene_photos, scene_share)
    else:
        backdrops = negative_photos(len(chosen), height, width, rng, BACKDROP_KINDS)
    backdrops = torch.from_numpy(backdrops)
    photos = batch["image"].index_select(0, index).float()
    moved = keep * photos + (1 - keep) * backdrops.to(photos.device).float()
    out = dict(batch)
    out["image"] = batch["image"].index_copy(0, index, moved.round().clamp(0, 255).to(torch.uint8))
    return out


def person_keep(labels: torch.Tensor) -> torch.Tensor:
    """Where a photo's person is, float [N, H, W, 1] 0..1 (feathered over a pixel), from its
    parser labels ([N, H, W, 1], 0 = background): each row from its first person pixel to its
    last, and gaps of up to ``NECK_GAP`` of the height between them in a column (the parse
    maps' neck and chest skin)."""
    height = labels.shape[1]
    person = (labels[..., 0] > 0).float()
    rows = person.cummax(dim=2).values * person.flip(2).cummax(dim=2).values.flip(2)
    k = round(NECK_GAP * height) | 1  # a vertical closing: dilated, then eroded, by k rows (outside: background)
    rows_out = (0, 0, k // 2, k // 2)
    grown = F.max_pool2d(F.pad(person[:, None], rows_out), (k, 1), 1)
    neck = -F.max_pool2d(-F.pad(grown, rows_out), (k, 1), 1)
    return F.avg_pool2d(torch.maximum(rows[:, None], neck), 3, 1, 1, count_include_pad=False).permute(0, 2, 3, 1)


def with_retexture(
    batch: dict[str, torch.Tensor], rng: np.random.Generator, share: float, garment_class: int = UPPER_CLASS
) -> dict[str, torch.Tensor]:
    """A parser batch where about ``share`` of the samples wear their garment (the pixels of
    ``garment_class``: the upper clothes, or the lower ones) in another fabric: a texture of
    ``busy.texture`` (stripes, checks, wood, stone, blurred dots) over it, shaded by the
    garment's own light (each pixel's luminance over the garment's mean), so that a busy
    pattern is no sign of background (nor, the lower clothes retextured too, of a top). Labels
    and target are unchanged."""
    n, height, width = batch["image"].shape[:3]
    chosen = np.flatnonzero(rng.random(n) < share)
    if not len(chosen):
        return batch
    out = dict(batch)
    image = batch["image"].clone()
    for i in chosen.tolist():
        garment = (batch["labels"][i, ..., 0] == garment_class).float()
        if garment.sum() < 1:
            continue
        photo = image[i].float()
        light = photo.mean(-1, keepdim=True)
        shade = (light / (light[garment > 0].mean() + 1)).clamp(0.2, 1.8)
        fabric = torch.from_numpy(texture(height, width, rng)).to(photo.device) * shade
        keep = F.avg_pool2d(garment[None, None], 3, 1, 1, count_include_pad=False)[0, 0, ..., None]
        image[i] = (keep * fabric + (1 - keep) * photo).round().clamp(0, 255).to(torch.uint8)
    out["image"] = image
    return out


def with_full_length(
    batch: dict[str, torch.Tensor],
    rng: np.random.Generator,
    share: float,
    light_legs: float = LIGHT_LEGS,
    cut: tuple[float, float] = HEADLESS_CUT,
) -> dict[str, torch.Tensor]:
    """A parser batch where about ``share`` of the photos became full-length studio shots
    (``full_length.draw_full_length``: the person, cut at the thighs, drawn on down to the
    feet, ``light_legs`` of them in light trousers near the wall's colour, on the photo's
    border colour, its top cut off by a share of its height in ``cut``), fitted into the frame
    whole (scaled to fit, the rest wall). The drawn trousers are labelled lower clothes (or
    legs, where the photo's bottom rows are mostly bare legs), the shoes legs; the garment mask
    moves with the photo. A photo whose person does not reach its bottom (zoomed out already)
    stays as it is. Without them a parser taught that objects are no garment took the small
    tops of full-body photos for objects."""
    chosen = np.flatnonzero(rng.random(len(batch["image"])) < share)
    if not len(chosen):
        return batch
    out = {name: tensor.clone() for name, tensor in batch.items() if name in ("image", "target", "labels")}
    keeps = person_keep(batch["labels"][torch.from_numpy(chosen).to(batch["labels"].device)]).cpu().numpy()
    height, width = batch["image"].shape[1:3]
    for i, keep in zip(chosen.tolist(), keeps, strict=True):
        photo, labels = batch["image"][i].cpu().numpy(), batch["labels"][i].cpu().numpy()
        wall = np.asarray(border_colour(photo), np.float32)
        drawn = draw_full_length(photo.astype(np.float32), keep[..., 0], wall, rng, light_legs, cut)
        if drawn is None:
            continue
        planes = {"image": np.clip(drawn.image, 0, 255).round().astype(np.uint8), "labels": drawn.laid_out(labels)}
        planes["labels"][drawn.legs] = _trousers_class(labels, drawn.light)
        planes["labels"][drawn.shoes] = LEGS_CLASS
        if "target" in batch:
            planes["target"] = drawn.laid_out(batch["target"][i].cpu().numpy())
        fill = {"image": tuple(int(c) for c in wall), "labels": 0, "target": 0}
        for name, plane in planes.items():  # the whole frame into the model's, aspect kept, the rest wall
            resample = Image.Resampling.NEAREST if name == "labels" else Image.Resampling.BILINEAR
            fitted, _ = letterbox(
                Image.fromarray(plane.squeeze(-1) if name != "image" else plane), (height, width), fill[name], resample
            )
            out[name][i] = torch.from_numpy(np.array(fitted).reshape(out[name].shape[1:])).to(out[name].device)
    return {**batch, **out}


def with_drawn(batch: dict[str, torch.Tensor], rng: np.random.Generator, share: float) -> dict[str, torch.Tensor]:
    """A parser batch where about ``share`` of the photos became drawings in flat colours:
    each of the person's parts (each class of its labels: hair, face, top, lower clothes,
    arms, legs) painted in one colour, its own mean or another (the skin's parts, half the
    time, in one), on a plain backdrop, light mostly, with a little pixel noise. Labels and
    target are unchanged. A parser taught that flat shapes on a backdrop are objects
    (``--objects``) took a person drawn so (the example figures, two in a photo) for
    objects; drawn from VITON's people, not from the examples' generator (``data.synth``)."""
    chosen = np.flatnonzero(rng.random(len(batch["image"])) < share)
    if not len(chosen):
        return batch
    out = dict(batch)
    image = batch["image"].clone()
    for i in chosen.tolist():
        labels = batch["labels"][i, ..., 0].long()
        photo = batch["image"][i].float()
        colours = torch.empty(len(PARSER_CLASSES), 3)
        for index in range(len(PARSER_CLASSES)):
            part = labels == index
            own = rng.random() < 0.5 and index > 0 and bool(part.any())
            colours[index] = photo[part].mean(0).cpu() if own else torch.from_numpy(rng.uniform(0, 255, 3))
        if rng.random() < 0.7:
            colours[0] = torch.from_numpy(rng.uniform(185, 255, 3))  # a light backdrop, as drawings have
        if rng.random() < 0.5:
            colours[SKIN_CLASSES] = colours[SKIN_CLASSES[0]].clone()
        noise = torch.from_numpy(rng.normal(0, 3, tuple(photo.shape)).astype(np.float32)).to(photo.device)
        drawn = colours.to(photo.device)[labels] + noise
        image[i] = drawn.round().clamp(0, 255).to(torch.uint8)
    out["image"] = image
    return out


def _trousers_class(labels: np.ndarray, light: bool) -> int:
    """What the drawn legs below a photo are: lower clothes, unless the photo's bottom rows
    (a twentieth of it) are more bare legs than lower clothes (their colour continues)."""
    band = labels[-max(2, labels.shape[0] // 20) :]
    if not light and (band == LEGS_CLASS).sum() > (band == LOWER_CLASS).sum():
        return LEGS_CLASS
    return LOWER_CLASS


def with_catalogs(batch: dict[str, torch.Tensor], rng: np.random.Generator, share: float) -> dict[str, torch.Tensor]:
    """A segmenter batch where about ``share`` of the photos became their own catalog garment
    (``catalog``, letterboxed as the photo is; ``catalog_mask`` its silhouette): the target is
    the silhouette and the labels the garment class there, background elsewhere, so a
    garment shown alone is a garment with no person around it. Made after the framing
    changes (a garment as small as a worn one, zoomed out, was taken for trousers in
    full-body photos) and before the backdrops and letterboxes. The catalog planes leave
    the batch."""
    out = {name: tensor for name, tensor in batch.items() if name not in ("catalog", "catalog_mask")}
    chosen = np.flatnonzero(rng.random(len(batch["image"])) < share)
    if not len(chosen):
        return out
    index = torch.from_numpy(chosen).to(batch["image"].device)
    silhouette = batch["catalog_mask"].index_select(0, index)
    out["image"] = batch["image"].index_copy(0, index, batch["catalog"].index_select(0, index))
    out["target"] = batch["target"].index_copy(0, index, silhouette)
    if "labels" in batch:
        garment = (silhouette > 127).to(batch["labels"].dtype) * UPPER_CLASS
        out["labels"] = batch["labels"].index_copy(0, index, garment)
    return out


def with_negatives(
    batch: dict[str, torch.Tensor],
    rng: np.random.Generator,
    share: float,
    busy: float = 0.0,
    objects: float = 0.0,
    scene_photos: ScenePhotos | None = None,
    scene_share: float = 0.0,
) -> dict[str, torch.Tensor]:
    """A segmenter batch where about ``share`` of the samples became garment-free photos
    (target mask and labels empty), ``busy`` of those busy scenes (``busy_scenes``:
    ``scene_share`` of them photographed, where ``scene_photos`` are given) and ``objects`` of them
    product photos of things that are no garment (``products.product_photos``): the model
    learns to say "no garment"."""
    chosen = np.flatnonzero(rng.random(len(batch["image"])) < share)
    if not len(chosen):
        return batch
    out = dict(batch)
    _, height, width, _ = batch["image"].shape
    index = torch.from_numpy(chosen).to(batch["image"].device)
    photos = negative_photos(len(chosen), height, width, rng)
    if busy:
        scenes = np.flatnonzero(rng.random(len(chosen)) < busy)
        photos[scenes] = busy_scenes(len(scenes), height, width, rng, scene_photos, scene_share)
    if objects:
        things = np.flatnonzero(rng.random(len(chosen)) < objects)
        photos[things] = product_photos(len(things), height, width, rng)
    photos = torch.from_numpy(photos).to(batch["image"].device)
    out["image"] = batch["image"].index_copy(0, index, photos)
    for name in ("target", "labels"):
        if name in batch:
            out[name] = batch[name].index_fill(0, index, 0)
    return out


def with_letterbox(
    batch: dict[str, torch.Tensor], rng: np.random.Generator, share: float, aspects: tuple[float, float]
) -> dict[str, torch.Tensor]:
    """A segmenter batch where about ``share`` of the samples (garment-free ones
    too) are photos of another aspect, letterboxed as the runtime letterboxes one
    (``fitting.letterbox_for``): a crop of the photo of that aspect, kept at its scale and
    centred, the rest in the crop's border colour (target and labels: 0). A band of wall
    between two bars is then a photo the segmenter has seen, with or without a garment."""
    n, height, width = batch["image"].shape[:3]
    chosen = rng.random(n) < share
    aspect = np.exp(rng.uniform(*np.log(aspects), n))  # the crop's width / height
    offset = rng.random(n)  # where the crop lies in the photo
    if not chosen.any():
        return batch
    out = {name: tensor.clone() for name, tensor in batch.items()}
    for i in np.flatnonzero(chosen):
        rows, cols = height, width
        if aspect[i] >= width / height:  # wider than the frame: a band of rows, bars above and below
            rows = min(height, max(2, round(width / aspect[i])))
        else:  # taller: a band of columns, bars left and right
            cols = min(width, max(2, round(height * aspect[i])))
        r0, c0 = round(offset[i] * (height - rows)), round(offset[i] * (width - cols))
        top, left = (height - rows) // 2, (width - cols) // 2
        for name, tensor in batch.items():
            crop = tensor[i, r0 : r0 + rows, c0 : c0 + cols]
            fill = border_colour(crop.cpu().numpy()) if name == "image" else (0,) * tensor.shape[-1]
            out[name][i] = torch.tensor(fill, dtype=tensor.dtype, device=tensor.device)
            out[name][i, top : top + rows, left : left + cols] = crop
    return out


def with_scenes(
    batch: dict[str, torch.Tensor],
    rng: np.random.Generator,
    negatives: float,
    letterbox: float,
    aspects,
    backdrops: float = 0.0,
    catalogs: float = 0.0,
    busy: float = 0.0,
    retexture: float = 0.0,
    objects: float = 0.0,
    full_length: float = 0.0,
    retexture_lower: float = 0.0,
    drawn: float = 0.0,
    scene_photos: ScenePhotos | None = None,
    scene_share: float = 0.0,
) -> dict[str, torch.Tensor]:
    """A segmenter batch with ``full_length`` of its samples drawn as full-length studio shots
    (parsers: their labels say where the person is) and ``drawn`` of them (after those)
    drawn in flat colours, ``catalogs`` of its samples replaced by their catalog garment
    (where the batch holds them: at the frame's scale, not zoomed out, turned or recoloured),
    ``backdrops`` of them on another plain backdrop and ``busy`` of them (chosen apart) on a
    busy one (``scene_share`` of the busy scenes, there and among the negatives, crops of
    ``scene_photos`` where given), ``retexture`` of them wearing their garment in another fabric and
    ``retexture_lower`` (chosen apart) their lower clothes (before the backdrops),
    ``negatives`` of them garment-free (``busy`` of those busy scenes, ``objects`` of them
    objects alone on a backdrop), then ``letterbox`` of them (garment-free ones among them)
    letterboxed at another aspect in ``aspects``; nothing drawn for a change that is off, so
    runs without it see the random streams they saw."""
    if full_length:
        batch = with_full_length(batch, rng, full_length)
    if drawn:
        batch = with_drawn(batch, rng, drawn)
    if "catalog" in batch:
        batch = with_catalogs(batch, rng, catalogs)
    if retexture:
        batch = with_retexture(batch, rng, retexture)
    if retexture_lower:
        batch = with_retexture(batch, rng, retexture_lower, LOWER_CLASS)
    if backdrops:
        batch = with_backdrops(batch, rng, backdrops)
    if busy:
        batch = with_backdrops(batch, rng, busy, busy=True, scene_photos=scene_photos, scene_share=scene_share)
    if negatives:
        batch = with_negatives(batch, rng, negatives, busy, objects, scene_photos, scene_share)
    if letterbox:
        batch = with_letterbox(batch, rng, letterbox, aspects)
    return batch
