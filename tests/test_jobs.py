import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from clothes_extractor.errors import InputError, OutputError
from clothes_extractor.runtime.jobs import (
    MaskIndex,
    check_output_folders,
    count_jobs,
    find_jobs,
    iter_jobs,
    removing_stale_partials,
    unsearched_subfolders,
)
from clothes_extractor.runtime.walk import dataset_parse_folder
from conftest import peak_memory


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
    assert all(j.mask.kind == "auto" and j.error is None for j in jobs)


def test_recursive_keeps_the_folder_structure_and_skips_the_output_folder(tmp_path):
    touch_image(tmp_path / "in" / "a.jpg")
    touch_image(tmp_path / "in" / "sub" / "deeper" / "b.jpg")
    touch_image(tmp_path / "in" / "out" / "old.png")  # results of an earlier run
    jobs = find_jobs([tmp_path / "in"], tmp_path / "in" / "out", "webp", recursive=True)
    assert [j.output.relative_to(tmp_path / "in" / "out").as_posix() for j in jobs] == [
        "a.webp",
        "sub/deeper/b.webp",
    ]
    touch_image(tmp_path / "in" / "masks" / "a.png")  # the --masks folder, inside: masks, not photos
    masks = MaskIndex(tmp_path / "in" / "masks")
    jobs = find_jobs([tmp_path / "in"], tmp_path / "in" / "out", "png", masks, recursive=True)
    assert [(j.photo.name, j.mask.kind) for j in jobs] == [("a.jpg", "file"), ("b.jpg", "auto")]
    assert count_jobs([tmp_path / "in"], tmp_path / "in" / "out", True, None, tmp_path / "in" / "masks") == 2


def test_the_subfolders_a_walk_without_recursive_leaves_out(tmp_path):
    """Named for the user who forgot --recursive: not the job's own output and mask folders,
    not hidden ones, not a dataset split's own folders; a file or a missing input has none."""
    touch_image(tmp_path / "in" / "a.jpg")
    for sub in ("sub", "more/deeper", ".cache", "out", "masks", "saved"):
        touch_image(tmp_path / "in" / sub / "b.jpg")
    left = unsearched_subfolders([tmp_path / "in"], tmp_path / "in" / "out", tmp_path / "in" / "saved",
                                 tmp_path / "in" / "masks")  # fmt: skip
    assert left == [tmp_path / "in" / "more", tmp_path / "in" / "sub"]
    everything = [tmp_path / "in" / name for name in ("masks", "more", "out", "saved", "sub")]
    assert unsearched_subfolders([tmp_path / "in"], None) == everything
    split = tmp_path / "data" / "train"
    touch_image(split / "image" / "00001_00.jpg")
    (split / "image-parse").mkdir()
    inputs = [split, tmp_path / "in" / "a.jpg", tmp_path / "missing"]
    assert unsearched_subfolders(inputs, tmp_path / "out") == []


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
    # a missing input writes nothing, so it takes no output name from a photo that is there
    missing_first = find_jobs([tmp_path / "c" / "same.jpg", a, a], tmp_path / "out", "png")
    assert missing_first[0].error.startswith("input not found") and missing_first[1].error is None
    assert "comes twice: it is extracted once" in missing_first[2].error


def test_a_nested_masks_folder_never_lends_another_folders_mask(tmp_path):
    # in/a/x.jpg and in/b/x.jpg, only masks/a/x.png: b/x.jpg must not take a's mask.
    touch_image(tmp_path / "in" / "a" / "x.jpg")
    touch_image(tmp_path / "in" / "b" / "x.jpg")
    touch_image(tmp_path / "masks" / "a" / "x.png")
    jobs = find_jobs([tmp_path / "in"], tmp_path / "out", "png", MaskIndex(tmp_path / "masks"), recursive=True)
    by_rel = {j.output.relative_to(tmp_path / "out").as_posix(): j.mask for j in jobs}
    assert by_rel["a/x.png"].kind == "file" and by_rel["b/x.png"].kind == "auto"
    # A flat masks folder still matches by name.
    touch_image(tmp_path / "flat" / "x.png")
    jobs = find_jobs([tmp_path / "in"], tmp_path / "out", "png", MaskIndex(tmp_path / "flat"), recursive=True)
    assert {j.mask.kind for j in jobs} == {"file"}


