"""The parser's ``--objects`` samples: drawn product photos of things that are no garment
(``train.products``), given as garment-free negatives."""

import numpy as np
import pytest
import torch

from clothes_extractor.train.loop import TrainConfig
from clothes_extractor.train.products import product_photos
from clothes_extractor.train.scenes import with_negatives, with_scenes


def test_product_photos_show_an_object_on_a_plain_backdrop_seeded():
    photos = product_photos(24, 64, 48, np.random.default_rng(0))
    assert photos.shape == (24, 64, 48, 3) and photos.dtype == np.uint8
    assert np.array_equal(photos, product_photos(24, 64, 48, np.random.default_rng(0)))
    assert len({photo.tobytes() for photo in photos}) == 24
    for photo in photos.astype(int):
        backdrop = np.median(photo[0], axis=0)  # one colour along the top row (a gradient runs down)
        assert (np.abs(photo[0] - backdrop).max(-1) <= 1).mean() > 0.5
        off = np.abs(photo - np.median(photo[:, :4], axis=1, keepdims=True)).max(-1) > 12  # off its row's backdrop
        assert 0.01 < off.mean() < 0.9  # an object, not the whole frame


def test_objects_are_a_share_of_the_negatives_and_garment_free():
    labels = torch.full((16, 64, 48, 1), 3, dtype=torch.uint8)
    batch = {
        "image": torch.full((16, 64, 48, 3), 200, dtype=torch.uint8),
        "labels": labels,
        "target": torch.full((16, 64, 48, 1), 255, dtype=torch.uint8),
    }
    things = with_negatives(batch, np.random.default_rng(1), 1.0, objects=1.0)
    assert (things["labels"] == 0).all() and (things["target"] == 0).all()
    plain = with_negatives(batch, np.random.default_rng(1), 1.0)
    assert not torch.equal(things["image"], plain["image"])  # products where plain negatives were
    rows = things["image"][:, 0].int()  # every one of them a product photo: mostly one colour along the top row
    plain_rows = ((rows - rows.median(dim=1, keepdim=True).values).abs().amax(2) <= 1).float().mean(1)
    assert (plain_rows > 0.5).all()
    rng = np.random.default_rng(5)
    assert with_scenes(batch, rng, 0.0, 0.0, (0.4, 2.4), objects=0.5)["image"] is batch["image"]  # no negatives


def test_objects_need_negatives():
    with pytest.raises(ValueError, match="--objects is a share of the --negatives"):
        TrainConfig(task="segmenter", parser=True, objects=0.5, data_on_device=True)
    TrainConfig(task="segmenter", parser=True, negatives=0.1, objects=0.5, data_on_device=True)
