"""The folder job on a real local Ray cluster: the same bytes as local extract, bad files
reported, a resume, a killed actor retried, pyarrow filesystem URIs, the folder walked in
the cluster (the driver holds no list of jobs), and the command line's --ray."""

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clothes_extractor.data.synth import synth_sample

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")

from clothes_extractor.distributed.jobsource import read_jobs, unpack  # noqa: E402
from clothes_extractor.distributed.ray_job import JobWalk, RayOptions, find_remote_jobs, run_on_ray  # noqa: E402
from clothes_extractor.runtime.files import writer_host  # noqa: E402
from clothes_extractor.runtime.jobs import MaskIndex, find_jobs  # noqa: E402
from clothes_extractor.runtime.options import ExtractOptions  # noqa: E402
from clothes_extractor.runtime.pipeline import run_extraction  # noqa: E402
from clothes_extractor.runtime.session import ModelSession  # noqa: E402
from conftest import cli_env, far_figure, person_photo, run_cli  # noqa: E402

pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.fixture
def mixed(tmp_path, figures):
    """Photos with masks, photos for the segmenter, a garment photographed alone (a drawn
    catalog image: cut out, not generated) and bad files, in one folder."""
    folder, masks = tmp_path / "in", tmp_path / "masks"
    shutil.copytree(figures, folder)
    masks.mkdir()
    for i in range(8):
        photo, mask = person_photo(i)
        photo.save(folder / f"p{i}.jpg", quality=90)
        mask.save(masks / f"p{i}.png")
    synth_sample(0, seed=3)[2].save(folder / "catalog.png")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    return folder, masks


def options(**changes):
    settings = {"batch_size": 4, "workers": 2, "processes": False, **changes}
    return RayOptions(extract=ExtractOptions(**settings), provider="cpu")


def results_by_name(results):
    return {Path(r.input).name: r for r in results}


def test_the_same_bytes_as_local_extract_and_bad_files_reported(
    cluster, mixed, tiny_model_path, segmenter_path, tmp_path
):
    folder, masks = mixed
    far_figure(folder)  # a closer look: the actor decodes the photo again (prepare's item is light)
    local_out, ray_out = tmp_path / "local", tmp_path / "ray"
    generator, segmenter = ModelSession(tiny_model_path, "cpu"), ModelSession(segmenter_path, "cpu")
    local = []
    jobs = find_jobs([folder], local_out, "png", MaskIndex(masks))
    run_extraction(generator, jobs, ExtractOptions(batch_size=4, workers=2, processes=False), local.append, segmenter)
    got = []
    ray_out.mkdir()
    killed = ray_out / f".ce-{writer_host()}-{_dead_pid()}-0123abcd.partial"  # a killed run's worker, mid-write
    killed.write_bytes(b"half a garment")
    jobs = find_jobs([folder], ray_out, "png", MaskIndex(masks))
    summary = run_on_ray(tiny_model_path, segmenter_path, jobs, options(), got.append)
    assert (summary.ok, summary.failed) == (16, 2)
    assert not killed.exists()  # removed by the first write there, as local extract removes it
    mine, theirs = results_by_name(got), results_by_name(local)
    assert "empty file" in mine["empty.jpg"].error and "not an image" in mine["text.png"].error
    assert {n: r.status for n, r in mine.items()} == {n: r.status for n, r in theirs.items()}
    assert {r.mask.split(":")[0] for r in got if r.status == "ok"} >= {
        "file", "segmenter", "segmenter+alone", "segmenter+zoom"
    }  # fmt: skip
    for path in local_out.iterdir():
        assert (ray_out / path.name).read_bytes() == path.read_bytes(), path.name
    # A rerun skips what is done: the job resumes; a file someone else put there is kept.
    shop = next(ray_out.iterdir())
    Image.new("RGB", (30, 40), (200, 10, 10)).save(shop, format="PNG")  # the shop's own image
    kept = shop.read_bytes()
    again = []
    summary = run_on_ray(
        tiny_model_path, segmenter_path, find_jobs([folder], ray_out, "png", MaskIndex(masks)), options(), again.append
    )
    assert (summary.ok, summary.skipped, summary.failed) == (0, 15, 3) and shop.read_bytes() == kept
    assert any(r.error and "was not written by clothes-extractor" in r.error for r in again)