def test_a_list_that_jumps_between_folders_reads_each_masks_folder_once(tmp_path, monkeypatch):
    # a --files-from list in product order goes front/1, side/1, front/2, ...: each photo left
    # a folder and the next came back to it, and each masks folder was read again for every
    # photo (a folder of 20,000 masks: 12 photos/s). Now each is read once, and a photo in a
    # folder come back to finds what the folder's listing gives.
    for view in ("front", "side"):
        for n in range(1, 5):
            touch_image(tmp_path / "in" / view / f"{n}.jpg")
    for name in ("front/1.png", "front/2.PNG", "side/1.png", "side/2.webp", "side/3.png", "side/3.jpg"):
        touch_image(tmp_path / "masks" / name)
    (tmp_path / "masks" / "front" / "4.png").mkdir()  # a folder with a mask's name is no mask
    touch_image(tmp_path / "masks" / "side" / ".4.png")  # nor is a hidden file
    jumping = [f"{view}/{n}.jpg" for n in range(1, 5) for view in ("front", "side")]
    (tmp_path / "jumping.txt").write_text("\n".join(jumping) + "\n")
    (tmp_path / "sorted.txt").write_text("\n".join(sorted(jumping)) + "\n")
    read = []
    scandir = os.scandir

    def counting(path):
        read.append(Path(path).relative_to(tmp_path).as_posix())
        return scandir(path)

    monkeypatch.setattr(os, "scandir", counting)

    def masks_of(listing: str) -> dict:
        read.clear()
        jobs = iter_jobs(
            [tmp_path / "in"], tmp_path / "out", "png", MaskIndex(tmp_path / "masks"), listing=tmp_path / listing
        )
        found = {job.photo.relative_to(tmp_path / "in").as_posix(): job.error or job.mask.path for job in jobs}
        return {
            rel: value.relative_to(tmp_path).as_posix() if isinstance(value, Path) else value
            for rel, value in found.items()
        }

    jumped = masks_of("jumping.txt")
    assert sorted(read) == ["masks", "masks/front", "masks/side"]  # each once
    assert jumped == masks_of("sorted.txt")  # what reading folder by folder finds
    assert jumped["front/1.jpg"] == "masks/front/1.png" and jumped["side/1.jpg"] == "masks/side/1.png"
    assert jumped["front/2.jpg"] == "masks/front/2.PNG" and jumped["side/2.jpg"] == "masks/side/2.webp"
    assert "several masks match 'side/3'" in jumped["side/3.jpg"]
    assert jumped["front/3.jpg"] is None and jumped["front/4.jpg"] is None and jumped["side/4.jpg"] is None


def test_symlink_loops_are_reported_not_fatal(tmp_path):
    touch_image(tmp_path / "in" / "good.jpg")
    os.symlink(tmp_path / "in" / "b.jpg", tmp_path / "in" / "a.jpg")  # a.jpg -> b.jpg -> a.jpg
    os.symlink(tmp_path / "in" / "a.jpg", tmp_path / "in" / "b.jpg")
    (tmp_path / "in" / "sub").mkdir()
    touch_image(tmp_path / "in" / "sub" / "c.jpg")
    os.symlink(tmp_path / "in", tmp_path / "in" / "sub" / "up")  # a folder loop
    os.symlink(tmp_path / "gone.jpg", tmp_path / "in" / "sub" / "moved.jpg")  # a link whose photo is gone
    jobs = find_jobs([tmp_path / "in"], tmp_path / "out", "png", recursive=True)
    errors = {j.photo.name: j.error for j in jobs if j.error}
    assert [j.photo.name for j in jobs if not j.error] == ["good.jpg", "c.jpg"]
    assert "symbolic link loop" in errors["a.jpg"] and "symbolic link loop" in errors["b.jpg"]
    assert "folder loop" in errors["up"]
    assert "is a link to a missing file" in errors["moved.jpg"] and "gone.jpg" in errors["moved.jpg"]
    assert count_jobs([tmp_path / "in"], tmp_path / "out", recursive=True) == len(jobs) == 6
    # Without --recursive too: the flat scan meets the file loop.
    assert sum(1 for j in find_jobs([tmp_path / "in"], tmp_path / "out", "png") if j.error) == 2


