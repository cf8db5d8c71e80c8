from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clothes_extractor.runtime import ExtractOptions, MaskIndex, ModelSession, find_jobs, run_extraction
from conftest import TINY_SIZE, person_photo


@pytest.fixture(scope="module")
def model(tiny_model_path):
    return ModelSession(tiny_model_path, "cpu")


def run(model, inputs, out, masks=None, **options):
    jobs = find_jobs(inputs, out, options.get("fmt", "png"), MaskIndex(masks) if masks else None)
    results = []
    summary = run_extraction(model, jobs, ExtractOptions(**{"batch_size": 2, "workers": 2, **options}), results.append)
    return summary, {Path(r.input).name: r for r in results}


def no_partial_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".partial")]


def test_extracts_every_photo(model, photo_folder, tmp_path):
    photos, masks = photo_folder
    summary, results = run(model, [photos], tmp_path / "out", masks)
    assert (summary.ok, summary.failed, summary.skipped) == (5, 0, 0)
    for result in results.values():
        assert result.status == "ok" and result.mask.startswith("file:")
        with Image.open(result.output) as image:
            assert image.size == (TINY_SIZE[1], TINY_SIZE[0]) and image.mode == "RGB"


def test_rerun_skips_finished_outputs_unless_overwrite(model, photo_folder, tmp_path):
    photos, masks = photo_folder
    run(model, [photos], tmp_path / "out", masks)
    (tmp_path / "out" / "p3.png").unlink()
    summary, results = run(model, [photos], tmp_path / "out", masks)
    assert (summary.ok, summary.skipped) == (1, 4) and results["p3.jpg"].status == "ok"
    summary, _ = run(model, [photos], tmp_path / "out", masks, overwrite=True)
    assert (summary.ok, summary.skipped) == (5, 0)


def test_bad_files_are_reported_and_the_rest_is_written(model, photo_folder, tmp_path):
    photos, masks = photo_folder
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "text.png").write_text("not an image")
    data = (photos / "p0.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(data[: len(data) // 3])
    person_photo(9)[0].save(photos / "nomask.jpg")
    person_photo(10)[0].save(photos / "emptymask.jpg")
    Image.new("L", (120, 160), 0).save(masks / "emptymask.png")
    # A mask of another size is resized to its photo.
    photo, mask = person_photo(11)
    photo.save(photos / "bigmask.jpg")
    mask.resize((360, 480)).save(masks / "bigmask.png")
    out = tmp_path / "out"
    summary, results = run(model, [photos], out, masks)
    assert (summary.ok, summary.failed) == (6, 5)
    assert "empty file (0 bytes)" in results["empty.jpg"].error
    assert "not an image" in results["text.png"].error
    assert "truncated or corrupt" in results["truncated.jpg"].error
    assert "no garment mask" in results["nomask.jpg"].error
    assert "mask is empty" in results["emptymask.jpg"].error
    assert results["bigmask.jpg"].status == "ok"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}.png" for n in ("p0", "p1", "p2", "p3", "p4", "bigmask")
    )
    assert no_partial_files(out)


def test_alpha_channel_is_the_last_mask_source(model, tmp_path):
    photo, mask = person_photo(1)
    rgba = photo.copy()
    rgba.putalpha(mask)
    (tmp_path / "in").mkdir()
    rgba.save(tmp_path / "in" / "cut.png")
    summary, results = run(model, [tmp_path / "in"], tmp_path / "out", fmt="webp")
    assert summary.ok == 1 and results["cut.png"].mask == "alpha"
    assert (tmp_path / "out" / "cut.webp").is_file()


def test_memory_stays_bounded_on_a_long_job(model, tmp_path):
    photo, mask = person_photo(0)
    (tmp_path / "in").mkdir()
    photo.putalpha(mask)
    photo.save(tmp_path / "in" / "src.png")
    count = 80
    pulled = 0

    def jobs():
        nonlocal pulled
        template = find_jobs([tmp_path / "in" / "src.png"], tmp_path / "out", "png")[0]
        for i in range(count):
            pulled += 1
            yield type(template)(template.photo, tmp_path / "out" / f"{i}.png", template.mask)

    emitted = 0
    worst = 0

    def on_result(result):
        nonlocal emitted, worst
        emitted += 1
        worst = max(worst, pulled - emitted)

    options = ExtractOptions(batch_size=2, workers=1)
    summary = run_extraction(model, jobs(), options, on_result)
    assert summary.ok == count
    # Photos in flight: at most prefetch reads + one batch + pending writes + one batch.
    prefetch = options.batch_size * 2 + options.workers
    assert worst <= 2 * prefetch + 2 * options.batch_size < count