def _kill_one_generator_actor(done: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first generator actor process seen (Ray titles it after the actor's class)."""
    while not done.is_set():
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                title = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"ModelStage" in title and b"ray::" in title:
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
                return
        time.sleep(0.05)


def test_uris_in_and_out_and_a_killed_actor_restarted_with_nothing_lost(cluster, tiny_model_path, tmp_path):
    """file:// URIs take the object-store code path (fetch in the task, one PUT per output);
    a generator actor killed mid-job is restarted by Ray and its batch retried; a photo changed
    since is redone (the object's size and time in its output's record)."""
    folder = tmp_path / "bucket" / "photos"
    folder.mkdir(parents=True)
    for i in range(24):
        photo, mask = person_photo(i % 9)
        rgba = photo.resize((360, 480)).convert("RGBA")
        rgba.putalpha(mask.resize((360, 480)))
        rgba.save(folder / f"c{i:02d}.png")
    out_uri = f"file://{tmp_path}/bucket/garments"
    jobs = find_remote_jobs([f"file://{folder}"], out_uri, "webp", recursive=False)
    assert [str(j.photo) for j in jobs] == [f"file://{folder}/c{i:02d}.png" for i in range(24)]
    done, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_one_generator_actor, args=(done, killed))
    killer.start()
    try:
        summary = run_on_ray(tiny_model_path, None, jobs, options(alpha_mask=True, batch_size=2))
    finally:
        done.set()
        killer.join()
    assert killed, "no generator actor was found to kill"
    assert (summary.ok, summary.failed) == (24, 0), summary
    written = sorted((tmp_path / "bucket" / "garments").iterdir())
    assert [p.name for p in written] == [f"c{i:02d}.webp" for i in range(24)]  # no stray or partial file
    for path in written:
        Image.open(path).load()
    # a rerun after one photo was uploaded again under its name redoes that one (all were skipped)
    before = (tmp_path / "bucket" / "garments" / "c05.webp").read_bytes()
    Image.open(folder / "c07.png").save(folder / "c05.png")
    jobs = find_remote_jobs([f"file://{folder}"], out_uri, "webp", recursive=False)
    summary = run_on_ray(tiny_model_path, None, jobs, options(alpha_mask=True, batch_size=2))
    assert (summary.ok, summary.skipped, summary.failed) == (1, 23, 0), summary
    assert (tmp_path / "bucket" / "garments" / "c05.webp").read_bytes() != before


def test_a_remote_file_this_tool_did_not_write_is_kept(tiny_model_path, tmp_path):
    """As local outputs: a file at an output URI without this tool's mark is this photo's error
    (no cluster needed: the prepare task itself), and replaced only with --overwrite."""
    from clothes_extractor.distributed.jobsource import pack
    from clothes_extractor.distributed.ray_job import prepare_row
    from clothes_extractor.runtime.options import make_plan

    folder, masks = tmp_path / "in", tmp_path / "masks"
    folder.mkdir()
    masks.mkdir()
    photo, mask = person_photo(0)
    photo.save(folder / "p0.jpg")
    mask.save(masks / "p0.png")
    (tmp_path / "out").mkdir()
    Image.new("RGB", (30, 40), (200, 10, 10)).save(tmp_path / "out" / "p0.png")  # the shop's own image
    (job,) = find_remote_jobs([f"file://{folder}"], f"file://{tmp_path}/out", "png", recursive=False)
    job = type(job)(job.photo, job.output, type(job.mask)("file", masks / "p0.png"), job.error, job.mask_output)
    with ModelSession(tiny_model_path, "cpu") as generator:
        plan = make_plan(generator, None, ExtractOptions())
    kept = unpack(prepare_row(pack(job), plan, overwrite=False))
    assert kept.status == "error" and kept.error.startswith(f"file://{tmp_path}/out/p0.png exists and was not written")
    assert Image.open(tmp_path / "out" / "p0.png").size == (30, 40)
    redone = unpack(prepare_row(pack(job), plan, overwrite=True))
    assert type(redone).__name__ == "Prepared"  # fitted, to be written over it


def _named_tree(root: Path) -> Path:
    """Two subfolders of empty .jpg files (the walk reads names only) and a colliding pair."""
    for sub in ("s1", "s2"):
        (root / sub).mkdir(parents=True)
        for i in range(5):
            (root / sub / f"p{i}.jpg").write_bytes(b"")
    (root / "a.jpg").write_bytes(b"")
    (root / "a.png").write_bytes(b"")
    return root


def test_the_walk_runs_in_the_cluster_in_small_blocks(cluster, tmp_path):
    """The driver holds a walk, not its jobs: it pickles small, counts what it gives, and its
    jobs reach the next step in blocks of about the asked size, one task a block (a walk in
    one block would have the whole folder prepared by one task). Counted from Ray's stats,
    not timed: which worker process runs a task is Ray's choice."""
    root = _named_tree(tmp_path / "in")
    walk = JobWalk((root, tmp_path / "missing.jpg"), (), str(tmp_path / "out"), "png", recursive=True)
    jobs = list(walk)
    mine = [(str(j.photo), str(j.output), j.error) for j in jobs]
    theirs = find_jobs([root, tmp_path / "missing.jpg"], tmp_path / "out", "png", recursive=True)
    assert mine == [(str(j.photo), str(j.output), j.error) for j in theirs]
    assert walk.count() == len(jobs) == 13
    assert sum(j.error is not None for j in jobs) == 2  # the collision and the missing photo
    assert len(pickle.dumps(walk)) < 1000

    dataset = read_jobs(ray, walk, 4).materialize()
    assert dataset.num_blocks() >= 3  # cut to about 4 rows a block (Ray 2.60: 4, 4, 4, 1; 2.50: 3 blocks)
    got = [unpack(row) for row in dataset.iter_rows()]
    assert sorted((str(j.photo), str(j.output), j.error) for j in got) == sorted(mine)

    def identity(row):  # nested: Ray pickles it by value (the workers cannot import this module)
        return row

    mapped = read_jobs(ray, walk, 2).map(identity).materialize()
    operators = [line.split(" tasks executed")[0] for line in mapped.stats().splitlines() if "tasks executed" in line]
    (map_op,) = [op for op in operators if "Map(identity)" in op]
    name, tasks = map_op.rsplit(": ", 1)
    assert name.endswith(" Map(identity)") and int(tasks) >= 3, operators  # not fused with the walk: a task a block


def test_photos_are_prepared_in_tasks_of_their_own(cluster, tiny_model_path, tmp_path):
    """Decoding and fitting run in Ray tasks, not inside the model actors: fused into an
    actor (what Ray does when their resources match, as on a CPU-only cluster), one process
    per model actor would decode every photo of the job."""
    from clothes_extractor.api import new_session
    from clothes_extractor.distributed.ray_job import _dataset, _init
    from clothes_extractor.runtime.options import make_plan

    folder, masks = tmp_path / "in", tmp_path / "masks"
    folder.mkdir()
    masks.mkdir()
    for i in range(4):
        photo, mask = person_photo(i)
        photo.save(folder / f"p{i}.jpg")
        mask.save(masks / f"p{i}.png")
    jobs = find_jobs([folder], tmp_path / "out", "png", MaskIndex(masks))
    with new_session(str(tiny_model_path), "cpu") as generator:
        plan = make_plan(generator, None, ExtractOptions())
    _init(ray, options())
    dataset = _dataset(ray, jobs, len(jobs), str(tiny_model_path), None, plan, options())
    assert [row["result"]["status"] for row in dataset.iter_rows()] == ["ok"] * 4
    operators = [line.split(":")[0] for line in dataset.stats().splitlines() if line.startswith("Operator ")]
    assert any(name.endswith(" Map(prepare_row)") for name in operators), operators
    assert any(name.endswith(" MapBatches(ModelStage)") for name in operators), operators


def test_extract_ray_on_the_command_line(tmp_path, tiny_model_path):
    """``extract --ray``: a local Ray started by the command, masks looked up in the cluster,
    outputs under a URI, a bad file and a missing input reported, exit 1, a rerun skips;
    ``--sheet`` as local extract makes it."""
    folder, masks = tmp_path / "in" / "shop", tmp_path / "masks" / "shop"
    folder.mkdir(parents=True)
    masks.mkdir(parents=True)
    for i in range(6):
        photo, mask = person_photo(i)
        photo.save(folder / f"p{i}.jpg", quality=90)
        mask.save(masks / f"p{i}.png")
    (folder / "text.jpg").write_text("not an image")
    out_uri = f"file://{tmp_path}/out"
    report = tmp_path / "report.jsonl"
    args = ["extract", tmp_path / "in", tmp_path / "gone.jpg", "-o", out_uri, "--ray", "--recursive"]
    args += ["--model", tiny_model_path, "--masks", tmp_path / "masks", "--report", report]
    first = run_cli(*args, timeout=300)
    assert first.returncode == 1, first.stderr
    assert "extracting 8 photo(s) on Ray" in first.stderr
    for note in ("Started a local Ray instance", "Progress bars disabled", "Token authentication"):
        assert note not in first.stderr  # Ray's start-up notes stay off the terminal (-vv shows them)
    assert "has constructor arguments in the object store" not in first.stderr  # Ray's false alarm (``quiet``)
    rows = {Path(r["input"]).name: r for r in map(json.loads, report.read_text().splitlines())}
    assert {n: r["status"] for n, r in rows.items()} == {
        **{f"p{i}.jpg": "ok" for i in range(6)},
        "text.jpg": "error",
        "gone.jpg": "error",
    }
    assert rows["p0.jpg"]["mask"].startswith("file") and "input not found" in rows["gone.jpg"]["error"]
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*"))
    assert written == ["shop"] + [f"shop/p{i}.png" for i in range(6)]
    again = run_cli(*args, timeout=300)
    assert again.returncode == 1, again.stderr
    statuses = [json.loads(line)["status"] for line in report.read_text().splitlines()]
    assert sorted(statuses) == ["error"] * 2 + ["skipped"] * 6

    # --sheet: made from local outputs as local extract makes it; refused with URIs
    refused = run_cli(*args, "--sheet", tmp_path / "sheet.png")
    assert refused.returncode == 2 and "--sheet" in refused.stderr and not (tmp_path / "sheet.png").exists()
    common = ["extract", folder, "--model", tiny_model_path, "--masks", masks]
    sheets = {}
    for how in ("ray", "local"):
        sheets[how] = tmp_path / f"sheet-{how}.png"
        ray_only = ["--ray", "--decode", "gpu"] if how == "ray" else []
        done = run_cli(*common, "-o", tmp_path / how, "--sheet", sheets[how], *ray_only)
        assert done.returncode == 1 and f"contact sheet: {sheets[how]}" in done.stderr, done.stderr  # text.jpg
        assert ("--decode gpu is not used on Ray" in done.stderr) == (how == "ray")
    with Image.open(sheets["ray"]) as ray_sheet, Image.open(sheets["local"]) as local_sheet:
        assert ray_sheet.size == local_sheet.size  # six rows of photo | garment
    # one photo: Ray Data's note that its prepare tasks outnumber the blocks stays off the terminal
    one = run_cli("extract", folder / "p0.jpg", "-o", tmp_path / "one", "--ray", "--model", tiny_model_path,
                  "--masks", masks)  # fmt: skip
    assert one.returncode == 0 and "UserWarning" not in one.stderr and "warnings.warn" not in one.stderr, one.stderr
    # standard input and http(s) URLs are local extract's: refused before Ray starts
    piped = run_cli("extract", "-", "-o", tmp_path / "piped", "--ray", stdin=b"")
    assert piped.returncode == 2 and b"--ray reads photos from paths and URIs its nodes reach" in piped.stderr


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX's")
@pytest.mark.parametrize(("sent", "to_group", "code", "said"), [("SIGINT", True, 130, "interrupted"),
                                                                ("SIGTERM", False, 143, "terminated")])  # fmt: skip
def test_a_stopped_ray_job_ends_with_its_report_on_standard_output_whole(
    tiny_model_path, tmp_path, sent, to_group, code, said
):
    """A terminal's Ctrl-C reaches every process of ``extract --ray`` (its process group, a local
    Ray's included), ``docker stop``'s SIGTERM the command alone: exit 130 / 143, no traceback,
    whole files only, and ``--report -`` is JSON Lines to its end. Before the 66th stop:
    ``ray.init`` had replaced the SIGTERM handling (Ray's crash handler printed "*** SIGTERM
    received" and a stack of addresses; exit 15: ``ray_job._init``); a Ray worker killed in a
    write left its ``.partial`` file (1 run in 6 of this test's; ``stopped.end_stopped``); Ray
    Data killing its own actors printed a yellow "(raylet) Task ... submit failed ... killed by
    `ray.kill`" line to standard output, into the report (``quiet.DriverPrints``: 5 runs in 9 with
    the bundled models on 504 VITON photos, none in 3 of this test's; the line itself:
    ``test_quiet``); the resume's word was not said."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for i in range(96):
        person_photo(i % 8)[0].save(folder / f"p{i:02d}.jpg", quality=90)
    args = ["extract", folder, "-o", out, "--ray", "--model", tiny_model_path, "--report", "-"]
    process = subprocess.Popen(
        [sys.executable, "-m", "clothes_extractor", *map(str, args)],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)  # (the report, as it comes)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while not lines and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        killed = out / f".ce-{writer_host()}-{_dead_pid()}-0123abcd.partial"  # a Ray worker killed in a write
        killed.write_bytes(b"half a garment")
        (os.killpg if to_group else os.kill)(process.pid, getattr(signal, sent))
        stderr = process.stderr.read()
        process.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        process.kill()
    assert process.returncode == code, stderr
    assert 0 < len(lines) < 96 and all(json.loads(line)["status"] == "ok" for line in lines), lines[-3:]
    assert "Traceback" not in stderr and "retries remaining" not in stderr and "SIGTERM received" not in stderr, stderr
    assert f"finished outputs are complete; run the same command again to resume\n{said}\n" in stderr
    for garment in out.iterdir():
        assert garment.suffix == ".png", garment  # no temporary file left (a stopped local Ray's: removed)
        Image.open(garment).load()


def test_a_sigterm_as_ray_starts_is_the_commands_own(tmp_path):
    """``ray.init`` sets a SIGTERM handler of its own first thing (``sys.exit(15)``): a ``docker
    stop`` as a job's Ray started ended it with exit 15 and no word. ``_init`` gives the signal to
    the handler from before (the command's: ``Terminated``, 143). The signal is sent from inside
    Ray's own ``set_sigterm_handler``, just after it."""
    script = tmp_path / "stop.py"
    script.write_text(
        "import os, signal\n"
        "import ray, ray._private.utils as utils\n"
        "from clothes_extractor.distributed.ray_job import RayOptions, _init\n"
        "from clothes_extractor.interrupts import Terminated\n"
        "rays = utils.set_sigterm_handler\n"
        "def set_then_stopped(handler):\n"
        "    rays(handler)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "utils.set_sigterm_handler = set_then_stopped\n"
        "def ours(signum, frame):\n"
        "    raise Terminated()\n"
        "signal.signal(signal.SIGTERM, ours)\n"
        "try:\n"
        "    _init(ray, RayOptions(provider='cpu'))\n"
        "except Terminated:\n"
        "    print('terminated', signal.getsignal(signal.SIGTERM) is ours)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert (done.returncode, done.stdout) == (0, "terminated True\n"), done.stderr


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)


def test_a_local_photo_for_the_segmenter_goes_to_the_model_actor_light(tiny_model_path, segmenter_path, tmp_path):
    """``prepare_row``: a local photo waiting for the segmenter travels without its decoded
    pixels (the actor decodes it again for a closer look and ``finish``); the bytes here are
    the item's, pickled for Ray's object store."""
    from clothes_extractor.distributed.jobsource import pack, unpack
    from clothes_extractor.distributed.ray_job import prepare_row
    from clothes_extractor.runtime.options import make_plan
    from clothes_extractor.runtime.stages import NeedsMask, prepare

    (tmp_path / "in").mkdir()
    photo = far_figure(tmp_path / "in")
    (job,) = find_jobs([photo], tmp_path / "out", "png")
    plan = make_plan(ModelSession(tiny_model_path, "cpu"), ModelSession(segmenter_path, "cpu"), ExtractOptions())
    row = prepare_row(pack(job), plan, overwrite=False)
    item, whole = unpack(row), prepare(job, plan)
    assert isinstance(item, NeedsMask) and item.photo is None and whole.photo is not None
    assert np.array_equal(item.image, whole.image) and len(pack(item)["payload"]) * 5 < len(pack(whole)["payload"])


def test_a_filled_page_in_the_actors_is_the_local_one_byte_for_byte(cluster, tiny_flow_path, photo_folder, tmp_path):
    # (the actors open the generator with the silhouette a fill and a page read, as extract does)
    from clothes_extractor.runtime.options import generator_outputs

    photos, masks = photo_folder
    for settings in ({"output_size": (96, 96), "fill": 0.8}, {"output_size": (64, 96)}):
        local_out, ray_out = tmp_path / f"local-{len(settings)}", tmp_path / f"ray-{len(settings)}"
        local = ExtractOptions(batch_size=4, workers=2, processes=False, **settings)
        outputs = generator_outputs("white", local.fill, local.output_size)
        with ModelSession(tiny_flow_path, "cpu", outputs=outputs) as generator:
            assert generator.output_names == ["garment", "alpha"]
            run_extraction(generator, find_jobs([photos], local_out, "png", MaskIndex(masks)), local, None)
        ray_out.mkdir()
        jobs = find_jobs([photos], ray_out, "png", MaskIndex(masks))
        summary = run_on_ray(tiny_flow_path, None, jobs, options(**settings))
        assert summary.ok == 5 and {p.name for p in ray_out.iterdir()} == {p.name for p in local_out.iterdir()}
        for path in local_out.iterdir():
            assert (ray_out / path.name).read_bytes() == path.read_bytes(), path.name