def test_an_unreadable_subfolder_is_reported_not_fatal(tmp_path):
    setpriv = shutil.which("setpriv")
    touch_image(tmp_path / "in" / "ok.jpg")
    touch_image(tmp_path / "in" / "locked" / "hidden.jpg")
    (tmp_path / "in" / "locked").chmod(0)
    try:
        if os.geteuid() == 0:
            # root reads everything: run the scan without the capabilities that allow it
            if setpriv is None:
                pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE")
            code = (
                "from pathlib import Path; from clothes_extractor.runtime.jobs import find_jobs;"
                f"jobs = find_jobs([Path({str(tmp_path / 'in')!r})], Path('/nonexistent'), 'png', recursive=True);"
                "print([(j.photo.name, j.error) for j in jobs])"
            )
            drop = "-dac_override,-dac_read_search"
            import sys

            done = subprocess.run(
                [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", sys.executable, "-c", code],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            )
            assert done.returncode == 0, done.stderr
            found = eval(done.stdout)  # noqa: S307 - our own repr of a list of tuples
        else:
            found = [
                (j.photo.name, j.error) for j in find_jobs([tmp_path / "in"], tmp_path / "out", "png", recursive=True)
            ]
    finally:
        (tmp_path / "in" / "locked").chmod(0o755)
    assert ("ok.jpg", None) in found
    ((name, error),) = [f for f in found if f[1]]
    assert name == "locked" and "Permission denied" in error


def test_output_folders_that_would_overwrite_inputs_are_refused(tmp_path):
    touch_image(tmp_path / "in" / "a.jpg")
    with pytest.raises(OutputError, match="is the input folder"):
        check_output_folders([tmp_path / "in"], tmp_path / "in", None)
    check_output_folders([tmp_path / "in"], tmp_path / "in" / "out", None)  # a subfolder is fine
    with pytest.raises(OutputError, match="masks would overwrite garments"):
        check_output_folders([tmp_path / "in"], tmp_path / "out", tmp_path / "out")
    with pytest.raises(OutputError, match="masks would mix with the photos"):
        check_output_folders([tmp_path / "in"], tmp_path / "out", tmp_path / "in")
    with pytest.raises(OutputError, match="is the --masks folder: garments would replace the masks"):
        check_output_folders([tmp_path / "in"], tmp_path / "masks", None, tmp_path / "masks")
    check_output_folders([tmp_path / "in"], tmp_path / "out", tmp_path / "masks", tmp_path / "masks")  # a fixed mask


def test_a_photo_named_in_its_own_output_folder_is_never_written_over(tmp_path):
    a, b = touch_image(tmp_path / "in" / "a.png"), touch_image(tmp_path / "in" / "b.jpg")
    jobs = find_jobs([a, b], tmp_path / "in", "png")
    assert [(j.photo.name, j.error) for j in jobs][1] == ("b.jpg", None)  # b.png beside it is fine
    assert "a.png is the photo itself" in jobs[0].error and "choose another -o" in jobs[0].error
    (same,) = find_jobs([b], tmp_path / "in", "jpg")  # b.jpg -> b.jpg
    assert "is the photo itself" in same.error
    (masked,) = find_jobs([a], tmp_path / "out", "png", save_masks=tmp_path / "in")
    assert "--save-masks would write" in masked.error
    (fine,) = find_jobs([a], tmp_path / "out", "png", save_masks=tmp_path / "masks")
    assert fine.error is None


def test_dress_code_folders_use_their_label_maps(tmp_path):
    category = tmp_path / "upper_body"
    touch_image(category / "images" / "000001_0.jpg")
    touch_image(category / "images" / "000001_1.jpg")  # the catalog image is not an input
    touch_image(category / "label_maps" / "000001_4.png")
    jobs = find_jobs([category], tmp_path / "out", "png")
    assert [(j.photo.name, j.mask.kind, j.mask.path.name) for j in jobs] == [("000001_0.jpg", "labels", "000001_4.png")]
    (single,) = find_jobs([category / "images" / "000001_0.jpg"], tmp_path / "out", "png")
    assert single.mask.kind == "labels"


def _layout(tmp_path: Path) -> list[Path]:
    """Inputs with every kind of job: photos in nested folders, a dataset split, a file that
    is not there, a folder loop, and one output name claimed twice."""
    for name in ("b.jpg", "a.png", "a.k.jpg", "a.jpg", "sub/c.jpg", "sub/a.jpg", "sub/deeper/d.webp"):
        touch_image(tmp_path / "in" / name)
    split = tmp_path / "in" / "split"
    touch_image(split / "image" / "00001_00.jpg")
    (split / "image-parse").mkdir()
    os.symlink(tmp_path / "in", tmp_path / "in" / "sub" / "up")
    touch_image(tmp_path / "other" / "b.jpg")
    return [tmp_path / "in", tmp_path / "other" / "b.jpg", tmp_path / "missing.jpg"]


def test_jobs_are_counted_as_they_are_found(tmp_path):
    inputs = _layout(tmp_path)
    for recursive in (False, True):
        for several in (inputs, inputs[:1]):
            jobs = find_jobs(several, tmp_path / "out", "png", recursive=recursive)
            assert count_jobs(several, tmp_path / "out", recursive) == len(jobs)
    jobs = find_jobs(inputs, tmp_path / "out", "png", recursive=True)
    assert len(jobs) == 11
    errors = {j.photo.relative_to(tmp_path).as_posix(): j.error for j in jobs if j.error}
    assert set(errors) == {"in/a.png", "in/sub/up", "other/b.jpg", "missing.jpg"}
    assert f"and {tmp_path / 'in' / 'a.jpg'} would both" in errors["in/a.png"]  # a.jpg comes first (sorted)
    assert "would both be written to" in errors["other/b.jpg"]  # two inputs, one output name
    # one input: a.k.jpg sorts between a.jpg and a.png by name, and does not hide the collision
    alone = find_jobs(inputs[:1], tmp_path / "out", "png")
    assert [(j.photo.name, j.error is None) for j in alone] == [
        ("a.jpg", True),
        ("a.png", False),
        ("a.k.jpg", True),
        ("b.jpg", True),
    ]
    # the same stem in two folders is two outputs, not a collision
    outputs = [j.output.relative_to(tmp_path / "out").as_posix() for j in jobs if not j.error]
    assert {"a.png", "sub/a.png", "split/00001_00.png"} <= set(outputs)
    assert count_jobs([tmp_path / "empty"], tmp_path / "out") == 1  # a missing input is a job (an error)


def test_the_walk_holds_one_folder_not_the_tree(tmp_path):
    # A tree of 3,000 photos in 60 folders, with a --masks tree beside it: walking it and
    # finding the masks must hold about one folder's names, not every job or mask; the
    # list of jobs (what find_jobs keeps) grows with the tree.
    root, masks = tmp_path / "tree", tmp_path / "masks"
    for folder in range(60):
        for base, suffix in ((root, "jpg"), (masks, "png")):
            (base / f"f{folder:02d}").mkdir(parents=True)
            for photo in range(50):
                (base / f"f{folder:02d}" / f"p{photo:03d}.{suffix}").touch()  # the walk never opens them

    def stream() -> None:
        jobs = iter_jobs([root], tmp_path / "out", "png", MaskIndex(masks), recursive=True)
        assert sum(1 for job in jobs if job.mask.kind == "file") == 3000

    def listed() -> None:
        assert len(find_jobs([root], tmp_path / "out", "png", MaskIndex(masks), recursive=True)) == 3000

    stream()  # once untraced: pathlib interns every name, and the interpreter's table of
    # interned strings grows by a megabyte or two once as it meets them: not the walk's memory
    streamed, kept = peak_memory(stream), peak_memory(listed)
    assert streamed * 10 < kept, (streamed, kept)


def test_stale_partials_are_removed_from_each_output_folder_before_its_first_job(tmp_path):
    touch_image(tmp_path / "in" / "a.jpg")
    touch_image(tmp_path / "in" / "sub" / "b.jpg")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = [tmp_path / "out" / f".ce-{int(dead.stdout)}-deadbeef.partial"]
    stale.append(tmp_path / "out" / "sub" / f".ce-{int(dead.stdout)}-0badcafe.partial")
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a garment")
    jobs = removing_stale_partials(iter_jobs([tmp_path / "in"], tmp_path / "out", "png", recursive=True))
    first = next(jobs)
    assert first.output.parent == tmp_path / "out" and not stale[0].exists() and stale[1].exists()
    assert next(jobs).output.parent == tmp_path / "out" / "sub" and not stale[1].exists()
