import numpy as np
import pytest
from PIL import Image

from clothes_extractor.data.downsample import downsample_dataset
from clothes_extractor.data.synth import synth_sample, write_synthetic
from clothes_extractor.errors import InputError
from clothes_extractor.eval.datasets import fit_sample, layout_of, load_sample, load_samples
from clothes_extractor.runtime.contract import FitSettings, ModelContract
from conftest import DRESSCODE_SAMPLE, VITON_HD_SAMPLE, VITON_VAL, cp_vton_subset, dress_code_folder


@pytest.fixture
def synthetic(tmp_path):
    write_synthetic(tmp_path / "syn", 20, seed=3, size=(64, 48))
    return tmp_path / "syn"


def test_synthetic_triplets_are_deterministic_and_consistent(synthetic):
    assert layout_of(synthetic) == "triplets"
    a, b = synth_sample(5, seed=3, size=(64, 48)), synth_sample(5, seed=3, size=(64, 48))
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    photo, mask, garment = (np.asarray(i) for i in a)
    assert mask.max() == 255 and 0.05 < (mask > 127).mean() < 0.5
    # The garment is painted with the photo's fabric: its colours appear inside the mask.
    assert np.asarray(garment)[32, 24].tolist() != [255, 255, 255]


def test_triplets_get_a_seeded_validation_split_without_overlap(synthetic):
    train = load_samples(synthetic, "train", val_fraction=0.2, seed=1)
    val = load_samples(synthetic, "val", val_fraction=0.2, seed=1)
    assert len(val) == 4 and len(train) == 16
    assert not {s.name for s in train} & {s.name for s in val}
    assert [s.name for s in val] == [s.name for s in load_samples(synthetic, "val", val_fraction=0.2, seed=1)]
    assert len(load_samples(synthetic, "all")) == 20


@pytest.mark.skipif(not VITON_HD_SAMPLE.is_dir(), reason=f"{VITON_HD_SAMPLE} is absent")
def test_viton_hd_layout():
    samples = load_samples(VITON_HD_SAMPLE, "all")
    assert len(samples) == 10 and layout_of(VITON_HD_SAMPLE / "train") == "viton-hd"
    assert all(s.mask_kind == "parse" and s.garment.name == s.photo.name for s in samples)
    photo, mask, garment = load_sample(samples[0])
    assert photo.size == mask.size == (768, 1024) and garment.mode == "RGB"


@pytest.mark.skipif(not VITON_VAL.is_file(), reason=f"{VITON_VAL} is absent")
def test_cp_vton_layout_uses_the_pairs_file(tmp_path):
    root = cp_vton_subset(tmp_path)
    samples = load_samples(root, "val")
    assert len(samples) == 6 and layout_of(root / "val") == "cp-vton"
    assert all(s.garment.name == s.photo.name.replace("_0", "_1") for s in samples)
    arrays = fit_sample(*load_sample(samples[0]), ModelContract("generator", 256, 192))
    assert arrays["image"].shape == (256, 192, 3) and arrays["mask"].shape == (256, 192, 1)
    assert arrays["mask"].max() == 255 and arrays["target"].shape == (256, 192, 3)


def test_segmenter_samples_are_the_whole_photo_and_its_mask(synthetic):
    sample = load_samples(synthetic, "all")[0]
    photo, mask, garment = load_sample(sample)
    contract = ModelContract("segmenter", 64, 48, fit=FitSettings(method="letterbox"))
    arrays = fit_sample(photo, mask, garment, contract)
    assert set(arrays) == {"image", "target"}
    assert np.array_equal(arrays["image"], np.asarray(photo))  # same size: letterbox is the identity
    assert np.array_equal(arrays["target"][:, :, 0], np.asarray(mask))


def test_no_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="is not a dataset: a split folder holds image/"):
        load_samples(tmp_path, "train")
    (tmp_path / "val" / "image").mkdir(parents=True)
    (tmp_path / "val" / "image-parse").mkdir()
    with pytest.raises(InputError, match="no train split in .* use --split val"):
        load_samples(tmp_path, "train")


