"""The folder job through the library: stages, masks, sizes, backgrounds, resume, bad input."""

import functools
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from clothes_extractor.errors import ClothesExtractorError, InputError
from clothes_extractor.models import model_for
from clothes_extractor.runtime.images import apply_background
from clothes_extractor.runtime.jobs import ExtractJob, MaskIndex, find_jobs
from clothes_extractor.runtime.options import ExtractOptions
from clothes_extractor.runtime.pipeline import run_extraction
from clothes_extractor.runtime.resume import prepare_or_skip
from clothes_extractor.runtime.session import ModelSession
from clothes_extractor.runtime.stages import mask_from_segmenter
from conftest import ROOT, TINY_SIZE, far_figure, opened_files, person_photo


@pytest.fixture(scope="module")
def model(tiny_model_path):
    return ModelSession(tiny_model_path, "cpu")


@pytest.fixture(scope="module")
def flow(tiny_flow_path):
    return ModelSession(tiny_flow_path, "cpu")


@pytest.fixture(scope="module")
def segmenter(segmenter_path):
    return ModelSession(segmenter_path, "cpu")


def run(model, inputs, out, masks=None, segmenter=None, fmt="png", **options):
    jobs = find_jobs(inputs, out, fmt, MaskIndex(masks) if masks else None)
    results = []
    settings = {"batch_size": 2, "workers": 2, "processes": False, **options}
    summary = run_extraction(model, jobs, ExtractOptions(**settings), results.append, segmenter)
    return summary, {Path(r.input).name: r for r in results}


def no_partial_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".partial")]


def test_extracts_every_photo(model, photo_folder, tmp_path):
    photos, masks = photo_folder
    summary, results = run(model, [photos], tmp_path / "out", masks)
    assert (summary.ok, summary.failed, summary.skipped) == (5, 0, 0) and summary.masks == {"file": 5}
    for result in results.values():
        assert result.status == "ok" and result.mask.startswith("file:") and result.size == TINY_SIZE
        with Image.open(result.output) as image:
            assert image.size == (TINY_SIZE[1], TINY_SIZE[0]) and image.mode == "RGB"