def test_interrupt_leaves_only_complete_outputs(model, photo_folder, tmp_path):
    photos, masks = photo_folder
    for i in range(5, 30):
        photo, mask = person_photo(i)
        photo.save(photos / f"p{i}.jpg")
        mask.save(masks / f"p{i}.png")
    out = tmp_path / "out"
    seen = []

    def stop_after_three(result):
        seen.append(result)
        if len(seen) == 3:
            raise KeyboardInterrupt

    jobs = find_jobs([photos], out, "png", MaskIndex(masks))
    with pytest.raises(KeyboardInterrupt):
        run_extraction(model, jobs, ExtractOptions(batch_size=2, workers=2), stop_after_three)
    written = sorted(out.iterdir())
    assert 3 <= len(written) < 30 and no_partial_files(out)
    for path in written:
        with Image.open(path) as image:
            image.load()  # complete files only
    # Resuming does the rest.
    summary, _ = run(model, [photos], out, masks)
    assert summary.skipped == len(written) and summary.ok == 30 - len(written)


def test_same_photo_gives_same_garment_whatever_the_batch(model, photo_folder, tmp_path):
    photos, masks = photo_folder
    run(model, [photos], tmp_path / "a", masks, batch_size=1)
    run(model, [photos], tmp_path / "b", masks, batch_size=4)
    for path in (tmp_path / "a").iterdir():
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(tmp_path / "b" / path.name)))


def test_segmenter_output_maps_back_onto_the_photo():
    from clothes_extractor.runtime.fitting import letterbox
    from clothes_extractor.runtime.pipeline import mask_from_segmenter

    # A wide photo letterboxed into a tall 64x48 input: bands above and below.
    photo = Image.new("RGB", (100, 50))
    _, window = letterbox(photo, (64, 48), (255, 255, 255))
    output = np.zeros((64, 48, 1), np.uint8)
    # The photo occupies rows 20..44 of the 48-wide input (scale 0.48); mark its left half.
    output[20:44, :24] = 255
    mask = np.asarray(mask_from_segmenter(output, window, photo.size))
    assert mask.shape[1] / mask.shape[0] == pytest.approx(2, rel=0.1)  # covers the photo, no bands
    left, right = mask[:, : mask.shape[1] // 2 - 2], mask[:, mask.shape[1] // 2 + 2 :]
    assert left.mean() > 240 and right.mean() < 15


def test_photos_without_masks_go_through_the_segmenter(model, tiny_segmenter_path, tmp_path):
    from clothes_extractor.data.synth import synth_sample
    from clothes_extractor.runtime.fitting import letterbox
    from clothes_extractor.runtime.metrics import iou
    from clothes_extractor.runtime.pipeline import mask_from_segmenter

    segmenter = ModelSession(tiny_segmenter_path, "cpu")
    (tmp_path / "in").mkdir()
    truth = {}
    for i in range(5):
        photo, mask, _ = synth_sample(100 + i, seed=7, size=(128, 96))  # unseen, twice the model size
        photo.save(tmp_path / "in" / f"s{i}.jpg", quality=95)
        truth[f"s{i}"] = np.asarray(mask)
    (tmp_path / "in" / "bad.jpg").write_bytes(b"")
    jobs = find_jobs([tmp_path / "in"], tmp_path / "out", "png", save_masks=tmp_path / "masks")
    results = []
    summary = run_extraction(model, jobs, ExtractOptions(batch_size=2, workers=2), results.append, segmenter)
    assert (summary.ok, summary.failed) == (5, 1)
    assert {r.mask for r in results if r.status == "ok"} == {"segmenter"}
    assert len(list((tmp_path / "out").iterdir())) == 5
    scores = []
    for name, expected in truth.items():
        saved = np.asarray(Image.open(tmp_path / "masks" / f"{name}.png"))
        # The saved mask is the segmenter's own answer on the letterboxed photo, mapped back...
        photo = Image.open(tmp_path / "in" / f"{name}.jpg").convert("RGB")
        image, window = letterbox(photo, segmenter.contract.size, segmenter.contract.fit.pad_rgb)
        direct = mask_from_segmenter(segmenter.run(image=image[None])[0], window, photo.size)
        assert np.array_equal(saved, np.asarray(direct)), name
        # ... and that answer is about the garment (a small model trained for seconds).
        scores.append(iou(np.asarray(Image.fromarray(saved).resize((96, 128)))[None], expected[None])[0])
    assert np.mean(scores) > 0.5, scores


def test_without_a_segmenter_a_photo_without_mask_is_an_error(model, tmp_path):
    (tmp_path / "in").mkdir()
    person_photo(0)[0].save(tmp_path / "in" / "a.jpg")
    summary, results = run(model, [tmp_path / "in"], tmp_path / "out")
    assert summary.failed == 1 and "--segmenter" in results["a.jpg"].error