def test_a_folder_that_is_almost_a_dataset_is_told_what_it_lacks(tmp_path, synthetic):
    import shutil

    shutil.copytree(synthetic, tmp_path / "t")
    shutil.rmtree(tmp_path / "t" / "garment")  # photos and masks, no catalog images
    with pytest.raises(InputError, match=r"; it has photo/, mask/ but no garment/ \(triplets\)$"):
        load_samples(tmp_path / "t", "train")
    (tmp_path / "root" / "train" / "image").mkdir(parents=True)
    with pytest.raises(InputError, match=r"its train/ has image/ but no image-parse-v3/ \(VITON-HD\) or image-parse/"):
        load_samples(tmp_path / "root", "train")
    root_hint = r"\(pairs, no masks\); a root holds such a train/ folder \(and val/ or test/\)$"
    with pytest.raises(InputError, match=root_hint):
        load_samples(tmp_path, "train")  # nothing near: no hint


def test_too_few_or_unpaired_samples_say_why(tmp_path, synthetic):
    import shutil

    one = tmp_path / "one"
    write_synthetic(one, 1, seed=3, size=(64, 48))
    for split in ("train", "val"):  # no share to hold out: a clear error, not an empty split
        with pytest.raises(InputError, match="holds a single sample: too few to hold out a validation share"):
            load_samples(one, split)
    assert len(load_samples(one, "all")) == 1
    cloth = tmp_path / "cp"  # CP-VTON photos and parse maps, no cloth/ beside them
    (cloth / "image").mkdir(parents=True)
    (cloth / "image-parse").mkdir()
    for i in range(3):
        shutil.copy(sorted((synthetic / "photo").iterdir())[i], cloth / "image" / f"{i}.png")
        Image.new("P", (48, 64), 5).save(cloth / "image-parse" / f"{i}.png")
    with pytest.raises(InputError, match=r"\(train split\): none of its 2 photos has a catalog image beside it"):
        load_samples(cloth, "train")
    assert len(load_samples(cloth, "train", require_garment=False)) == 2


def test_split_names_and_roots_with_only_a_test_folder(tmp_path, synthetic):
    import shutil

    from clothes_extractor.eval.datasets import default_split

    shutil.copytree(synthetic, tmp_path / "root" / "test")
    for name in ("val", "validation", "test"):
        assert len(load_samples(tmp_path / "root", name)) == 20
    with pytest.raises(InputError, match=r"has test/: use --split val"):
        load_samples(tmp_path / "root", "train")
    assert default_split(tmp_path / "root") == "val" and default_split(synthetic) == "all"
    with pytest.raises(InputError, match="unknown split"):
        load_samples(synthetic, "dev")


@pytest.mark.skipif(not (DRESSCODE_SAMPLE / "upper_body").is_dir(), reason=f"{DRESSCODE_SAMPLE} is absent")
def test_dress_code_layout():
    for data in (DRESSCODE_SAMPLE, DRESSCODE_SAMPLE / "upper_body"):
        samples = load_samples(data, "all")
        assert len(samples) == 10 and all(s.mask_kind == "labels" for s in samples)
        assert all(s.garment.name == s.photo.name.replace("_0.", "_1.") for s in samples)
    photo, mask, garment = load_sample(samples[0])
    on = np.asarray(mask) > 127
    assert photo.size == mask.size == (768, 1024) and 0.03 < on.mean() < 0.3
    assert layout_of(DRESSCODE_SAMPLE / "upper_body") == "dresscode"