def test_rerun_skips_outputs_of_this_model_and_settings_only(model, tiny_flow_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    out = tmp_path / "out"
    run(model, [photos], out, masks)
    (out / "p3.png").unlink()
    data = (out / "p2.png").read_bytes()
    (out / "p2.png").write_bytes(data[: len(data) // 2])  # truncated by a crash
    (out / "p1.png").write_bytes(b"")  # a 0-byte file
    summary, results = run(model, [photos], out, masks)
    assert (summary.ok, summary.skipped) == (3, 2)
    assert {n for n, r in results.items() if r.status == "ok"} == {"p1.jpg", "p2.jpg", "p3.jpg"}
    summary, _ = run(model, [photos], out, masks, overwrite=True)
    assert (summary.ok, summary.skipped) == (5, 0)
    # Another model's outputs (or other settings) are not this run's: redone, not skipped.
    other = ModelSession(tiny_flow_path, "cpu")
    summary, _ = run(other, [photos], out, masks)
    assert (summary.ok, summary.skipped) == (5, 0)
    summary, _ = run(other, [photos], out, masks, output_size="model")
    assert (summary.ok, summary.skipped) == (5, 0)
    summary, _ = run(other, [photos], out, masks, output_size="model")
    assert (summary.ok, summary.skipped) == (0, 5)


def test_a_new_segmenter_redoes_the_outputs_whose_masks_it_found(model, segmenter, photo_folder, tmp_path):
    """The segmenter's masks (and which photos show a garment alone) decide the outputs it found
    the masks of: another segmenter's rerun redoes those, and skips those whose mask is a file."""
    photos, masks = photo_folder
    some = tmp_path / "some-masks"
    some.mkdir()
    for name in ("p0.png", "p1.png"):
        shutil.copy(masks / name, some / name)
    out = tmp_path / "out"
    summary, results = run(model, [photos], out, some, segmenter=segmenter)
    assert (summary.ok, summary.skipped, summary.failed) == (5, 0, 0)
    found = {name for name, result in results.items() if result.mask.startswith("segmenter")}
    assert found == {"p2.jpg", "p3.jpg", "p4.jpg"}
    summary, _ = run(model, [photos], out, some, segmenter=segmenter)
    assert (summary.ok, summary.skipped) == (0, 5)
    other = ModelSession(model_for("segmenter", gpu=True), "cpu")  # the bundled fp16 file: another digest
    assert other.digest != segmenter.digest
    summary, results = run(model, [photos], out, some, segmenter=other)
    assert (summary.ok, summary.skipped, summary.failed) == (3, 2, 0)
    assert {name for name, result in results.items() if result.status == "ok"} == found
    summary, _ = run(model, [photos], out, some, segmenter=other)
    assert (summary.ok, summary.skipped) == (0, 5)


def test_a_file_this_tool_did_not_write_is_kept_unless_overwrite(model, photo_folder, tmp_path):
    photos, masks = photo_folder
    out = tmp_path / "out"
    out.mkdir()
    Image.new("RGB", (30, 40), (200, 10, 10)).save(out / "p1.png")  # the shop's own catalog image
    shop = (out / "p1.png").read_bytes()
    summary, results = run(model, [photos], out, masks)
    assert (summary.ok, summary.failed) == (4, 1) and (out / "p1.png").read_bytes() == shop
    assert "was not written by clothes-extractor: it is kept" in results["p1.jpg"].error
    summary, results = run(model, [photos], out, masks, overwrite=True)
    assert summary.ok == 5 and (out / "p1.png").read_bytes() != shop


def test_saved_masks_keep_hand_made_ones(model, photo_folder, tmp_path):
    photos, masks = photo_folder
    hand = {p.name: p.read_bytes() for p in masks.iterdir()}  # drawn by hand: no signature

    def run_saving(save_to, masks_from, **options):
        jobs = find_jobs([photos], tmp_path / "out", "png", MaskIndex(masks_from), save_masks=save_to)
        results = []
        settings = {"batch_size": 2, "workers": 2, "processes": False, **options}
        summary = run_extraction(model, jobs, ExtractOptions(**settings), results.append)
        return summary, {Path(r.input).name: r for r in results}

    # --masks DIR --save-masks DIR (after a manual fix): each mask is its own saved copy, left alone
    summary, results = run_saving(masks, masks)
    assert summary.ok == 5 and {p.name: p.read_bytes() for p in masks.iterdir()} == hand
    assert results["p0.jpg"].saved_mask == str(masks / "p0.png")
    # saving into a folder of someone's masks from other masks: theirs are kept, the job reported
    copies = tmp_path / "copies"
    shutil.copytree(masks, copies)
    summary, results = run_saving(masks, copies, overwrite=True)
    assert summary.ok == 5 and {p.name: p.read_bytes() for p in masks.iterdir()} != hand  # replaced, as told
    shutil.rmtree(masks)
    shutil.copytree(copies, masks)
    (tmp_path / "out" / "p0.png").unlink()  # one photo left to do
    summary, results = run_saving(masks, copies)
    assert (summary.ok, summary.skipped, summary.failed) == (0, 4, 1)
    assert (
        "not written by clothes-extractor" in results["p0.jpg"].error
        and "--save-masks folder" in results["p0.jpg"].error
    )
    assert {p.name: p.read_bytes() for p in masks.iterdir()} == hand
    saved = tmp_path / "saved"  # masks this tool saved carry its mark: a rerun may replace them
    run_saving(saved, copies, overwrite=True)
    (tmp_path / "out" / "p1.png").unlink()
    summary, _ = run_saving(saved, copies)
    assert (summary.ok, summary.skipped) == (1, 4)


def test_a_folder_in_place_of_an_output_is_an_error_not_a_skip(model, photo_folder, tmp_path):
    photos, masks = photo_folder
    (tmp_path / "out" / "p0.png").mkdir(parents=True)
    summary, results = run(model, [photos], tmp_path / "out", masks)
    assert (summary.ok, summary.failed) == (4, 1)
    assert "a folder of that name is in the way" in results["p0.jpg"].error


def test_bad_files_are_reported_and_the_rest_is_written(model, photo_folder, tmp_path):
    photos, masks = photo_folder
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "text.png").write_text("not an image")
    data = (photos / "p0.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(data[: len(data) // 3])
    person_photo(9)[0].save(photos / "nomask.jpg")
    person_photo(10)[0].save(photos / "emptymask.jpg")
    Image.new("L", (120, 160), 0).save(masks / "emptymask.png")
    # A mask of another size is resized to its photo; one of another shape is someone else's.
    photo, mask = person_photo(11)
    photo.save(photos / "bigmask.jpg")
    mask.resize((360, 480)).save(masks / "bigmask.png")
    photo.save(photos / "squaremask.jpg")
    mask.resize((160, 160)).save(masks / "squaremask.png")
    exif = photo.getexif()
    exif[0x0112] = 6  # shown turned by 90 degrees: 160x120
    photo.save(photos / "turned.jpg", exif=exif)
    mask.save(masks / "turned.png")  # 120x160: the stored orientation, not the shown one
    out = tmp_path / "out"
    summary, results = run(model, [photos], out, masks)
    assert (summary.ok, summary.failed) == (6, 7)
    assert "the mask is 160x160 and the photo 120x160" in results["squaremask.jpg"].error
    assert "the mask is 120x160 and the photo 160x120" in results["turned.jpg"].error
    assert "this one is turned" in results["turned.jpg"].error
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


def test_an_earlier_runs_garments_among_the_photos_are_refused_not_extracted_again(model, photo_folder, tmp_path):
    # extract -r photos -o photos/garments, later -o elsewhere: the walk leaves out only its
    # own -o, so the first run's garments come as photos (and each has a mask by its stem)
    photos, masks = photo_folder
    run(model, [photos], photos / "garments", masks)
    jobs = find_jobs([photos], tmp_path / "again", "png", MaskIndex(masks), recursive=True)
    results = []
    options = ExtractOptions(batch_size=2, workers=2, processes=False)
    summary = run_extraction(model, jobs, options, results.append, None)
    assert (summary.ok, summary.failed) == (5, 5)
    for result in results:
        if Path(result.input).parent.name == "garments":
            assert "is a garment image that extract wrote, not a photo" in result.error
        else:
            assert result.status == "ok"
    assert sorted(p.relative_to(tmp_path / "again").as_posix() for p in (tmp_path / "again").rglob("*")) == [
        f"p{i}.png" for i in range(5)
    ]  # nothing written for them, no folder made


def test_alpha_is_a_mask_only_when_asked_for(model, segmenter, figures, tmp_path):
    # A cut-out PNG (what rembg writes): by default composited on white and segmented.
    photo = Image.open(figures / "figure-1.jpg").convert("RGB")
    cutout = photo.copy()
    cutout.putalpha(Image.new("L", photo.size, 0))
    cutout.paste(
        photo, (0, 0), Image.fromarray(np.pad(np.full((photo.height - 40, photo.width - 40), 255, np.uint8), 20))
    )
    (tmp_path / "in").mkdir()
    cutout.save(tmp_path / "in" / "cut.png")
    summary, results = run(model, [tmp_path / "in"], tmp_path / "a", segmenter=segmenter)
    assert summary.ok == 1 and results["cut.png"].mask.startswith("segmenter")
    summary, results = run(model, [tmp_path / "in"], tmp_path / "b", segmenter=segmenter, alpha_mask=True)
    assert summary.ok == 1 and results["cut.png"].mask == "alpha"


def test_memory_stays_bounded_on_a_long_job(model, tmp_path):
    photo, mask = person_photo(0)
    (tmp_path / "in").mkdir()
    photo.save(tmp_path / "in" / "src.png")
    mask.save(tmp_path / "mask.png")
    count = 80
    pulled = 0

    def jobs():
        nonlocal pulled
        from clothes_extractor.runtime.walk import MaskSource

        for i in range(count):
            pulled += 1
            yield ExtractJob(
                tmp_path / "in" / "src.png", tmp_path / "out" / f"{i}.png", MaskSource("file", tmp_path / "mask.png")
            )

    emitted = 0
    worst = 0

    def on_result(result):
        nonlocal emitted, worst
        emitted += 1
        worst = max(worst, pulled - emitted)

    options = ExtractOptions(batch_size=2, workers=1, processes=False)
    summary = run_extraction(model, jobs(), options, on_result)
    assert summary.ok == count
    # Photos in flight: admitted only while fewer than batch * 2 + workers are anywhere.
    assert worst <= options.batch_size * 2 + options.workers + 1 < count


def test_the_jobs_tail_waits_for_its_last_photo_instead_of_spinning(model, photo_folder, tmp_path, monkeypatch):
    """A partial batch that may not run yet (a photo is still being read) is no reason to step
    again at once: the loop waits on the read. Spinning held the GIL that a process pool's
    threads need to hand results over, and slowed the tail of every job."""
    from clothes_extractor.runtime import pipeline

    photos, masks = photo_folder
    slow = sorted(photos.iterdir())[-1].name

    def read(job, plan, overwrite):
        if job.photo.name == slow:
            time.sleep(0.6)  # the last photo is slow to read: the others wait in a partial batch
        return prepare_or_skip(job, plan, overwrite)

    steps = 0
    step = pipeline.Extraction.step

    def counted(self, *args, **kwargs):
        nonlocal steps
        steps += 1
        return step(self, *args, **kwargs)

    monkeypatch.setattr(pipeline.Extraction, "read", staticmethod(read))
    monkeypatch.setattr(pipeline.Extraction, "step", counted)
    summary, _ = run(model, [photos], tmp_path / "out", masks, batch_size=8)
    assert summary.ok == 5
    # a step per admission, one per WAIT_S of the slow read, one per read and write done, a few
    # more: a few dozen at most (the spin took 189,300 here)
    assert steps <= 5 + 0.6 / pipeline.WAIT_S + 5 + 5 + 30, steps


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_a_job_source_waiting_for_its_next_photo_has_those_it_gave_written_and_hears_a_cancel(
    model, photo_folder, tmp_path, processes
):
    """A job source gives None while it has no photo ready (a feed waiting for a fetch): the
    photos it gave go on to their outputs meanwhile (a partial batch, once it has had none for
    ``IDLE_S``; read by worker processes, though fewer than a task's), and a cancel is heard
    then, not once it has the next."""
    from clothes_extractor.runtime import pipeline

    photos, masks = photo_folder
    jobs = find_jobs([photos], tmp_path / "out", "png", MaskIndex(masks))
    results, cancel, written_meanwhile = [], threading.Event(), []

    def source():
        yield from jobs[:3]
        for _ in range(2):  # until the three are written; then, cancelled, until it is heard (30 s at most)
            waited = time.monotonic() + 30
            while (len(results) < 3 or cancel.is_set()) and time.monotonic() < waited:
                yield None
                time.sleep(0.02)
            written_meanwhile.append(len(results))
            cancel.set()  # the app's cancel button, while the source still has none
        yield from jobs[3:]

    options = ExtractOptions(batch_size=8, workers=2, processes=processes)
    summary = pipeline.run_extraction(model, source(), options, results.append, cancel=cancel)
    assert written_meanwhile[0] == 3 and all(r.status == "ok" for r in results), results
    assert summary.stopped == pipeline.CANCELLED and summary.ok == 3 and len(written_meanwhile) == 1


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
        run_extraction(model, jobs, ExtractOptions(batch_size=2, workers=2, processes=False), stop_after_three)
    written = sorted(out.iterdir())
    assert 3 <= len(written) < 30 and no_partial_files(out)
    for path in written:
        with Image.open(path) as image:
            image.load()  # complete files only
    # Resuming does the rest.
    summary, _ = run(model, [photos], out, masks)
    assert summary.skipped == len(written) and summary.ok == 30 - len(written)


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_same_photo_gives_same_bytes_whatever_the_batch_or_workers(model, photo_folder, tmp_path, processes):
    photos, masks = photo_folder
    run(model, [photos], tmp_path / "a", masks, batch_size=1)
    run(model, [photos], tmp_path / "b", masks, batch_size=4, processes=processes, workers=2)
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


def test_segmenter_output_maps_back_onto_the_photo():
    from clothes_extractor.runtime.fitting import letterbox

    # A wide photo letterboxed into a tall 64x48 input: bands above and below.
    photo = Image.new("RGB", (100, 50))
    _, window = letterbox(photo, (64, 48), (255, 255, 255))
    plane = np.zeros((64, 48), np.uint8)
    # The photo occupies rows 20..44 of the 48-wide input (scale 0.48); mark its left half.
    plane[20:44, :24] = 255
    mask = np.asarray(mask_from_segmenter(plane, window, photo.size))
    assert mask.shape[1] / mask.shape[0] == pytest.approx(2, rel=0.1)  # covers the photo, no bands
    left, right = mask[:, : mask.shape[1] // 2 - 2], mask[:, mask.shape[1] // 2 + 2 :]
    assert left.mean() > 240 and right.mean() < 15


@pytest.mark.parametrize("start", [-3.3, 0.0, 0.4, 0.6, 10.45])
def test_a_zoomed_mask_is_pasted_back_where_it_was_cut(start):
    """The zoom box has fractional corners (rounding may land outside it) and may pass the
    plane's edge; the pasted mask covers exactly the box's part of the plane."""
    from clothes_extractor.runtime.fitting import paste_box

    mask = np.full((64, 48), 255, np.uint8)
    zoom = (start, start + 1.3, start + 24.2, start + 33.7)
    plane = paste_box(mask, zoom, (40, 30))
    assert plane.shape == (40, 30)
    on = np.argwhere(plane > 127)
    assert on[:, 1].min() == max(0, round(zoom[0])) and on[:, 0].min() == max(0, round(zoom[1]))
    assert on[:, 1].max() == min(29, round(zoom[2]) - 1) and on[:, 0].max() == min(39, round(zoom[3]) - 1)


def test_photos_without_masks_go_through_the_segmenter(model, segmenter, tmp_path):
    from clothes_extractor.data.synth import synth_sample
    from clothes_extractor.eval.metrics import iou

    (tmp_path / "in").mkdir()
    truth = {}
    for i in range(4):
        photo, mask, _ = synth_sample(100 + i, seed=7, size=(384, 288))
        photo.save(tmp_path / "in" / f"s{i}.jpg", quality=95)
        truth[f"s{i}"] = np.asarray(mask)
    (tmp_path / "in" / "bad.jpg").write_bytes(b"")
    jobs = find_jobs([tmp_path / "in"], tmp_path / "out", "png", save_masks=tmp_path / "masks")
    results = []
    options = ExtractOptions(batch_size=2, workers=2, processes=False)
    summary = run_extraction(model, jobs, options, results.append, segmenter)
    assert (summary.ok, summary.failed) == (4, 1)
    assert {r.mask for r in results if r.status == "ok"} <= {"segmenter", "segmenter+zoom"}
    scores = [
        iou(np.asarray(Image.open(tmp_path / "masks" / f"{name}.png").resize((288, 384)))[None], expected[None])[0]
        for name, expected in truth.items()
    ]
    assert np.mean(scores) > 0.75, scores


def test_a_small_garment_gets_a_zoomed_second_look(model, segmenter, tmp_path):
    from clothes_extractor.data.synth import synth_sample
    from clothes_extractor.eval.metrics import iou

    # The figure in a quarter of a big empty frame: a full-body framing. (The parser misses
    # some drawings this small at first look, e.g. seed 7's fourth: the model card says so.)
    photo, mask, _ = synth_sample(1, seed=7, size=(256, 192))
    frame = Image.new("RGB", (768, 1024), photo.getpixel((2, 2)))
    frame.paste(photo, (300, 380))
    full_mask = Image.new("L", frame.size, 0)
    full_mask.paste(mask, (300, 380))
    (tmp_path / "in").mkdir()
    frame.save(tmp_path / "in" / "far.jpg", quality=95)
    jobs = find_jobs([tmp_path / "in"], tmp_path / "out", "png", save_masks=tmp_path / "masks")
    results = []
    run_extraction(model, jobs, ExtractOptions(processes=False), results.append, segmenter)
    (result,) = results
    assert result.status == "ok" and result.mask == "segmenter+zoom"
    saved = np.asarray(Image.open(tmp_path / "masks" / "far.png").resize(frame.size))
    assert iou(saved[None], np.asarray(full_mask)[None])[0] > 0.7


def test_worker_processes_send_no_decoded_photo_back_and_write_the_same_files(model, segmenter, figures, tmp_path):
    """From a worker process, a photo left for the segmenter comes back light (``read_lightly``:
    without its decoded pixels, a fifth of the bytes here and 2.4 MB less at 1024x768); a
    closer look decodes it again in the calling process, ``finish`` in a worker: the same
    files as with threads, which keep the photo."""
    import pickle

    from clothes_extractor.runtime.options import make_plan
    from clothes_extractor.runtime.stages import NeedsMask
    from clothes_extractor.runtime.workers import read_lightly

    far_figure(figures)
    jobs = find_jobs([figures], tmp_path / "out", "png")
    plan = make_plan(model, segmenter, ExtractOptions())
    whole = prepare_or_skip(jobs[0], plan, False)
    light = read_lightly(prepare_or_skip, jobs[0], plan, False)
    assert isinstance(whole, NeedsMask) and isinstance(light, NeedsMask)
    assert whole.photo is not None and light.photo is None and light.on_host
    assert np.array_equal(light.image, whole.image) and light.photo_size == whole.photo_size
    assert len(pickle.dumps(light)) * 5 < len(pickle.dumps(whole))
    to_finish = whole.for_worker()  # finish decodes the photo again and never reads the letterbox
    assert to_finish.photo is None and to_finish.image.size == 0 and to_finish.photo_size == whole.photo_size
    assert whole.photo is not None and whole.image.size  # the item itself unchanged

    outputs = {}
    for processes in (False, True):
        out = tmp_path / f"out-{processes}"
        results = []
        options = ExtractOptions(batch_size=4, workers=2, processes=processes)
        run_extraction(model, find_jobs([figures], out, "png"), options, results.append, segmenter)
        assert "segmenter+zoom" in {r.mask for r in results}, [r.mask for r in results]
        outputs[processes] = {p.name: p.read_bytes() for p in out.iterdir()}
    assert outputs[True] == outputs[False] and len(outputs[True]) >= 4


def test_a_closer_looks_crop_is_made_in_a_worker_not_the_calling_process(model, segmenter, tmp_path, monkeypatch):
    """The calling process runs the segmenter on a batch and sends each closer look's crop to a
    worker (``stages.closer_crop``; 17 ms of decode and resize at 1024x768, half of what the
    calling process did here); it is never made where the models run. A worker process has its
    own ``zoomed``: the one patched here is the calling process's."""
    from clothes_extractor.runtime.stages import NeedsMask

    def not_here(*args, **kwargs):
        raise AssertionError("a closer look's crop made in the calling process")

    monkeypatch.setattr(NeedsMask, "zoomed", not_here)
    (tmp_path / "in").mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        far_figure(tmp_path / "in", name)
    shutil.copy(ROOT / "examples" / "photos" / sorted(os.listdir(ROOT / "examples" / "photos"))[0], tmp_path / "in")
    results = []
    options = ExtractOptions(batch_size=4, workers=2, processes=True)
    run_extraction(model, find_jobs([tmp_path / "in"], tmp_path / "out", "png"), options, results.append, segmenter)
    assert sorted(r.mask for r in results) == ["segmenter", "segmenter+zoom", "segmenter+zoom", "segmenter+zoom"]
    assert all(r.status == "ok" for r in results)


def test_what_the_first_look_decides_is_made_out_in_a_worker_not_the_calling_process(
    model, segmenter, tmp_path, monkeypatch
):
    """The calling process runs the segmenter and forms the batches; what its first look decides
    of each photo (people apart, a garment shown alone, its box: 0.23-0.30 ms a photo of the main
    thread on a 2-core CPU) is a worker's (``stages.look_then``). The ``look_at`` patched here is
    the calling process's; a worker process has its own."""
    from clothes_extractor.runtime import stages

    def not_here(*args, **kwargs):
        raise AssertionError("a photo's first look made out in the calling process")

    monkeypatch.setattr(stages, "look_at", not_here)
    (tmp_path / "in").mkdir()
    far_figure(tmp_path / "in", "far.jpg")
    for name in sorted(os.listdir(ROOT / "examples" / "photos"))[:2]:
        shutil.copy(ROOT / "examples" / "photos" / name, tmp_path / "in")
    results = []
    options = ExtractOptions(batch_size=4, workers=2, processes=True)
    run_extraction(model, find_jobs([tmp_path / "in"], tmp_path / "out", "png"), options, results.append, segmenter)
    assert [r.status for r in results] == ["ok"] * 3 and "segmenter+zoom" in {r.mask for r in results}


def test_work_crosses_to_worker_processes_a_batch_at_a_time(model, segmenter, tmp_path, monkeypatch):
    """Each trip to a worker process costs the calling process's threads (pickling, the pipe,
    the pool's bookkeeping) about what a photo's own crossing does, so each stage sends a
    batch's work in one task per worker: reads ``batch / workers`` photos to a task, the first
    look's decisions (with the fit or the closer look's crop that follows), finishes and writes a
    batch's in ``workers`` tasks. Eight photos in one batch of 8 with 2 workers: at most 2 tasks
    per stage (reads, looks, finish after the closer looks, writes), where a task per photo and
    stage was 30 (10 when the fits and the crops were tasks of their own). The same files as threads."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from clothes_extractor.runtime import workers

    tasks = []

    class Counted(ProcessPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            tasks.append(args[0].__name__ if fn.__name__ == "run_each" else fn.__name__)
            return super().submit(fn, *args, **kwargs)

    (tmp_path / "in").mkdir()
    for i in range(6):
        far_figure(tmp_path / "in", f"far{i}.jpg")
    for name in sorted(os.listdir(ROOT / "examples" / "photos"))[:2]:
        shutil.copy(ROOT / "examples" / "photos" / name, tmp_path / "in")
    context = multiprocessing.get_context("forkserver")
    files = {}
    for processes in (False, True):
        if processes:
            monkeypatch.setattr(workers, "make_pool", lambda options: Counted(options.workers, mp_context=context))
        results = []
        options = ExtractOptions(batch_size=8, workers=2, processes=processes)
        out = tmp_path / f"out-{processes}"
        run_extraction(model, find_jobs([tmp_path / "in"], out, "png"), options, results.append, segmenter)
        assert [r.status for r in results] == ["ok"] * 8 and "segmenter+zoom" in {r.mask for r in results}
        files[processes] = {p.name: p.read_bytes() for p in out.iterdir()}
    assert files[True] == files[False]
    assert tasks.count("read_lightly") == 2 and tasks.count("write") <= 2, tasks
    assert tasks.count("look_then") <= 2 and 1 <= tasks.count("finished") <= 2 and len(tasks) <= 8, tasks


def _kill_a_worker_at_the_first_result(model, monkeypatch, photos, out, masks, restarts=None):
    """A folder job with worker processes, one of which is killed (SIGKILL: what the system's
    out-of-memory killer or a decoder that crashes on a file does) once the first garment is
    written, leaving a temporary file as if it died mid-write; its summary and results."""
    import signal
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)

    from clothes_extractor.runtime import pipeline
    from clothes_extractor.runtime.workers import Workers

    made = []

    class Watched(Workers):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

    if restarts is not None:
        monkeypatch.setattr(Watched, "MAX_RESTARTS", restarts)
    monkeypatch.setattr(pipeline, "Workers", Watched)
    results = []

    def on_result(result):
        if not results:
            os.kill(next(iter(made[0].pool._processes)), signal.SIGKILL)
            (out / f".ce-{int(gone.stdout)}-0badf00d.partial").write_bytes(b"half a garment")
        results.append(result)

    jobs = find_jobs([photos], out, "png", MaskIndex(masks))
    options = ExtractOptions(batch_size=4, workers=2, processes=True)
    return run_extraction(model, jobs, options, on_result), results, made[0]


def _many_photos(photo_folder, tmp_path, copies=5):
    photos, masks = photo_folder
    many, many_masks = tmp_path / "many", tmp_path / "many-masks"
    many.mkdir()
    many_masks.mkdir()
    for i in range(copies):
        for name in ("p0", "p1", "p2", "p3", "p4"):
            shutil.copy(photos / f"{name}.jpg", many / f"{name}-{i}.jpg")
            shutil.copy(masks / f"{name}.png", many_masks / f"{name}-{i}.png")
    return many, many_masks


def read_or_die(job, plan, overwrite):
    """A worker's first stage (``Extraction.read``) whose process dies on a photo named
    ``crash*``, as a decoder that crashes on a file does; on ``crash-once*`` only the first
    time (it leaves a ``.died`` file beside the photo). Module-level: worker processes import it."""
    name = job.photo.name
    if name.startswith("crash"):
        died = job.photo.with_suffix(".died")
        if not (name.startswith("crash-once") and died.exists()):
            died.touch()
            os._exit(70)
    return prepare_or_skip(job, plan, overwrite)


def _with_a_crashing_photo(photo_folder, tmp_path, monkeypatch, name):
    """``_many_photos`` with one more photo, ``name``, whose worker process dies (``read_or_die``),
    and how many photos were in flight beside each photo tried again, as it was sent."""
    from clothes_extractor.runtime import pipeline

    many, many_masks = _many_photos(photo_folder, tmp_path)
    shutil.copy(many / "p2-2.jpg", many / f"{name}.jpg")
    shutil.copy(many_masks / "p2-2.png", many_masks / f"{name}.png")
    company, flush = [], pipeline.Extraction.flush_reads

    def flush_and_count(self):
        alone = [job for job, _ in self.to_read if id(job) in self.retries.tried]
        flush(self)
        if alone:
            company.append(self.in_flight() - 1)

    monkeypatch.setattr(pipeline.Extraction, "read", staticmethod(read_or_die))
    monkeypatch.setattr(pipeline.Extraction, "flush_reads", flush_and_count)
    return many, many_masks, company


@pytest.mark.parametrize("again", [False, True], ids=["once", "again-alone"])
def test_the_photos_of_a_worker_process_that_dies_are_tried_again_alone(
    model, photo_folder, tmp_path, monkeypatch, again
):
    """Until the 49th stop a dead worker process (the out-of-memory killer, a decoder crashing on
    a file) ended the whole job with a traceback; until the 52nd every photo in its pool failed,
    for a rerun to finish. Now each is tried again alone once the others are done: the job
    extracts them all, and nothing half-written is left. ``again``: the photo whose decoding
    killed the worker kills it again, alone: it alone fails, and says so."""
    from clothes_extractor.errors import WorkerDied
    from clothes_extractor.runtime import pipeline
    from clothes_extractor.runtime.workers import Workers

    crash = "crash" if again else "crash-once"
    many, many_masks, company = _with_a_crashing_photo(photo_folder, tmp_path, monkeypatch, crash)
    made = []

    class Watched(Workers):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(pipeline, "Workers", Watched)
    out = tmp_path / "out"
    summary, results = run(model, [many], out, many_masks, processes=True, batch_size=4)
    assert summary.stopped is None and made[0].restarts == (2 if again else 1)
    assert 1 <= summary.retried < 26 and summary.skipped == 0 and len(results) == 26
    assert company == [0] * summary.retried  # each tried again with no other photo in flight
    failed = {name: r.error for name, r in results.items() if r.status == "error"}
    assert failed == ({f"{crash}.jpg": str(WorkerDied(alone=True))} if again else {}), failed
    assert summary.ok == 26 - len(failed) == len(list(out.iterdir())) and no_partial_files(out)
    monkeypatch.undo()  # the reads as they are: the rerun extracts the crashing photo too
    rerun, _ = run(model, [many], out, many_masks, processes=True)
    assert rerun.failed == 0 and rerun.ok == len(failed) and rerun.skipped == summary.ok


def test_extract_says_how_many_photos_it_tried_again(tiny_model_path, photo_folder, tmp_path, monkeypatch):
    """The folder job's summary line counts the photos tried again after a worker process died."""
    import re

    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    many, many_masks, _ = _with_a_crashing_photo(photo_folder, tmp_path, monkeypatch, "crash-once")
    args = ["extract", many, "-o", tmp_path / "out", "--model", tiny_model_path, "--masks", many_masks]
    done = CliRunner().invoke(cli, [*map(str, args), "--processes", "--workers", "2", "--batch-size", "4"])
    assert done.exit_code == 0 and (many / "crash-once.died").exists(), done.output
    assert "26 extracted" in done.output and ", 0 failed" in done.output, done.output
    assert int(re.search(r"; (\d+) tried again alone after a worker process died", done.output).group(1)) >= 1


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_garment_written_before_its_worker_process_died_is_reported_written(
    model, photo_folder, tmp_path, monkeypatch, overwrite
):
    """Until the 51st stop a dead worker process failed every photo of its pool, also those whose
    garment it had written, whole, before it died (their results had not come back yet): the report
    said failed where the folder held the file. Now such a photo is reported written, and only the
    others are tried again (killed at the first file of a task of four slow writes, so mid-task;
    with ``overwrite``, over a folder this run's settings wrote already: a file that was there
    before, not written again, is not this run's). Not one garment is written twice."""
    import signal
    import threading

    from clothes_extractor.runtime import pipeline
    from clothes_extractor.runtime.workers import Workers

    many, many_masks = _many_photos(photo_folder, tmp_path)
    out, made, killed, done = tmp_path / "out", [], [], threading.Event()
    settings = {"processes": True, "workers": 1, "batch_size": 4, "output_size": (1024, 768)}
    out.mkdir()
    if overwrite:
        assert run(model, [many], out, many_masks, **settings)[0].ok == 25
    there = {p.name: p.stat().st_ino for p in out.iterdir()}
    at_death = {}

    def new(path):
        return not path.name.startswith(".") and there.get(path.name) != path.stat().st_ino

    class Watched(Workers):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

    def kill_at_the_first_garment():
        while not done.wait(0.001):
            if not killed and any(new(p) for p in out.iterdir()):
                killed.extend(made[0].pool._processes)
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)
                at_death.update({p.name: p.stat().st_ino for p in out.iterdir() if new(p)})

    monkeypatch.setattr(pipeline, "Workers", Watched)
    watcher = threading.Thread(target=kill_at_the_first_garment)
    watcher.start()
    try:  # a task of 4 writes at 1024x768: the death comes while its first file is the only one
        summary, results = run(model, [many], out, many_masks, overwrite=overwrite, **settings)
    finally:
        done.set()
        watcher.join()
    assert killed and made[0].restarts == 1 and summary.stopped is None and at_death
    # (a garment the dead worker wrote, taken for unwritten, would be tried again: skipped, or with
    # ``overwrite`` written again under another inode)
    assert summary.ok == 25 and summary.failed == summary.skipped == 0, summary
    assert 1 <= summary.retried <= 25 - len(at_death)
    assert {name: (out / name).stat().st_ino for name in at_death} == at_death  # reported, not written again
    assert no_partial_files(out) and len(list(out.iterdir())) == 25
    if not overwrite:
        again, _ = run(model, [many], out, many_masks, **settings)
        assert again.skipped == 25 and again.ok == again.failed == 0


def test_worker_processes_that_keep_dying_stop_the_job(model, photo_folder, tmp_path, monkeypatch):
    from clothes_extractor.errors import WorkersKeepDying

    many, many_masks = _many_photos(photo_folder, tmp_path)
    out = tmp_path / "out"
    summary, results, workers = _kill_a_worker_at_the_first_result(model, monkeypatch, many, out, many_masks, 0)
    assert summary.stopped == str(WorkersKeepDying(1)) and workers.restarts == 1
    assert summary.stopped.startswith(f"{WorkersKeepDying.SUMMARY} (once:")
    assert summary.ok + summary.failed == len(results) < 25 and no_partial_files(out)


def test_a_cancel_while_closer_looks_are_made_leaves_whole_files_and_a_rerun_does_the_rest(model, segmenter, tmp_path):
    """Photos waiting for their closer looks' crops are in flight: a cancel drops them with the
    rest (their crops' work cancelled or let finish), writes only whole files, and a rerun
    extracts what is left."""
    import threading

    from clothes_extractor.runtime.pipeline import CANCELLED

    (tmp_path / "in").mkdir()
    for i in range(16):
        far_figure(tmp_path / "in", f"far{i:02d}.jpg")
    cancel, results = threading.Event(), []

    def on_result(result):
        results.append(result)
        cancel.set()  # at the first result: the other photos are somewhere in flight

    options = ExtractOptions(batch_size=2, workers=2, processes=True)
    jobs = find_jobs([tmp_path / "in"], tmp_path / "out", "png")
    summary = run_extraction(model, jobs, options, on_result, segmenter, cancel=cancel)
    assert summary.stopped == CANCELLED and 1 <= summary.ok < 16, summary
    written = sorted((tmp_path / "out").iterdir())
    assert len(written) == summary.ok and not [p for p in written if p.name.startswith(".")]
    for path in written:
        with Image.open(path) as image:
            image.load()
    rerun = run_extraction(model, find_jobs([tmp_path / "in"], tmp_path / "out", "png"), options, None, segmenter)
    assert (rerun.ok, rerun.skipped, rerun.failed) == (16 - summary.ok, summary.ok, 0)
    assert rerun.masks == {"segmenter+zoom": 16 - summary.ok}


def test_a_closer_looks_mask_goes_to_finish_as_its_crop_not_the_detail_plane(segmenter, tmp_path):
    """``CloserMask``: the calling process sends ``finish`` the closer look's mask over its window
    (the segmenter's size), and the worker pastes it into the detail letterbox's plane (nine times
    the pixels); the garment there, nothing outside the window."""
    import pickle

    from clothes_extractor.runtime.stages import detail_size, for_segmenter, segment

    far_figure(tmp_path)
    (job,) = find_jobs([tmp_path / "far.jpg"], tmp_path / "out", "png")
    (found,) = segment([for_segmenter(job, segmenter.contract).light()], segmenter)
    assert found.zoomed and found.closer.mask.shape == segmenter.contract.size
    plane = found.garment_plane()
    assert plane.shape == detail_size(segmenter.contract)
    assert len(pickle.dumps(found)) * 4 < plane.nbytes
    x0, y0, x1, y1 = (round(v) for v in found.closer.zoom)
    inside = np.zeros(plane.shape, bool)
    inside[max(y0, 0) : y1, max(x0, 0) : x1] = True
    assert plane[~inside].max() == 0 and (plane[inside] >= 128).mean() > 0.05


def test_an_unexpected_error_in_a_closer_look_is_that_photos_not_the_batchs(model, segmenter, tmp_path, monkeypatch):
    """A crop that fails in its worker for a reason of its own fails its photo, said so; the rest of
    the batch, closer looks too, goes on (the calling process made the crops and lost the batch)."""
    from clothes_extractor.runtime.stages import NeedsMask

    zoomed = NeedsMask.zoomed

    def fails_for_b(self, zoom, contract):
        if self.job.photo.name == "b.jpg":
            raise RuntimeError("disk went away")
        return zoomed(self, zoom, contract)

    monkeypatch.setattr(NeedsMask, "zoomed", fails_for_b)
    (tmp_path / "in").mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        far_figure(tmp_path / "in", name)
    results = []
    options = ExtractOptions(batch_size=4, workers=2, processes=False)
    run_extraction(model, find_jobs([tmp_path / "in"], tmp_path / "out", "png"), options, results.append, segmenter)
    by_name = {Path(r.input).name: r for r in results}
    assert by_name["b.jpg"].status == "error" and "unexpected RuntimeError: disk went away" in by_name["b.jpg"].error
    assert [by_name[n].mask for n in ("a.jpg", "c.jpg")] == ["segmenter+zoom"] * 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


def test_a_photo_that_changed_before_its_closer_look_is_reported_not_mixed_up(segmenter, tmp_path):
    """A light item's closer look decodes its photo again: a file changed since (another size)
    is that photo's error, said so, and the rest of the batch goes on."""
    from clothes_extractor.runtime.stages import NeedsMask, for_segmenter, segment

    (tmp_path / "in").mkdir()
    far_figure(tmp_path / "in", "a.jpg")
    far_figure(tmp_path / "in", "b.jpg")
    jobs = find_jobs([tmp_path / "in"], tmp_path / "out", "png")
    items: list[NeedsMask] = [for_segmenter(job, segmenter.contract).light() for job in jobs]
    Image.new("RGB", (600, 800), (200, 200, 200)).save(jobs[0].photo)  # a.jpg replaced, before its closer look
    changed, kept = segment(items, segmenter)
    assert isinstance(changed, InputError) and "changed while it was read" in str(changed)
    assert "600x800 now, 768x1024 before" in str(changed)
    assert kept.zoomed


def test_a_closer_looks_crop_is_cut_from_the_detail_letterbox_without_making_all_of_it(segmenter):
    """``NeedsMask.zoomed``: the zoom window of the letterbox at DETAIL_FACTOR x the segmenter's
    size, resized to that size, as when the whole letterbox was made first (a level or two
    apart at most, where Pillow resamples a box at a fractional offset), windows past its edges too."""
    from clothes_extractor.runtime.fitting import crop_resize, fit_window, letterbox
    from clothes_extractor.runtime.stages import NeedsMask, detail_size

    contract = segmenter.contract
    detail = detail_size(contract)
    rng = np.random.default_rng(5)
    photo = Image.fromarray(rng.integers(0, 256, (1024, 768, 3), dtype=np.uint8)).filter(ImageFilter.BLUR)
    item = NeedsMask(None, np.zeros(1), photo, None, photo.size, (250, 250, 250))
    whole = Image.fromarray(letterbox(photo, detail, item.fill)[0])
    for box in [(200, 300, 260, 380), (-40, -30, 90, 120), (480, 650, 640, 800), (10.5, 20.25, 500.75, 700.5)]:
        zoom = fit_window(box, contract.size, 0.15)
        expected = np.asarray(crop_resize(whole, zoom, contract.size, item.fill)).astype(int)
        got = item.zoomed(zoom, contract).astype(int)
        assert got.shape == expected.shape == (*contract.size, 3)
        assert np.abs(got - expected).max() <= 2 and np.abs(got - expected).mean() < 0.2, box


@pytest.mark.parametrize(
    "kind", ["white", "black", "grey", "noise", "tiny", "strip", "wall", "sky", "tall", "tall-noise"]
)
def test_photos_without_a_garment_are_reported_not_invented(model, segmenter, tmp_path, kind):
    rng = np.random.default_rng(0)
    photos = {
        "white": np.full((256, 192, 3), 255, np.uint8),
        "black": np.zeros((256, 192, 3), np.uint8),
        "grey": np.full((256, 192, 3), 128, np.uint8),
        "noise": rng.integers(0, 256, (256, 192, 3), dtype=np.uint8),
        "tiny": np.array([[[255, 0, 0]]], np.uint8),
        "strip": np.full((1, 300, 3), 90, np.uint8),
        # other aspects than the segmenter's, letterboxed: a band of wall between two white
        # bars looked like a garment on white to it
        "wall": np.full((400, 600, 3), (30, 120, 40), np.uint8),
        "sky": np.linspace((40, 60, 140), (250, 200, 150), 360)[:, None].repeat(640, 1).astype(np.uint8),
        "tall": np.full((600, 300, 3), (20, 30, 80), np.uint8),
        # a band of noise between two bars of its median grey: a torso to a parser that never
        # saw letterboxed photos (the bundled one learned them: its card, "Photos of other aspects")
        "tall-noise": rng.integers(0, 256, (600, 300, 3), dtype=np.uint8),
    }
    (tmp_path / "in").mkdir()
    Image.fromarray(photos[kind]).save(tmp_path / "in" / f"{kind}.png")
    summary, results = run(model, [tmp_path / "in"], tmp_path / "out", segmenter=segmenter)
    assert (summary.ok, summary.failed) == (0, 1)
    error = results[f"{kind}.png"].error
    if kind in ("tiny", "strip"):
        assert "too small to show a garment" in error
    else:
        assert "no garment found" in error and "give its mask: --masks DIR" in error
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_without_a_segmenter_a_photo_without_mask_is_an_error(model, tmp_path):
    (tmp_path / "in").mkdir()
    person_photo(0)[0].save(tmp_path / "in" / "a.jpg")
    summary, results = run(model, [tmp_path / "in"], tmp_path / "out")
    assert summary.failed == 1 and "--segmenter" in results["a.jpg"].error


def test_a_catalog_resolution_model_writes_the_crop_at_its_own_resolution(flow, photo_folder, tmp_path):
    photos, masks = photo_folder
    big = tmp_path / "big"
    big.mkdir()
    for name in ("p0", "p1"):  # 4x the photos: a garment window of ~300 rows
        Image.open(photos / f"{name}.jpg").resize((480, 640), Image.Resampling.BICUBIC).save(big / f"{name}.jpg")
        Image.open(masks / f"{name}.png").resize((480, 640)).save(masks / f"{name}.png")
    summary, results = run(flow, [big], tmp_path / "auto", masks)
    assert summary.ok == 2
    sizes = {r.size for r in results.values()}
    assert len(sizes) == 1 and (h := next(iter(sizes))[0]) % 64 == 0 and 256 <= h <= 448
    with Image.open(tmp_path / "auto" / "p0.png") as image:
        assert image.size == (next(iter(sizes))[1], h)
    _, results = run(flow, [big], tmp_path / "model", masks, output_size="model")
    assert {r.size for r in results.values()} == {TINY_SIZE}
    _, results = run(flow, [big], tmp_path / "fixed", masks, output_size=(128, 96))
    assert {r.size for r in results.values()} == {(128, 96)}
    _, results = run(flow, [big], tmp_path / "height", masks, output_size=128)  # the model's aspect
    assert {r.size for r in results.values()} == {(128, 96)}
    assert (tmp_path / "height" / "p0.png").read_bytes() == (tmp_path / "fixed" / "p0.png").read_bytes()


def test_a_worker_process_is_sent_only_what_it_writes(flow, photo_folder, tmp_path):
    """``write`` gets its outputs and a Prepared without the model's inputs (``for_write``): a
    catalog-resolution model's photo crop went to the worker pickled for nothing. The same
    files from worker processes as from threads."""
    from clothes_extractor.runtime.stages import Prepared

    photos, masks = photo_folder
    big = tmp_path / "big"
    big.mkdir()
    for name in ("p0", "p1", "p2"):
        Image.open(photos / f"{name}.jpg").resize((480, 640), Image.Resampling.BICUBIC).save(big / f"{name}.jpg")
        Image.open(masks / f"{name}.png").resize((480, 640)).save(masks / f"{name}.png")
    files = {}
    for processes in (False, True):
        summary, _ = run(flow, [big], tmp_path / f"out-{processes}", masks, processes=processes)
        assert summary.ok == 3
        files[processes] = {p.name: p.read_bytes() for p in (tmp_path / f"out-{processes}").iterdir()}
    assert files[True] == files[False]
    job = find_jobs([big], tmp_path / "x", "png", MaskIndex(masks))[0]
    cut = np.zeros((1024, 768, 4), np.uint8)
    item = Prepared(job, {"photo": np.zeros((1024, 768, 3), np.uint8)}, "file:p0.png", "m.png", {"garment": cut})
    light = item.for_write()
    assert light.inputs == {} and light.ready is None
    assert (light.job, light.mask_source, light.saved_mask) == (job, "file:p0.png", "m.png")
    assert "photo" in item.inputs and item.ready is not None  # the item itself unchanged


def test_a_size_a_u_net_does_not_draw_at_is_the_garment_resized(model, photo_folder, tmp_path):
    """A generator without catalog resolution draws at its model size; a size asked for is its
    garment resized (bicubic) as it is written (``Plan.page``, which the API, ``serve`` and the Ray
    job write through too), down as well as up."""
    photos, masks = photo_folder
    _, drawn = run(model, [photos], tmp_path / "model", masks, output_size="model")
    summary, results = run(model, [photos], tmp_path / "big", masks, output_size=(128, 96))
    assert summary.ok == 5 and {r.size for r in results.values()} == {(128, 96)}
    assert {r.size for r in drawn.values()} == {TINY_SIZE}
    for name in ("p0", "p3"):
        small, big = Image.open(tmp_path / "model" / f"{name}.png"), Image.open(tmp_path / "big" / f"{name}.png")
        assert big.size == (96, 128)
        assert np.array_equal(np.asarray(big), np.asarray(small.resize((96, 128), Image.Resampling.BICUBIC)))
    _, results = run(model, [photos], tmp_path / "height", masks, output_size=32)  # a height, smaller: resized down
    assert {r.size for r in results.values()} == {(32, 24)}
    # another aspect (a marketplace's square page): the garment at 128x96, centred on white
    _, results = run(model, [photos], tmp_path / "square", masks, output_size=(128, 128))
    assert {r.size for r in results.values()} == {(128, 128)}
    for name in ("p0", "p3"):
        page = np.asarray(Image.open(tmp_path / "square" / f"{name}.png"))
        big = np.asarray(Image.open(tmp_path / "big" / f"{name}.png"))
        assert np.array_equal(page[:, 16:112], big) and (page[:, :16] == 255).all() and (page[:, 112:] == 255).all()
    again, _ = run(model, [photos], tmp_path / "square", masks, output_size=(128, 128))
    other, _ = run(model, [photos], tmp_path / "square", masks, output_size=(128, 96))  # (not the page's: redone)
    assert (again.skipped, other.ok) == (5, 5)


def test_backgrounds_need_a_silhouette_and_compose_exactly(model, flow, photo_folder, tmp_path):
    photos, masks = photo_folder
    with pytest.raises(ClothesExtractorError, match="no silhouette output"):
        run(model, [photos], tmp_path / "x", masks, background="transparent")
    summary, _ = run(flow, [photos], tmp_path / "t", masks, background="transparent")
    assert summary.ok == 5
    with Image.open(tmp_path / "t" / "p0.png") as image:
        assert image.mode == "RGBA"
    summary, _ = run(flow, [photos], tmp_path / "c", masks, background=(0, 128, 255))
    white, _ = run(flow, [photos], tmp_path / "w", masks)
    on_white = np.asarray(Image.open(tmp_path / "w" / "p0.png")).astype(int)
    on_colour = np.asarray(Image.open(tmp_path / "c" / "p0.png")).astype(int)
    rgba = np.asarray(Image.open(tmp_path / "t" / "p0.png")).astype(int)
    a = rgba[..., 3:] / 255.0
    # The three outputs are one garment: composing the transparent one gives the others back.
    assert np.abs(rgba[..., :3] * a + (1 - a) * 255 - on_white).max() <= 2
    assert np.abs(rgba[..., :3] * a + (1 - a) * np.array([0, 128, 255]) - on_colour).max() <= 2
    # on a page of another aspect: the same garment centred, the rest transparent (or the colour)
    run(flow, [photos], tmp_path / "t-page", masks, background="transparent", output_size=(128, 128))
    run(flow, [photos], tmp_path / "c-page", masks, background=(0, 128, 255), output_size=(100, 128))
    run(flow, [photos], tmp_path / "t-inner", masks, background="transparent", output_size=(128, 96))
    run(flow, [photos], tmp_path / "c-inner", masks, background=(0, 128, 255), output_size=(100, 75))
    page, inner = (np.asarray(Image.open(tmp_path / f / "p0.png")) for f in ("t-page", "t-inner"))
    assert page.shape == (128, 128, 4) and np.array_equal(page[:, 16:112], inner) and (page[:, :16, 3] == 0).all()
    page, inner = (np.asarray(Image.open(tmp_path / f / "p0.png")) for f in ("c-page", "c-inner"))
    assert page.shape == (100, 128, 3) and np.array_equal(page[:, 26:101], inner)
    assert (page[:, :26] == [0, 128, 255]).all() and (page[:, 101:] == [0, 128, 255]).all()


def test_apply_background_is_exact_where_the_garment_is_opaque():
    garment = np.array([[[10, 20, 30], [255, 255, 255], [133, 133, 133]]], np.uint8)
    alpha = np.array([[[255], [0], [128]]], np.uint8)
    rgb, a = apply_background(garment, alpha, "transparent")
    assert rgb[0, 0].tolist() == [10, 20, 30] and a[0].tolist() == [255, 0, 128]
    coloured, none = apply_background(garment, alpha, (0, 0, 0))
    assert none is None and coloured[0, 1].tolist() == [0, 0, 0] and coloured[0, 0].tolist() == [10, 20, 30]
    assert apply_background(garment, None, "white")[0] is garment


def test_evaluate_native_scores_the_masks_extract_uses(model, segmenter, tmp_path):
    """``evaluate --resolution native`` on a segmenter scores exactly the mask ``extract``
    fits the photo with (first look or zoomed), at the photo's own size."""
    from clothes_extractor.data.synth import write_synthetic
    from clothes_extractor.eval.datasets import load_samples
    from clothes_extractor.eval.evaluate import evaluate_model
    from clothes_extractor.eval.metrics import iou

    write_synthetic(tmp_path / "syn", 6, seed=11, size=(384, 288))
    samples = load_samples(tmp_path / "syn", "all")
    result = evaluate_model(segmenter, samples, resolution="native", batch_size=4, sheet_rows=2)
    assert result.samples == 6 and result.sheet is not None and set(result.metrics) == {"iou", "zoomed"}
    jobs = find_jobs([tmp_path / "syn" / "photo"], tmp_path / "out", "png", save_masks=tmp_path / "masks")
    run_extraction(model, jobs, ExtractOptions(processes=False), lambda r: None, segmenter)
    compared = 0
    for sample, scored in zip(samples, result.per_sample, strict=True):
        truth = np.asarray(Image.open(sample.mask))
        saved = tmp_path / "masks" / f"{sample.photo.stem}.png"
        if not saved.is_file():  # no garment found: evaluate scores it 0
            assert scored["iou"] == 0.0
            continue
        used = np.asarray(Image.open(saved).resize(truth.shape[::-1], Image.Resampling.BILINEAR))
        assert scored["iou"] == pytest.approx(float(iou(used[None], truth[None])[0]), abs=1e-9)
        compared += 1
    assert compared >= 4


def test_signals_inside_the_job_loop_wait_for_a_safe_point():
    """Ctrl-C and SIGTERM are only noted inside ``deferred_signals``; ``check`` delivers the
    first to the handler installed before (raising there), and the handlers come back."""
    import os
    import signal
    import threading
    import time

    from clothes_extractor.runtime.signals import deferred_signals

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be set in the main thread")

    seen = []

    def on_term(signum, _frame):
        seen.append(signum)
        raise RuntimeError("terminated")

    before = signal.signal(signal.SIGTERM, on_term)
    try:
        with deferred_signals() as signals:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C before the check: one delivery
            with pytest.raises(KeyboardInterrupt):
                signals.check()
            signals.check()  # delivered once: nothing left
            os.kill(os.getpid(), signal.SIGTERM)
            with pytest.raises(RuntimeError, match="terminated"):
                signals.check()
        assert seen == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGTERM) is on_term
        with pytest.raises(KeyboardInterrupt):  # outside, Ctrl-C raises where it lands again
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize("masks", [False, True])
def test_each_photo_file_is_read_once_for_its_digest_and_every_decode(model, segmenter, figures, tmp_path, masks):
    """A photo is read once (``images.read_whole``): the digest its output records, the
    segmenter's decode, a closer look's and ``finish``'s are all of those bytes. On a network
    folder, or an object store mounted as one, each read of the file again was a trip: a photo
    the segmenter found a garment in was read 3 times (its digest, the segmenter's decode and
    finish's), one with a mask file twice.
    Threads here (this process hears their opens); worker processes decode the same bytes
    (``test_worker_processes_send_no_decoded_photo_back_and_write_the_same_files``)."""
    from clothes_extractor.runtime.options import make_plan
    from clothes_extractor.runtime.resume import already_done

    far_figure(figures)  # (a closer look)
    mask_dir = None
    if masks:
        mask_dir = tmp_path / "masks"
        mask_dir.mkdir()
        for photo in figures.iterdir():
            Image.new("L", Image.open(photo).size, 0).save(mask_dir / f"{photo.stem}.png")
            mask = Image.open(mask_dir / f"{photo.stem}.png")
            mask.paste(255, (mask.width // 4, mask.height // 3, 3 * mask.width // 4, 2 * mask.height // 3))
            mask.save(mask_dir / f"{photo.stem}.png")
    photos = sorted(os.path.realpath(p) for p in figures.iterdir())
    results = []
    options = ExtractOptions(batch_size=4, workers=2, processes=False)

    def job():
        jobs = find_jobs([figures], tmp_path / "out", "png", MaskIndex(mask_dir) if masks else None)
        run_extraction(model, jobs, options, results.append, None if masks else segmenter)

    opened = opened_files(job)
    assert len(results) == len(photos) and all(r.status == "ok" for r in results), results
    if not masks:
        assert "segmenter+zoom" in {r.mask for r in results}
    assert sorted(path for path in opened if path in photos) == photos  # each read once, none twice
    plan = make_plan(model, None if masks else segmenter, options)
    for job in find_jobs([figures], tmp_path / "out", "png", MaskIndex(mask_dir) if masks else None):
        assert already_done(job, plan, False)  # its record's digest is of its file's bytes


def test_a_photo_too_large_to_hold_is_read_again_and_gives_the_same_garment(
    model, segmenter, figures, tmp_path, monkeypatch
):
    """Over ``WHOLE_READ_MAX`` a photo file is not held: read for its digest, then decoded from
    the file at each stage, as before; the same garment either way."""
    from clothes_extractor.runtime import images

    far_figure(figures)
    outputs = {}
    options = ExtractOptions(batch_size=4, workers=2, processes=False)
    for most in (images.WHOLE_READ_MAX, 1000):
        monkeypatch.setattr(images, "WHOLE_READ_MAX", most)
        out, results = tmp_path / f"out-{most}", []
        opened = opened_files(
            functools.partial(
                run_extraction, model, find_jobs([figures], out, "png"), options, results.append, segmenter
            )
        )
        assert len(results) >= 4 and all(r.status == "ok" for r in results)
        far = os.path.realpath(figures / "far.jpg")
        assert opened.count(far) == (1 if most > 1000 else 3)  # its digest, the segmenter's decode, finish's
        outputs[most] = {p.name: p.read_bytes() for p in out.iterdir()}
    assert outputs[1000] == outputs[images.WHOLE_READ_MAX] and len(outputs[1000]) >= 4
