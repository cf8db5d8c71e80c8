"""``train --scene-photos DIR --scene-share P``: photographed garment-free scenes (a folder of
the user's) stand in for a share of a parser's busy scenes, behind persons and among the
negatives; bad folders and files are told apart, and off draws nothing."""

import logging

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from clothes_extractor.cli import cli
from clothes_extractor.tasks import PARSER_CLASSES, UPPER_CLASS
from clothes_extractor.train.augment import Augmentation
from clothes_extractor.train.loop import TrainConfig
from clothes_extractor.train.scene_photos import ScenePhotos
from clothes_extractor.train.scenes import busy_scenes, with_backdrops, with_negatives, with_scenes

GREEN, BLUE = (20, 200, 40), (30, 40, 210)


@pytest.fixture
def folder(tmp_path):
    scenes = tmp_path / "scenes"
    (scenes / "more").mkdir(parents=True)
    Image.new("RGB", (300, 200), GREEN).save(scenes / "a.jpg")
    Image.new("RGB", (120, 400), BLUE).save(scenes / "more" / "b.png")
    return scenes


def _batch(n: int) -> dict[str, torch.Tensor]:
    """Red persons (a top and arms labelled) on a white wall."""
    labels = torch.zeros((n, 64, 48, 1), dtype=torch.uint8)
    labels[:, 16:44, 12:36] = UPPER_CLASS
    labels[:, 16:40, 6:12] = labels[:, 16:40, 36:42] = PARSER_CLASSES.index("arms")
    image = torch.full((n, 64, 48, 3), 255, dtype=torch.uint8)
    image[labels[..., 0] > 0] = torch.tensor([200, 30, 30], dtype=torch.uint8)
    return {"image": image, "labels": labels, "target": ((labels == UPPER_CLASS) * 255).to(torch.uint8)}


def test_crops_come_from_the_folders_photos_seeded_at_the_frames_size(folder):
    photos = ScenePhotos.load(folder)
    assert photos.names == ("a.jpg", "more/b.png")  # subfolders too, in order
    crops = photos.crops(40, 64, 48, np.random.default_rng(0))
    assert crops.shape == (40, 64, 48, 3) and crops.dtype == np.uint8
    means = crops.reshape(40, -1, 3).mean(1)
    green = means[:, 1] > 1.5 * means[:, 2]
    blue = means[:, 2] > 1.5 * means[:, 1]
    assert (green | blue).all()  # every crop is one photo's: green or blue
    assert 5 < green.sum() < 35  # both photos drawn
    assert means.std(0).max() > 5  # a gain per crop: not one colour every time
    again = photos.crops(40, 64, 48, np.random.default_rng(0))
    assert np.array_equal(crops, again)
    assert not np.array_equal(crops, photos.crops(40, 64, 48, np.random.default_rng(1)))
    assert photos.crops(3, 256, 192, np.random.default_rng(0)).shape == (3, 256, 192, 3)  # a crop upsampled


def test_busy_scenes_take_the_photos_for_their_share_only(folder):
    photos = ScenePhotos.load(folder)
    drawn = busy_scenes(30, 64, 48, np.random.default_rng(3))
    assert np.array_equal(drawn, busy_scenes(30, 64, 48, np.random.default_rng(3), photos, 0.0))  # share 0: as drawn
    mixed = busy_scenes(30, 64, 48, np.random.default_rng(3), photos, 0.5)
    flat = mixed.reshape(30, -1, 3).astype(np.float32)
    one_colour = flat.std(1).max(1) < 12  # a crop of a one-colour photo; a drawn scene is busy
    assert 5 < one_colour.sum() < 25
    assert one_colour.all() == False  # noqa: E712 - some drawn ones stay
    assert busy_scenes(10, 64, 48, np.random.default_rng(3), photos, 1.0).reshape(10, -1, 3).std(1).max() < 12


