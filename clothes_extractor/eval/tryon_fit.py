"""A try-on sample's inputs, as ``tryon`` fits a person and a garment (``datasets.fit_sample``'s
for a try-on model): a person wearing their own garment, the person photo also the target."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import InputError
from ..runtime.contract import ModelContract
from ..runtime.fitting import output_size_for


def fit_tryon(
    photo: Image.Image, garment: Image.Image | None, labels: Image.Image | None, contract: ModelContract, native: bool
) -> dict:
    """A person wearing their own garment: the try-on's inputs; the person photo is also the
    target (paired reconstruction), so it is not stored twice. A photo-resolution model also
    gets ``photo`` and ``garment_photo``: the model-size ones, or (``native``) the person's
    window at its own resolution (as ``tryon`` dresses it) and the garment at that size, the
    window being then the ``target``. (A model-size one's output is upsampled to that
    ``target``: what its user gets at that size.)

    ``worn`` [H, W, 1] is where the person's top is (the warp losses compare the warped
    catalog garment with it)."""
    from ..runtime.tryon import fit_at_resolution, fit_person_and_labels, framed_garment, region_from_labels
    from ..tasks import PARSER_CLASSES, UPPER_CLASS

    if garment is None or labels is None:
        raise InputError("a try-on sample needs its catalog garment and a human parsing of the person")
    size = contract.size
    person, classes, window = fit_person_and_labels(photo, labels, size, PARSER_CLASSES)
    garment, garment_image, garment_mask = framed_garment(garment, size)  # (reframed where framed loosely)
    found = {
        "person": person,
        "region": region_from_labels(classes, PARSER_CLASSES),
        "garment": garment_image,
        "garment_mask": garment_mask,
        "worn": (classes == UPPER_CLASS).astype(np.uint8)[:, :, None] * 255,
    }
    # native: the window's own resolution, as tryon dresses it (the target is the photo's own pixels)
    at = output_size_for(window[3] - window[1], contract, own_pixels=True) if native else size
    if contract.catalog_resolution:
        found.update(photo=person, garment_photo=garment_image)
    if at != size:
        found["target"], garment_photo = fit_at_resolution(photo, window, garment, at)
        if contract.catalog_resolution:
            found.update(photo=found["target"], garment_photo=garment_photo)
    return found
