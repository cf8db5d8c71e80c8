"""The parser's ``alone`` head: does a photo show its garment alone (a catalog image, a flat
lay, a ghost mannequin) or worn? (``train --alone-head``.)

The generator turns a worn garment into a flat one; handed a garment that is flat already it
smears it, prints and all, and ``tryon --garment`` takes a photo of someone wearing a top for
a catalog image. Taught as pixels (a garment alone labelled a top, or a class of its own), a
parser learned it and lost garment masks elsewhere (trousers taken for a top in full-body
photos; parts of worn tops given to the borrowed class: the segmenter card). So the parser
stays as it is, frozen, and a head reads its features (``alone_head.AloneHead``): the parse,
and every mask, stay the parser's, byte for byte.

Each training pair gives two scenes, made seeded: its catalog image as a user would photograph
the garment alone (on white as it is, on a plain colour, on a gradient or blotches, on a busy
scene, zoomed out on its backdrop, in black and white, in a landscape frame) and its photo
(whole, headless, cut to the torso, in front of a busy scene, zoomed out on its border colour,
drawn full length down to the feet, in black and white, cut to another aspect). The frozen
parser's features of each are computed once (they are exact: nothing under them trains), the
head is fitted on them, and it is scored on the validation split's scenes, made the same way
with another seed.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image, ImageOps

from ..data.synth import synth_sample
from ..errors import CheckpointError, InputError
from ..eval.datasets import DEFAULT_VAL_FRACTION
from ..eval.overlap import training_split
from ..runtime.alone import ALONE_AT
from ..runtime.contract import ModelContract
from ..runtime.fitting import border_colour, letterbox_for
from ..runtime.silhouette import garment_silhouette
from .alone_head import AloneHead
from .architectures import build
from .busy import busy_photos
from .checkpoint import save_checkpoint
from .full_length import LIGHT_LEGS, draw_full_length
from .networks import UNet, photo_to_unit
from .scenes import negative_photos, person_keep

log = logging.getLogger(__name__)

CATALOG_SCENES = ("white", "plain", "backdrop", "busy", "zoomed out", "black and white", "other aspect")
PHOTO_SCENES = ("whole", "headless", "torso", "busy", "zoomed out", "full length", "black and white", "other aspect")
# Synthetic pairs (``data.synth``) beside the dataset's, a share of its count, in training and
# validation alike (other seeds there): drawn figures are persons too (without them, the head
# took 23 of 40 drawn figures for garments alone).
SYNTHETIC_SHARE = 0.1
# (catalog image, photo, where the photo's person is: float [H, W] 0..1, or None where that is
# not known: then the photo is never put on a busy scene, whole instead)
Pair = tuple[Callable[[], Image.Image], Callable[[], Image.Image], Callable[[], np.ndarray] | None]


def _on_backdrop(image: Image.Image, backdrop: np.ndarray) -> Image.Image:
    """The garment of a catalog image on ``backdrop`` (its silhouette kept, the white replaced)."""
    pixels = np.asarray(image)
    silhouette = garment_silhouette(pixels)
    return Image.fromarray(np.where(silhouette[..., None], pixels, backdrop).astype(np.uint8))


def _zoomed_out(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``image`` on a canvas 1.2 to 2 times its size in its own border colour, anywhere on it."""
    factor = rng.uniform(1.2, 2.0)
    canvas = Image.new("RGB", (int(image.width * factor), int(image.height * factor)), border_colour(np.asarray(image)))
    x, y = (int(rng.integers(0, c - s + 1)) for c, s in zip(canvas.size, image.size, strict=True))
    canvas.paste(image, (x, y))
    return canvas


