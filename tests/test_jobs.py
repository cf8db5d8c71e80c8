from pathlib import Path

import pytest
from PIL import Image

from clothes_extractor.errors import InputError
from clothes_extractor.runtime.jobs import MaskIndex, dataset_parse_folder, find_jobs


def touch_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(path)
    return path


def test_folder_jobs_skip_non_images_hidden_files_and_subfolders(tmp_path):
    for name in ("b.jpg", "a.PNG", ".hidden.jpg", "sub/c.jpg"):
        touch_image(tmp_path / "in" / name)
    (tmp_path / "in" / "notes.txt").write_text("x")
    jobs = find_jobs([tmp_path / "in"], tmp_path / "out", "png")
    assert [j.photo.name for j in jobs] == ["a.PNG", "b.jpg"]
    assert [j.output for j in jobs] == [tmp_path / "out" / "a.png", tmp_path / "out" / "b.png"]
    assert all(j.mask.kind == "alpha" and j.error is None for j in jobs)


def test_recursive_keeps_the_folder_structure_and_skips_the_output_folder(tmp_path):
    touch_image(tmp_path / "in" / "a.jpg")
    touch_image(tmp_path / "in" / "sub" / "deeper" / "b.jpg")
    touch_image(tmp_path / "in" / "out" / "old.png")  # results of an earlier run
    jobs = find_jobs([tmp_path / "in"], tmp_path / "in" / "out", "webp", recursive=True)
    assert [j.output.relative_to(tmp_path / "in" / "out").as_posix() for j in jobs] == [
        "a.webp",
        "sub/deeper/b.webp",
    ]


@pytest.mark.parametrize("parse_name", ["image-parse-v3", "image-parse"])
def test_dataset_folders_use_their_parse_maps(tmp_path, parse_name):
    split = tmp_path / "train"
    touch_image(split / "image" / "00001_00.jpg")
    touch_image(split / "cloth" / "00001_00.jpg")  # catalog images are not inputs
    (split / parse_name).mkdir()
    assert dataset_parse_folder(split) == split / parse_name
    jobs = find_jobs([split], tmp_path / "out", "png")
    assert len(jobs) == 1
    assert jobs[0].mask.kind == "parse" and jobs[0].mask.path == split / parse_name / "00001_00.png"
    assert jobs[0].output == tmp_path / "out" / "00001_00.png"
    # A photo of the split named directly gets its parse map too.
    jobs = find_jobs([split / "image" / "00001_00.jpg"], tmp_path / "out", "png")
    assert jobs[0].mask.kind == "parse"
    # Below a folder with --recursive, a split keeps its own layout.
    jobs = find_jobs([tmp_path], tmp_path / "out", "png", recursive=True)
    assert [j.output.relative_to(tmp_path / "out").as_posix() for j in jobs] == ["train/00001_00.png"]


def test_masks_folder_takes_precedence_and_matches_by_path_or_stem(tmp_path):
    split = tmp_path / "data"
    touch_image(split / "image" / "x.jpg")
    touch_image(split / "image" / "y.jpg")
    (split / "image-parse").mkdir()
    touch_image(tmp_path / "masks" / "x.png")
    index = MaskIndex(tmp_path / "masks")
    jobs = find_jobs([split], tmp_path / "out", "png", index)
    assert [(j.photo.name, j.mask.kind) for j in jobs] == [("x.jpg", "file"), ("y.jpg", "parse")]


def test_ambiguous_masks_are_a_per_photo_error(tmp_path):
    touch_image(tmp_path / "in" / "x.jpg")
    touch_image(tmp_path / "masks" / "x.png")
    touch_image(tmp_path / "masks" / "x.jpg")
    jobs = find_jobs([tmp_path / "in"], tmp_path / "out", "png", MaskIndex(tmp_path / "masks"))
    assert "several masks match 'x'" in jobs[0].error


def test_missing_masks_folder_is_an_error(tmp_path):
    with pytest.raises(InputError, match="--masks folder not found"):
        MaskIndex(tmp_path / "nope")


def test_two_inputs_with_one_output_name_collide(tmp_path):
    a = touch_image(tmp_path / "a" / "same.jpg")
    b = touch_image(tmp_path / "b" / "same.png")
    jobs = find_jobs([a, b, tmp_path / "missing.jpg"], tmp_path / "out", "png")
    assert jobs[0].error is None
    assert "would both be written to" in jobs[1].error
    assert jobs[2].error.startswith("input not found")
