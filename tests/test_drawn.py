"""``train --drawn``: a parser's samples drawn in flat colours, each part of the person one
colour, on a plain backdrop, labels and garment mask as they were."""

import numpy as np
import pytest
import torch

from clothes_extractor.tasks import PARSER_CLASSES, UPPER_CLASS
from clothes_extractor.train.loop import TrainConfig
from clothes_extractor.train.scenes import with_drawn, with_scenes

PARTS = {"hair": (2, 8, 18, 30), "face": (8, 16, 18, 30), "upper": (16, 40, 10, 38), "lower": (40, 64, 14, 34)}


def _batch(n: int) -> dict[str, torch.Tensor]:
    """Photos of pixel noise (a texture everywhere) with a person's parts labelled on them."""
    labels = torch.zeros((n, 64, 48, 1), dtype=torch.uint8)
    for name, (r0, r1, c0, c1) in PARTS.items():
        labels[:, r0:r1, c0:c1] = PARSER_CLASSES.index(name)
    labels[:, 18:40, 4:10] = labels[:, 18:40, 38:44] = PARSER_CLASSES.index("arms")
    image = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (n, 64, 48, 3), dtype=np.uint8))
    target = ((labels == UPPER_CLASS) * 255).to(torch.uint8)
    return {"image": image, "labels": labels, "target": target}


def test_a_drawn_sample_paints_each_part_in_one_colour_and_keeps_labels_and_mask():
    batch = _batch(12)
    out = with_drawn(batch, np.random.default_rng(0), 1.0)
    assert out["labels"] is batch["labels"] and out["target"] is batch["target"]
    image, labels = out["image"].float(), batch["labels"][..., 0]
    for i in range(12):
        means = []
        for index in range(len(PARSER_CLASSES)):
            part = labels[i] == index
            if part.any():
                assert image[i][part].std(0).max() < 6  # one colour and a little noise (the photo's: 74)
                means.append(image[i][part].mean(0))
        assert len(means) == 6  # background, hair, face, upper, lower, arms
    backdrops = torch.stack([image[i][labels[i] == 0].mean(0) for i in range(12)])
    assert (backdrops.min(1).values > 180).float().mean() >= 0.5  # light backdrops mostly
    colours = torch.stack([image[i][labels[i] == UPPER_CLASS].mean(0) for i in range(12)])
    assert colours.std(0).max() > 20  # the top in other colours from sample to sample


def test_drawn_is_a_parser_setting_and_off_draws_nothing():
    batch = _batch(4)
    rng = np.random.default_rng(5)
    assert with_scenes(batch, rng, 0.0, 0.0, (0.4, 2.4), drawn=0.0)["image"] is batch["image"]
    assert rng.random() == np.random.default_rng(5).random()  # off: the random stream untouched
    out = with_scenes(batch, np.random.default_rng(5), 0.0, 0.0, (0.4, 2.4), drawn=1.0)
    assert (out["image"].float() - batch["image"].float()).abs().mean() > 30
    with pytest.raises(ValueError, match="--drawn needs --parser"):
        TrainConfig(task="segmenter", drawn=0.2, data_on_device=True)
    with pytest.raises(ValueError, match="--drawn change whole batches"):
        TrainConfig(task="segmenter", drawn=0.2, parser=True)