def catalog_scene(image: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    """A catalog image (the garment on white) as the garment photographed alone in ``kind``."""
    w, h = image.size
    if kind == "plain":
        return _on_backdrop(image, negative_photos(1, h, w, rng, kinds=(0,))[0])
    if kind == "backdrop":  # a gradient or smooth blotches (a table, a bed, a floor)
        return _on_backdrop(image, negative_photos(1, h, w, rng, kinds=(1, 3))[0])
    if kind == "busy":  # a patterned table, a rug, a shelf behind it (``busy.busy_photos``)
        return _on_backdrop(image, busy_photos(1, h, w, rng)[0])
    if kind == "zoomed out":
        return _zoomed_out(image, rng)
    if kind == "black and white":
        return ImageOps.grayscale(_on_backdrop(image, negative_photos(1, h, w, rng, kinds=(0,))[0])).convert("RGB")
    if kind == "other aspect":  # a landscape frame around it, as a product photo's
        canvas = Image.new("RGB", (int(h * rng.uniform(1.0, 1.6)), h), border_colour(np.asarray(image)))
        canvas.paste(image, ((canvas.width - w) // 2, 0))
        return canvas
    return image


def photo_scene(
    image: Image.Image, kind: str, rng: np.random.Generator, person: Callable[[], np.ndarray] | None = None
) -> Image.Image:
    """A photo of someone wearing the garment, framed as ``kind`` (VITON's 192 x 256 framing's
    shares: the head is the top quarter, the torso the middle half); ``busy`` puts the person
    (``person``: where, a ``Pair``'s third maker) in front of a busy scene."""
    w, h = image.size
    if kind == "busy" and person is not None:
        backdrop = busy_photos(1, h, w, rng)[0]
        keep = person()[..., None]
        return Image.fromarray((keep * np.asarray(image) + (1 - keep) * backdrop).round().astype(np.uint8))
    if kind == "headless":
        return image.crop((0, int(h * rng.uniform(0.15, 0.35)), w, h))
    if kind == "torso":
        x0, x1 = w * rng.uniform(0.05, 0.2), w * rng.uniform(0.8, 0.95)
        return image.crop((int(x0), int(h * rng.uniform(0.2, 0.3)), int(x1), int(h * rng.uniform(0.65, 0.85))))
    if kind == "zoomed out":
        return _zoomed_out(image, rng)
    if kind == "full length":
        return _full_length(image, person() if person is not None else None, rng)
    if kind == "black and white":
        return ImageOps.grayscale(image).convert("RGB")
    if kind == "other aspect":
        return image.crop((0, int(h * rng.uniform(0, 0.15)), w, int(h * rng.uniform(0.6, 0.8))))
    return image


def _full_length(image: Image.Image, keep: np.ndarray | None, rng: np.random.Generator) -> Image.Image:
    """A photo cut at the thighs (VITON's) as a full-length studio shot (Dress Code's), drawn by
    ``full_length.draw_full_length``: the person (``keep``, float [h, w] 0..1; None: what
    differs from the border's colour) on down to the feet; a photo whose person does not reach
    its bottom is zoomed out instead. (Without such scenes a head took a full-length man, his
    light trousers parsed as arms, for a garment alone.)"""
    pixels = np.asarray(image, np.float32)
    wall = np.asarray(border_colour(np.asarray(image)), np.float32)
    if keep is None:
        keep = garment_silhouette(np.asarray(image), background=tuple(int(c) for c in wall)).astype(np.float32)
    drawn = draw_full_length(pixels, keep, wall, rng, LIGHT_LEGS)
    if drawn is None:  # nothing of the person reaches the frame's bottom
        return _zoomed_out(image, rng)
    return Image.fromarray(np.clip(drawn.image, 0, 255).round().astype(np.uint8))


def _opened(path: Path) -> Callable[[], Image.Image]:
    return lambda: Image.open(path).convert("RGB")


def _person(label_map: Path) -> Callable[[], np.ndarray]:
    """Where a photo's person is, from its label map (``scenes.person_keep``), when called."""

    def made() -> np.ndarray:
        labels = torch.from_numpy(np.asarray(Image.open(label_map), np.uint8).copy())[None, ..., None]
        return person_keep(labels)[0, ..., 0].numpy()

    return made


def dataset_pairs(samples: list) -> list[Pair]:
    """(catalog image, photo, person) makers of a dataset's samples (decoded when called); the
    person from the label map where the sample has one, else None (then the photo is never put
    on a busy scene: its kind falls back to the whole photo)."""
    return [
        (
            _opened(sample.garment),
            _opened(sample.photo),
            _person(sample.mask) if sample.mask_kind in ("parse", "labels") else None,
        )
        for sample in samples
    ]


def synthetic_pairs(count: int, seed: int, size: tuple[int, int]) -> list[Pair]:
    """(catalog image, photo, None) makers of ``count`` synthetic samples (``data.synth``: drawn
    tops, alone and worn by drawn figures; no label map says where the figure is), drawn when
    called."""
    return [
        (lambda i=index: synth_sample(i, seed, size)[2], lambda i=index: synth_sample(i, seed, size)[0], None)
        for index in range(count)
    ]


def scenes(
    pairs: list[Pair], seed: int, origin: str = ""
) -> tuple[list[Callable[[], Image.Image]], np.ndarray, list[str]]:
    """Two scenes per pair (its catalog image alone, its photo worn), as makers (an image each,
    made when called), the targets (1 = alone) and each scene's kind (after ``origin``)."""
    rng = np.random.default_rng(seed)
    makers, targets, kinds = [], [], []
    for catalog, photo, person in pairs:
        for alone, image, choices, make in (
            (1, catalog, CATALOG_SCENES, catalog_scene),
            (0, photo, PHOTO_SCENES, lambda i, k, r, p=person: photo_scene(i, k, r, p)),
        ):
            kind = choices[int(rng.integers(len(choices)))]
            scene_rng = np.random.default_rng(rng.integers(2**63))
            makers.append(lambda i=image, k=kind, r=scene_rng, m=make: m(i(), k, r))
            targets.append(alone)
            kinds.append(origin + ("catalog " if alone else "photo ") + kind)
    return makers, np.asarray(targets, np.float32), kinds


@torch.no_grad()
def scene_features(model: UNet, contract: ModelContract, makers: list, batch: int = 32) -> torch.Tensor:
    """The head's features (``AloneHead.features``) of each scene, letterboxed as a parser's photo."""
    found = []
    for start in range(0, len(makers), batch):
        chunk = makers[start : start + batch]
        planes = np.stack([letterbox_for(make(), contract.size, contract.fit)[0] for make in chunk])
        logits, pooled = model.parse(photo_to_unit(torch.from_numpy(planes)))
        found.append(AloneHead.features(pooled, torch.softmax(logits.float(), 1).mean((2, 3))))
        if start // batch % 50 == 0:
            log.info("features: %d of %d scenes", start + len(planes), len(makers))
    return torch.cat(found)


def fit_head(model: UNet, features: torch.Tensor, targets: torch.Tensor, epochs: int, seed: int) -> None:
    """Fit ``model``'s ``alone_head`` on ``features`` (standardised by their own statistics)."""
    head = model.alone_head
    head.shift.copy_(features.mean(0))
    head.scale.copy_(1.0 / (features.std(0) + 1e-6))
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(head.mlp.parameters(), lr=1e-3, weight_decay=1e-2)
    head.train()
    for _ in range(epochs):
        order = torch.randperm(len(features), generator=generator)
        for start in range(0, len(order), 64):
            chosen = order[start : start + 64]
            logits = head.classify(features[chosen])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets[chosen])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    head.eval()


@torch.no_grad()
def scored(model: UNet, features: torch.Tensor, targets: np.ndarray, kinds: list[str]) -> dict[str, Any]:
    """How the head answers the scenes: catalog images found alone, photos taken for one, per kind."""
    alone = torch.sigmoid(model.alone_head.classify(features)).numpy() >= ALONE_AT / 255
    right = alone == (targets == 1)
    per_kind = {kind: [int(alone[i]) for i in range(len(kinds)) if kinds[i] == kind] for kind in sorted(set(kinds))}
    return {
        "accuracy": float(right.mean()),
        "catalogs_found": int(alone[targets == 1].sum()),
        "catalogs": int((targets == 1).sum()),
        "photos_taken_alone": int(alone[targets == 0].sum()),
        "photos": int((targets == 0).sum()),
        "said_alone_by_kind": {kind: f"{sum(v)} of {len(v)}" for kind, v in per_kind.items()},
    }


def parser_with_head(init: str | Path) -> tuple[UNet, dict[str, Any]]:
    """The parser of a served file or checkpoint (``init``; a head it has is left out), frozen,
    with a fresh ``alone`` head, and its training summary (what its served file says of it)."""
    from .served_init import is_served, load_served

    if is_served(init):
        from ..runtime.session import contract_of

        summary = dict(contract_of(init).training)
        record = dict(summary.pop("architecture", None) or {})
    else:
        from .checkpoint import load_checkpoint

        payload = load_checkpoint(init)
        summary, record = dict(payload.get("summary") or {}), dict(payload.get("config") or {})
    summary.pop("alone_head", None)
    record.pop("name", None)
    if record.get("task") != "segmenter" or not record.get("classes"):
        raise InputError(f"--init {init}: --alone-head needs a human parser (a segmenter trained with --parser)")
    parser = build("unet", record)  # as the file holds it (a head it has is replaced below)
    if is_served(init):
        load_served(init, parser, "--init")  # (checked to reproduce the file)
    else:
        try:
            parser.load_state_dict(payload["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"--init {init}: the checkpoint does not build its network ({exc})") from None
    model = build("unet", {**record, "alone": True})
    kept = {k: v for k, v in parser.state_dict().items() if not k.startswith("alone_head.")}
    model.load_state_dict(kept, strict=False)  # (all but the head's, which starts fresh)
    model.eval()
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith("alone_head."))
    return model, summary


def train_alone(
    init: str | Path, data: Path, out: Path, *, epochs: int = 10, val_limit: int = 500, seed: int = 0
) -> dict[str, Any]:
    """Fit an ``alone`` head on the parser ``init`` with ``data``'s training pairs, score it on
    its validation pairs, and write ``out``/best.pt (the parser and its head, for ``export``) and
    ``out``/metrics.json. Returns the metrics."""
    from ..export.onnx_export import build_contract

    started = time.monotonic()
    model, summary = parser_with_head(init)
    contract = build_contract(model)
    train, val = training_split(Path(data), DEFAULT_VAL_FRACTION, seed, require_garment=True)
    val = val[:val_limit]
    if not train or not val:
        raise InputError(f"--data {data}: --alone-head needs pairs with catalog images (cloth/) in train and val")
    synthetic = round(SYNTHETIC_SHARE * len(train))
    makers, targets, _ = scenes(dataset_pairs(train) + synthetic_pairs(synthetic, seed, contract.size), seed)
    features = scene_features(model, contract, makers)
    fit_head(model, features, torch.from_numpy(targets), epochs, seed)
    held_out = synthetic_pairs(max(1, round(SYNTHETIC_SHARE * len(val))), seed + 1, contract.size)
    real, drawn = scenes(dataset_pairs(val), seed + 1), scenes(held_out, seed + 2, "synthetic ")
    val_makers, val_targets, val_kinds = real[0] + drawn[0], np.concatenate([real[1], drawn[1]]), real[2] + drawn[2]
    metrics = {
        "train": scored(model, features, targets, ["train"] * len(targets)),
        "validation": scored(model, scene_features(model, contract, val_makers), val_targets, val_kinds),
        "train_pairs": len(train),
        "train_synthetic_pairs": synthetic,
        "val_pairs": len(val),
        "val_synthetic_pairs": len(held_out),
        "epochs": epochs,
        "minutes": round((time.monotonic() - started) / 60, 1),
    }
    metrics["train"].pop("said_alone_by_kind")
    summary["alone_head"] = {"init": Path(init).name, **metrics}
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "best.pt", model, summary=summary)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
