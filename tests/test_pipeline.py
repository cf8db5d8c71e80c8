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
