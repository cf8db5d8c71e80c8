"""Shared fixtures: tiny exported models (a U-Net and a warping generator), generated photos
and masks, the bundled segmenter, CLI runners."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

# pytest runs one worker per core (pyproject: -n auto). Each worker's torch and numpy would
# start an OpenMP thread per core as well, and OpenMP's idle threads spin: on two cores, two
# workers' spinning threads cost the suite a fifth of its wall time. One OpenMP thread per
# worker, set before numpy or torch loads and inherited by the processes a test starts
# (torchrun sets the same). onnxruntime's threads are its own and stay as the runtime sets them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
from PIL import Image

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
VITON_HD_SAMPLE = SHARED_DATA / "viton-hd-sample"
VITON_VAL = SHARED_DATA / "viton" / "val.tar"
DRESSCODE_SAMPLE = SHARED_DATA / "dresscode-sample"

# Small enough that export and inference take milliseconds; depth 3 needs multiples of 8.
TINY_SIZE = (64, 48)


def cp_vton_subset(root: Path, count: int = 6) -> Path:
    """The first ``count`` VITON validation pairs (by name), unpacked in the CP-VTON layout."""
    import tarfile

    with tarfile.open(VITON_VAL) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("val/") and m.isfile()]
        names = sorted({m.name.split("/")[-1].split("_")[0] for m in members if "/image/" in m.name})[:count]
        chosen = [m for m in members if m.name.split("/")[-1].split("_")[0] in names]
        tar.extractall(root, members=chosen, filter="data")
    (root / "val_pairs.txt").write_text("".join(f"{n}_0.jpg {n}_1.jpg\n" for n in names))
    return root


def dress_code_folder(root: Path, count: int = 2, size: tuple[int, int] = TINY_SIZE) -> Path:
    """A tiny Dress Code category folder: photos, catalog images and ATR-numbered label maps
    (a band per label, top to bottom, as ``LABEL_BANDS``)."""
    from clothes_extractor.data.synth import synth_sample

    folder = root / "upper_body"
    (folder / "images").mkdir(parents=True)
    (folder / "label_maps").mkdir()
    labels = np.repeat(np.array(LABEL_BANDS, np.uint8), size[0] // len(LABEL_BANDS))[:, None].repeat(size[1], 1)
    for i in range(count):
        photo, _, garment = synth_sample(i, 0, size)
        photo.save(folder / "images" / f"{i:06d}_0.jpg")
        garment.save(folder / "images" / f"{i:06d}_1.jpg")
        label_map = Image.fromarray(labels, "P")
        label_map.putpalette([v for label in range(256) for v in (label, 255 - label, label * 7 % 256)])
        label_map.save(folder / "label_maps" / f"{i:06d}_4.png")
    return folder


# ATR labels (Dress Code's numbering), one band each: hair, head, upper, bag, pants, belt, arm, shoe
LABEL_BANDS = (2, 11, 4, 16, 6, 8, 14, 9)


def tiny_generator(seed: int = 0):
    import torch

    from clothes_extractor.train.networks import UNet, UNetConfig

    torch.manual_seed(seed)
    model = UNet(UNetConfig(height=TINY_SIZE[0], width=TINY_SIZE[1], ngf=4, depth=3))
    # A few training-mode passes give BatchNorm non-trivial running statistics to fold.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 4, *TINY_SIZE))
    return model.eval()


def tiny_flow(seed: int = 0):
    """A small warping generator whose grid really moves (its flow heads get weights)."""
    import torch

    from clothes_extractor.train.flow import FlowConfig, FlowGenerator

    torch.manual_seed(seed)
    model = FlowGenerator(FlowConfig(height=TINY_SIZE[0], width=TINY_SIZE[1], ngf=4, levels=3, top=4))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 4, *TINY_SIZE))
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and module.out_channels == 2:
                module.weight.normal_(0, 0.01)
    return model.eval()


def off_the_gpu(path: Path, photos: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """What of an ONNX model onnxruntime's CUDA provider would run on the CPU: its ``GridSample``
    nodes that do not sample float32 (the only type of the CUDA kernel), and the tensors sized by
    a shape read off something other than the ``photos`` inputs (a model-size tensor's batch or
    size: a shape computation, which a graph for any photo size needs only for the photo)."""
    import onnx
    from onnx import TensorProto, shape_inference

    graph = shape_inference.infer_shapes(onnx.load(str(path))).graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.input, *graph.output)}
    samplers = [node for node in graph.node if node.op_type == "GridSample"]
    assert samplers, f"{path} samples nothing"
    not_float = [node.name for node in samplers if any(types[name] != TensorProto.FLOAT for name in node.input)]
    from_photos = set(photos)  # every tensor computed from the photos
    for node in graph.node:  # (in topological order)
        if from_photos & set(node.input):
            from_photos.update(node.output)
    # where the shapes read go: through integer arithmetic to the tensors they size
    sized, reached = [], {node.output[0] for node in graph.node if node.op_type in ("Shape", "Size")}
    for node in graph.node:
        if reached & set(node.input):
            if all(types.get(name) in (TensorProto.INT64, TensorProto.BOOL) for name in node.output):
                reached.update(node.output)
            else:
                sized.append(node)
    assert not reached or sized, "shapes read and used for nothing?"
    return not_float, [f"{node.op_type} {node.name}" for node in sized if not set(node.output) <= from_photos]


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    from clothes_extractor.export.onnx_export import export_model

    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    export_model(tiny_generator(), path)
    return path


@pytest.fixture(scope="session")
def tiny_flow_path(tmp_path_factory) -> Path:
    """A tiny warping generator: catalog resolution and a silhouette output."""
    from clothes_extractor.export.onnx_export import export_model

    path = tmp_path_factory.mktemp("flow") / "flow.onnx"
    export_model(tiny_flow(), path)
    return path


@pytest.fixture(scope="session")
def segmenter_path() -> Path:
    """The bundled segmenter (fp32): it finds the tops of synthetic figures in milliseconds."""
    from clothes_extractor.models import model_for

    path = model_for("segmenter", gpu=False)
    if path is None:
        pytest.skip("this install bundles no segmenter")
    return path


def far_figure(folder: Path, name: str = "far.jpg") -> Path:
    """A synthetic figure in a quarter of a big empty frame: its top gets a closer look."""
    from clothes_extractor.data.synth import synth_sample

    photo, _, _ = synth_sample(1, seed=7, size=(256, 192))
    frame = Image.new("RGB", (768, 1024), photo.getpixel((2, 2)))
    frame.paste(photo, (300, 380))
    frame.save(folder / name, quality=95)
    return folder / name


def person_photo(seed: int, size: tuple[int, int] = (120, 160)) -> tuple[Image.Image, Image.Image]:
    """A light background with a figure wearing a coloured top; returns (RGB photo, L mask)."""
    rng = np.random.default_rng(seed)
    w, h = size
    photo = np.full((h, w, 3), 235, np.uint8)
    photo += rng.integers(0, 10, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    cx = w // 2 + int(rng.integers(-w // 10, w // 10 + 1))
    head = (xx - cx) ** 2 + (yy - h // 6) ** 2 < (w // 10) ** 2
    top = (np.abs(xx - cx) < w // 4) & (yy > h // 4) & (yy < 2 * h // 3)
    photo[head] = (224, 172, 140)
    colour = rng.integers(20, 230, 3, dtype=np.uint8)
    photo[top] = colour
    stripes = top & ((yy // 6) % 2 == 0)
    photo[stripes] = 255 - colour
    mask = np.where(top, 255, 0).astype(np.uint8)
    return Image.fromarray(photo, "RGB"), Image.fromarray(mask, "L")


def cut_out(index: int) -> Image.Image:
    """A person photo with its garment as its alpha (what ``--alpha-mask`` takes), as a site serves it."""
    photo, mask = person_photo(index)
    photo = photo.convert("RGBA")
    photo.putalpha(mask)
    return photo


@contextlib.contextmanager
def serving(handler: Any) -> Iterator[str]:
    """``handler`` (an ``http.server`` request handler class) answering on loopback, on threads;
    yields its address (``http://127.0.0.1:PORT``)."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def answer(handler: Any, status: int, body: bytes = b"", **headers: str) -> None:
    """``handler`` (an ``http.server`` request handler) answers ``status`` with ``body`` and ``headers``
    (``Content_Type="image/png"`` for Content-Type)."""
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def photo_folder(tmp_path) -> tuple[Path, Path]:
    """Five JPEG photos and a masks folder of PNG masks with the same stems."""
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    for i in range(5):
        photo, mask = person_photo(i)
        photo.save(photos / f"p{i}.jpg", quality=90)
        mask.save(masks / f"p{i}.png")
    return photos, masks


TRYON_PERSONS = ("figure-2.jpg", "figure-3.jpg", "figure-6.jpg")  # example figures where the parser finds the top


@pytest.fixture
def tryon_folders(tmp_path) -> tuple[Path, Path]:
    """A persons folder (three example figures) and a garments folder (two catalog images on white)."""
    from clothes_extractor.data.synth import synth_sample

    persons, garments = tmp_path / "persons", tmp_path / "garments"
    persons.mkdir()
    garments.mkdir()
    for name in TRYON_PERSONS:
        shutil.copy(ROOT / "examples" / "photos" / name, persons / name)
    for index in range(2):
        synth_sample(index, seed=5, size=(256, 192))[2].save(garments / f"g{index}.png")
    return persons, garments


@pytest.fixture
def figures(tmp_path) -> Path:
    """The bundled example photos (synthetic figures the bundled segmenter finds), copied."""
    target = tmp_path / "figures"
    shutil.copytree(ROOT / "examples" / "photos", target)
    return target


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS / "no_torch"), str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def peak_memory(consume, tries: int = 3) -> int:
    """The peak of Python's allocations (tracemalloc) while ``consume()`` runs, in bytes: the
    least of ``tries`` runs. tracemalloc sees every thread of the process, and a pytest-xdist
    worker may hold another test's threads (a local Ray driver's, a server's) that allocate
    meanwhile; they only ever add, so the least run is the closest to ``consume``'s own."""
    import tracemalloc

    peaks = []
    for _ in range(tries):
        tracemalloc.start()
        try:
            consume()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return min(peaks)