def test_dress_code_label_maps_are_human_parsings_in_the_parsers_classes(tmp_path):
    """Dress Code's label maps number the classes their own way (ATR): read as the parser's
    classes they make its full-body photos training and scoring data for a parser and try-on."""
    from clothes_extractor.eval.datasets import load_labels
    from clothes_extractor.tasks import PARSER_CLASSES

    dress_code_folder(tmp_path)
    sample = load_samples(tmp_path, "all")[0]
    bands = np.asarray(load_labels(sample))[::8, 0]  # a band is 8 rows
    expected = ("hair", "face", "upper", "background", "lower", "lower", "arms", "legs")
    assert [PARSER_CLASSES[c] for c in bands] == list(expected)
    mask = np.asarray(load_sample(sample)[1]) > 127  # the garment mask is the upper-clothes band
    assert np.array_equal(np.nonzero(mask.any(axis=1))[0], np.arange(16, 24))


def test_a_full_body_try_on_pair_is_fitted_as_serving_fits_it(tmp_path):
    """Training and evaluate fit a try-on pair by the same window serving dresses: where the
    upper body is small in the photo, the window around it (the top then fills much more of
    the frame); the rest as before."""
    from clothes_extractor.eval.datasets import load_labels
    from clothes_extractor.runtime.fitting import crop_photo
    from clothes_extractor.runtime.tryon import fit_person, upper_body_window
    from clothes_extractor.tasks import PARSER_CLASSES

    folder = dress_code_folder(tmp_path, count=1, size=(128, 96))
    with Image.open(folder / "label_maps" / "000000_4.png") as image:  # a person a third of the width
        narrow = np.asarray(image).copy()
        palette = image.getpalette()
    narrow[:, :32] = narrow[:, 64:] = 0
    label_map = Image.fromarray(narrow, "P")
    label_map.putpalette(palette)
    label_map.save(folder / "label_maps" / "000000_4.png")  # head to waist in the top 3/8 of the photo
    sample = load_samples(tmp_path, "all")[0]
    photo, mask, garment = load_sample(sample)
    labels = load_labels(sample)
    contract = ModelContract("tryon", 64, 48, fit=FitSettings(method="letterbox"))
    arrays = fit_sample(photo, mask, garment, contract, labels=labels)
    window = upper_body_window(np.asarray(labels), (0, 0, 96, 128), (96, 128), (64, 48), PARSER_CLASSES)
    assert window is not None and window[3] - window[1] < 0.7 * 128
    assert np.array_equal(arrays["person"], crop_photo(photo, window, (64, 48), (255, 255, 255)))
    whole, _ = fit_person(photo, (64, 48))
    assert not np.array_equal(arrays["person"], whole)
    worn = (arrays["worn"][..., 0] > 0).mean()
    assert worn > 1.8 * (np.asarray(labels) == PARSER_CLASSES.index("upper")).mean()  # the top fills more of the frame
    assert (arrays["region"][..., 0][arrays["worn"][..., 0] > 0] == 255).all()  # the top is dressed anew