def test_photographed_scenes_behind_persons_and_among_negatives(folder):
    photos = ScenePhotos.load(folder)
    batch = _batch(8)
    person = batch["labels"][..., 0] > 0
    out = with_backdrops(batch, np.random.default_rng(0), 1.0, busy=True, scene_photos=photos, scene_share=1.0)
    image = out["image"].float()
    inside = out["image"][:, 18:42, 14:34]  # the top, a pixel or more from its edge (which is feathered)
    assert torch.equal(inside, batch["image"][:, 18:42, 14:34])  # the person stays
    outside = image[~person].reshape(-1, 3)
    assert (outside[:, 1] + outside[:, 2] > 2 * outside[:, 0]).float().mean() > 0.95  # green or blue, not the wall
    assert torch.equal(out["labels"], batch["labels"]) and torch.equal(out["target"], batch["target"])

    out = with_negatives(batch, np.random.default_rng(0), 1.0, busy=1.0, scene_photos=photos, scene_share=1.0)
    assert out["labels"].max() == 0 and out["target"].max() == 0  # no garment, no person
    pixels = out["image"].float().reshape(8, -1, 3)
    assert (pixels.std(1).max(1).values < 12).all()  # each a crop of one photo
    assert (pixels.mean(1)[:, 0] < 60).all()  # none is the red person or the white wall


def test_scene_photos_in_the_augmentation_and_off_draws_nothing(folder, tmp_path):
    config = TrainConfig(
        task="segmenter", parser=True, busy=0.3, scene_photos=str(folder), scene_share=0.5, data_on_device=True
    )
    settings = Augmentation.from_config(config)
    assert settings.scene_share == 0.5 and len(settings.scene_photos.photos) == 2
    batch = _batch(6)
    rng = np.random.default_rng(5)
    assert with_scenes(batch, rng, 0.0, 0.0, (0.4, 2.4), scene_photos=settings.scene_photos)["image"] is batch["image"]
    assert rng.random() == np.random.default_rng(5).random()  # no busy scenes asked for: the random stream untouched
    plain = with_scenes(batch, np.random.default_rng(7), 0.0, 0.0, (0.4, 2.4), busy=1.0)
    photos = settings.scene_photos
    shared = with_scenes(batch, np.random.default_rng(7), 0.0, 0.0, (0.4, 2.4), busy=1.0, scene_photos=photos)
    assert torch.equal(plain["image"], shared["image"])  # photos given, share 0: the run it was
    assert Augmentation.from_config(TrainConfig(task="segmenter")).scene_photos is None


def test_bad_scene_folders_and_files_are_told(folder, tmp_path, caplog):
    (folder / "broken.jpg").write_bytes(b"not a photo")
    Image.new("RGB", (40, 30), "grey").save(folder / "tiny.png")
    (folder / "notes.txt").write_text("a file that is no image is not looked at")
    with caplog.at_level(logging.WARNING, logger="clothes_extractor.train.scene_photos"):
        photos = ScenePhotos.load(folder)
    assert photos.names == ("a.jpg", "more/b.png")
    assert "broken.jpg" in caplog.text and "tiny.png" in caplog.text and "smaller than 64 px" in caplog.text
    assert "notes.txt" not in caplog.text
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "broken.jpg").write_bytes(b"not a photo")
    with pytest.raises(ValueError, match=r"no photo to use \(of 1 image file"):
        ScenePhotos.load(empty)
    with pytest.raises(ValueError, match="no such folder"):
        ScenePhotos.load(tmp_path / "missing")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"busy": 0.3, "scene_photos": "F"}, "--scene-photos needs --scene-share"),
        ({"busy": 0.3, "scene_share": 0.5}, "--scene-share needs --scene-photos"),
        ({"scene_photos": "F", "scene_share": 0.5}, "give --busy too"),
        ({"busy": 0.3, "scene_photos": "missing", "scene_share": 0.5}, "--scene-photos missing: no such folder"),
    ],
)
def test_scene_photo_settings_are_checked(folder, settings, message):
    settings = {k: str(folder) if v == "F" else v for k, v in settings.items()}
    with pytest.raises(ValueError, match=message):
        TrainConfig(task="segmenter", parser=True, data_on_device=True, **settings)


def test_the_cli_says_what_is_missing(folder, tmp_path):
    result = CliRunner().invoke(
        cli,
        ["train", "--task", "segmenter", "--parser", "--data-on-device", "--data", str(tmp_path)]
        + ["-o", str(tmp_path / "run"), "--scene-photos", str(folder), "--scene-share", "0.5"],
    )
    assert result.exit_code == 2 and "give --busy too" in result.output
