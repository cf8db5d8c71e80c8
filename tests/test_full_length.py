"""A parser's ``--full-length`` samples (``train.scenes.with_full_length``): a photo cut at the
thighs drawn on down to the feet (``train.full_length``), fitted into the frame whole, its
labels and garment mask laid out with it."""

import numpy as np
import pytest
import torch

from clothes_extractor.tasks import PARSER_CLASSES, UPPER_CLASS
from clothes_extractor.train.full_length import draw_full_length
from clothes_extractor.train.loop import TrainConfig
from clothes_extractor.train.scenes import with_full_length, with_scenes

FACE, LOWER, LEGS = (PARSER_CLASSES.index(name) for name in ("face", "lower", "legs"))
WALL, TOP, TROUSERS = (230, 230, 230), (20, 90, 160), (40, 40, 40)


def _batch(n: int, bottom: int = LOWER) -> dict[str, torch.Tensor]:
    """``n`` photos of 64 x 48: a face, a top, and below it ``bottom`` (trousers, or bare legs)
    cut by the frame, on a pale wall; labels and the top's mask."""
    image = torch.tensor(WALL, dtype=torch.uint8).repeat(n, 64, 48, 1)
    labels = torch.zeros((n, 64, 48, 1), dtype=torch.uint8)
    image[:, 4:14, 18:30], labels[:, 4:14, 18:30] = torch.tensor((200, 150, 120), dtype=torch.uint8), FACE
    image[:, 16:48, 10:38], labels[:, 16:48, 10:38] = torch.tensor(TOP, dtype=torch.uint8), UPPER_CLASS
    image[:, 48:64, 12:36], labels[:, 48:64, 12:36] = torch.tensor(TROUSERS, dtype=torch.uint8), bottom
    return {"image": image, "labels": labels, "target": (labels == UPPER_CLASS).to(torch.uint8) * 255}


def test_a_full_length_sample_is_the_whole_figure_down_to_shoes_labelled_as_drawn():
    batch = _batch(8)
    out = with_full_length(batch, np.random.default_rng(0), 1.0, light_legs=0.0)
    assert set(out) == set(batch) and all(out[k].shape == batch[k].shape for k in batch)
    for image, labels, target in zip(
        out["image"].numpy(), out["labels"][..., 0].numpy(), out["target"][..., 0].numpy(), strict=True
    ):
        top = labels == UPPER_CLASS
        assert 0.25 * 32 * 28 < top.sum() < 0.7 * 32 * 28  # the top, smaller: the figure fits the frame whole
        inside = np.argwhere(top)[:, 0]
        assert (np.abs(np.median(image[top], 0) - TOP) <= 6).all()  # the top's pixels where it is labelled
        (rows,) = np.nonzero((labels == LOWER).any(1))
        assert rows.min() > inside.min() and rows.max() > inside.max() + 16  # trousers on below the top
        (shod,) = np.nonzero((labels == LEGS).any(1))
        assert len(shod) and shod.min() > rows.max() - 4  # shoes at their ends, labelled legs
        assert (np.abs(image[labels == LOWER].astype(int) - TROUSERS).max(-1) <= 30).mean() > 0.8
        garment = target > 127
        assert (garment & top).sum() / (garment | top).sum() > 0.95  # the mask moved with the photo
        assert (labels[:, :2] == 0).all() and (np.abs(image[:, :2].astype(int) - WALL).max(-1) <= 1).all()  # wall
        legs = labels[rows.max() - 2] == LOWER  # two legs apart near the feet
        assert (np.diff(np.concatenate([[0], legs.astype(int), [0]])) == 1).sum() == 2


def test_bare_legs_are_drawn_as_legs_and_light_trousers_as_lower_clothes():
    bare = with_full_length(_batch(4, bottom=LEGS), np.random.default_rng(0), 1.0, light_legs=0.0)
    assert (bare["labels"] == LEGS).sum() > 4 * (bare["labels"] == LOWER).sum()
    light = with_full_length(_batch(4, bottom=LEGS), np.random.default_rng(0), 1.0, light_legs=1.0)
    assert (light["labels"] == LOWER).sum() > (light["labels"] == LEGS).sum()
    drawn = light["image"][light["labels"][..., 0] == LOWER].int()
    assert (drawn.min(-1).values > 100).float().mean() > 0.9  # light, near the wall's colour: not the dark ones


def test_the_top_cut_can_take_the_head_off():
    """The share of the photo cut off at the top: none keeps the face, 0.3 of it (the head and
    neck, as catalog photos are often framed) leaves none; the top stays."""
    kept = with_full_length(_batch(4), np.random.default_rng(0), 1.0, cut=(0.0, 0.0))["labels"]
    headless = with_full_length(_batch(4), np.random.default_rng(0), 1.0, cut=(0.3, 0.35))["labels"]
    assert ((kept == FACE).flatten(1).sum(1) > 20).all() and not (headless == FACE).any()
    assert ((headless == UPPER_CLASS).flatten(1).sum(1) > 100).all()


def test_a_person_not_reaching_the_frames_bottom_stays_and_off_draws_nothing():
    batch = _batch(4)
    batch["image"][:, 48:] = torch.tensor(WALL, dtype=torch.uint8)
    batch["labels"][:, 48:] = 0  # zoomed out already: wall below the top
    out = with_full_length(batch, np.random.default_rng(0), 1.0)
    assert all(torch.equal(out[k], batch[k]) for k in batch)
    rng = np.random.default_rng(5)
    assert with_scenes(batch, rng, 0.0, 0.0, (0.4, 2.4), full_length=0.0)["image"] is batch["image"]
    assert rng.random() == np.random.default_rng(5).random()
    assert draw_full_length(batch["image"][0].float().numpy(), np.zeros((64, 48)), np.array(WALL), rng, 0.5) is None


def test_full_length_is_a_parsers_batch_change():
    with pytest.raises(ValueError, match="--full-length needs --parser"):
        TrainConfig(task="segmenter", full_length=0.2, data_on_device=True)
    with pytest.raises(ValueError, match="add --data-on-device"):
        TrainConfig(task="segmenter", parser=True, full_length=0.2)
    with pytest.raises(ValueError, match="are segmenter settings"):
        TrainConfig(task="generator", full_length=0.2, data_on_device=True)
    assert TrainConfig(task="segmenter", parser=True, full_length=0.2, data_on_device=True).full_length == 0.2