def start_cli(args: list, stderr_file: Path, unprivileged: bool = False) -> subprocess.Popen:
    """The command line started with ``args`` (a job that goes on: a watch), its standard error to
    ``stderr_file``; ``unprivileged``: a file's permissions hold for it where this runs as root
    (``setpriv`` drops the capabilities that read and search past them; skipped without it)."""
    command = [sys.executable, "-m", "clothes_extractor", *map(str, args)]
    if unprivileged and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE")
        drop = "-dac_override,-dac_read_search"
        command = [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", *command]
    return subprocess.Popen(command, env=cli_env(), stdout=subprocess.DEVNULL, stderr=stderr_file.open("w"))


def watched_until_mended(args: list, locked: Path, report: Path, err: Path, failing: int) -> tuple[list, list, int]:
    """A watch (``args``) started ``unprivileged`` with ``locked`` unreadable (mode 0): its report's
    lines once it has ``failing`` (and no more a moment later: not tried again while the file is as
    it was), and once the file, mended by a chmod, was tried again (a line more), then SIGTERM;
    and its exit code."""
    locked.chmod(0)
    process = start_cli(args, err, unprivileged=True)
    try:
        first = report_lines(report, failing, process)
        time.sleep(0.5)  # (a walk or two)
        assert len(report.read_text().splitlines()) == failing
        locked.chmod(0o644)  # mended: its size and time as they were
        lines = report_lines(report, failing + 1, process)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()
        locked.chmod(0o644)
    return first, lines, process.returncode


def report_lines(report: Path, count: int, process: subprocess.Popen, timeout: float = 120) -> list[dict]:
    """A running job's ``--report`` lines once it has ``count`` (a watch writes each as its photo or
    pair ends); the job killed and ``AssertionError`` where it ends or times out first."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        lines = report.read_text().splitlines() if report.exists() else []
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the report did not reach {count} lines: {report.read_text() if report.exists() else ''}")


def run_cli(*args: str | Path, timeout: float = 120, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh interpreter where torch and onnx cannot be imported."""
    return subprocess.run(
        [sys.executable, "-m", "clothes_extractor", *map(str, args)],
        capture_output=True,
        text=stdin is None,
        input=stdin,
        env=cli_env(),
        timeout=timeout,
    )


def extracted_masks(folder: Path, tmp_path: Path) -> dict[str, tuple[str, np.ndarray]]:
    """``extract`` on ``folder`` (the bundled models, ``--save-masks``), asserted to succeed: for
    each photo (by stem), its mask source and its saved mask read back at the photo's size (bool)."""
    report = tmp_path / "extracted.jsonl"
    done = run_cli("extract", folder, "-o", tmp_path / "out", "--save-masks", tmp_path / "masks", "--report", report)
    assert done.returncode == 0, done.stderr
    found = {}
    for record in map(json.loads, open(report)):
        mask = Image.open(record["saved_mask"]).convert("L").resize(Image.open(record["input"]).size, Image.BILINEAR)
        found[Path(record["input"]).stem] = (record["mask"], np.asarray(mask) >= 128)
    return found


_OPENED: list[
    list[str]
] = []  # while a test listens (``opened_files``): each file opened, by any thread of this process


def _heard(event: str, args: tuple) -> None:
    if event == "open" and _OPENED and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED[-1].append(os.path.realpath(os.fsdecode(args[0])))


def opened_files(action: Any) -> list[str]:
    """The files ``action()`` opens in this process (an audit hook: Pillow's, the digest's and
    every other ``open``); a hook cannot be removed, so one is added once and listens only here."""
    if not getattr(_heard, "added", False):
        sys.addaudithook(_heard)
        _heard.added = True  # type: ignore[attr-defined]
    _OPENED.append([])
    try:
        action()
    finally:
        opened = _OPENED.pop()
    return opened