def test_a_missing_catalog_image_or_mask_names_the_file(tmp_path, synthetic):
    from clothes_extractor.eval.datasets import Sample

    sample = load_samples(synthetic, "all")[0]
    broken = Sample(sample.photo, tmp_path / "nope.png", "file", sample.garment)
    with pytest.raises(InputError, match="the garment mask of 000000.jpg is missing: .*nope.png"):
        load_sample(broken)
    (tmp_path / "bad.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="catalog image is an empty file"):
        load_sample(Sample(sample.photo, sample.mask, "file", tmp_path / "bad.jpg"))


def test_photos_without_a_catalog_image_are_left_out_and_said_so(synthetic, caplog):
    for stem in ("000003", "000011"):
        next((synthetic / "garment").glob(f"{stem}.*")).unlink()
    with caplog.at_level("WARNING", logger="clothes_extractor.eval.datasets"):
        samples = load_samples(synthetic, "all")
    assert len(samples) == 18 and {"000003", "000011"}.isdisjoint(s.name for s in samples)
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1 and "2 of the 20 photos of" in said[0] and said[0].endswith("000003.jpg, 000011.jpg"), said
    caplog.clear()
    assert len(load_samples(synthetic, "all", require_garment=False)) == 20 and not caplog.records  # (a segmenter's)


def test_a_photo_without_its_mask_file_is_listed_and_copied_as_it_is(tmp_path, synthetic, caplog):
    """A triplets folder's photo whose mask file is missing is a sample (as a VITON photo without
    its parse map is): loading it says which file is missing, a smaller copy has it without a mask
    too, said (it was left out of every split without a word)."""
    next((synthetic / "mask").glob("000004.*")).unlink()
    samples = load_samples(synthetic, "all")
    assert len(samples) == 20 and samples[4].name == "000004"
    with pytest.raises(InputError, match=r"the garment mask of 000004.jpg is missing: .*mask/000004.png"):
        load_sample(samples[4])
    with caplog.at_level("WARNING", logger="clothes_extractor.data.downsample"):
        assert downsample_dataset(synthetic, tmp_path / "small", 32, files=6) == 6
    copied = {folder: sorted(p.stem for p in (tmp_path / "small" / folder).iterdir()) for folder in ("photo", "mask")}
    assert copied["photo"] == [f"00000{i}" for i in range(6)] and "000004" not in copied["mask"]
    assert len(copied["mask"]) == 5
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1 and said[0].endswith("have no mask file there, and none in the copy either: 000004.jpg"), said


def test_downsample_keeps_layout_labels_and_pairs(tmp_path, synthetic):
    written = downsample_dataset(synthetic, tmp_path / "small", 32, files=5)
    assert written == 5 and layout_of(tmp_path / "small") == "triplets"
    with Image.open(next((tmp_path / "small" / "photo").iterdir())) as image:
        assert image.size == (24, 32)
    # HEIGHTxWIDTH: the width must be the photos' aspect (it was ignored: 32x32 wrote 32x24)
    assert downsample_dataset(synthetic, tmp_path / "wide", 32, files=1, width=24) == 1
    with pytest.raises(InputError, match=r"--size 32x32: .* is 64x48, and the copy keeps each image's aspect \(32x24"):
        downsample_dataset(synthetic, tmp_path / "square", 32, files=1, width=32)
    assert not (tmp_path / "square").exists()
    # a larger size: refused at the first image (it enlarged every image, as slowly as a real copy)
    with pytest.raises(InputError, match=r"--size 128: .* is 64x48; downsample makes smaller copies, .* 64 or less"):
        downsample_dataset(synthetic, tmp_path / "large", 128)
    assert not (tmp_path / "large").exists()
    seen = []
    assert downsample_dataset(synthetic, tmp_path / "same", 64, files=3, progress=lambda *at: seen.append(at)) == 3
    assert seen == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.skipif(not VITON_HD_SAMPLE.is_dir(), reason=f"{VITON_HD_SAMPLE} is absent")
def test_downsample_viton_hd_keeps_the_parse_palette(tmp_path):
    assert downsample_dataset(VITON_HD_SAMPLE, tmp_path / "hd", 256, files=3) == 3
    with Image.open(tmp_path / "hd" / "train" / "image-parse-v3" / "00000_00.png") as parse:
        assert parse.mode == "P" and parse.size == (192, 256)
        assert set(np.unique(np.asarray(parse))) <= set(range(20))
    assert len((tmp_path / "hd" / "train_pairs.txt").read_text().splitlines()) == 3
    assert len(load_samples(tmp_path / "hd", "all")) == 3


def _dress_code_root(root, count):
    """A Dress Code root made of synthetic samples: upper_body/images/NNNNNN_0.jpg (person),
    _1.jpg (garment), label_maps/NNNNNN_4.png (4 = upper clothes) and a pairs.txt."""
    images, labels = root / "upper_body" / "images", root / "upper_body" / "label_maps"
    images.mkdir(parents=True)
    labels.mkdir()
    for i in range(count):
        photo, mask, garment = synth_sample(i, seed=2, size=(64, 48))
        photo.save(images / f"{i:06d}_0.jpg")
        garment.save(images / f"{i:06d}_1.jpg")
        Image.fromarray(np.where(np.asarray(mask) > 127, 4, 0).astype(np.uint8), "L").save(labels / f"{i:06d}_4.png")
    (root / "upper_body" / "pairs.txt").write_text("".join(f"{i:06d}_0.jpg {i:06d}_1.jpg\n" for i in range(count)))
    return root


def test_downsample_a_dress_code_root_with_its_pairs_file(tmp_path):
    root = _dress_code_root(tmp_path / "dresscode", 6)
    assert downsample_dataset(root, tmp_path / "small", 32, files=4) == 4
    assert (tmp_path / "small/upper_body/pairs.txt").read_text().splitlines() == [
        f"{i:06d}_0.jpg {i:06d}_1.jpg" for i in range(4)
    ]
    assert len(load_samples(tmp_path / "small", "all")) == 4
    with Image.open(tmp_path / "small/upper_body/label_maps/000000_4.png") as labels:
        assert labels.size == (24, 32) and set(np.unique(np.asarray(labels))) == {0, 4}


def test_dataset_folders_are_new_and_whole(tmp_path, synthetic):
    # synth and downsample write a new (or empty) folder, never into an existing dataset, and
    # leave nothing when they fail part way (a broken image in the source here).
    from clothes_extractor.errors import OutputError

    before = sorted((p.name, p.stat().st_mtime_ns) for p in (synthetic / "photo").iterdir())
    with pytest.raises(OutputError, match="syn already holds files; give a new or empty folder"):
        write_synthetic(synthetic, 3, seed=9, size=(64, 48))
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (synthetic / "photo").iterdir()) == before
    (tmp_path / "empty").mkdir()
    assert write_synthetic(tmp_path / "empty", 2, size=(64, 48)) == 2 and layout_of(tmp_path / "empty") == "triplets"
    with pytest.raises(OutputError, match="already holds files"):
        downsample_dataset(synthetic, tmp_path / "empty", 32, files=1)
    assert len(list((tmp_path / "empty" / "photo").iterdir())) == 2
    (synthetic / "photo" / "000007.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="000007.jpg"):
        downsample_dataset(synthetic, tmp_path / "out" / "small", 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "syn"]  # no partial folder, no out/


def test_photos_and_catalog_images_without_masks_are_pairs_that_only_extract_s_masks_can_score(tmp_path, synthetic):
    """photo/ + garment/ and no mask/ (a shop's own photos and catalog images): a layout whose
    samples have no mask ("none"); reading one's mask says why and what scores them, training
    refuses them before any work, and ``data downsample`` keeps them pairs."""
    import shutil

    shutil.copytree(synthetic, tmp_path / "shop")
    shutil.rmtree(tmp_path / "shop" / "mask")
    assert layout_of(tmp_path / "shop") == "pairs"
    samples = load_samples(tmp_path / "shop", "all")
    assert len(samples) == 20 and {s.mask_kind for s in samples} == {"none"}
    assert all(s.garment is not None and s.garment.is_file() for s in samples)
    with pytest.raises(InputError, match=r"000000.jpg has no garment mask: the pairs of .*shop have no masks.*--masks"):
        load_sample(samples[0])
    written = downsample_dataset(tmp_path / "shop", tmp_path / "small", 32, files=3)
    assert written == 3 and layout_of(tmp_path / "small") == "pairs" and not (tmp_path / "small" / "mask").exists()
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    args = ["train", "--data", str(tmp_path / "shop"), "-o", str(tmp_path / "run"), "--size", "64x48", "--depth", "3"]
    done = CliRunner().invoke(cli, [*args, "--ngf", "4", "--batch-size", "4", "--workers", "0", "--max-steps", "1"])
    assert done.exit_code != 0 and "training needs each photo's garment mask, and the pairs of" in done.output
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
