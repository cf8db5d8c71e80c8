"""GPU decode (``extract --decode gpu``): the crop-resize graph, the routing, the fallbacks.

nvImageCodec needs a CUDA GPU, which the dev and CI machines lack: its own test is marked
``gpu`` and skips here. Everything after the decoder is tested for real on the CPU: the
resampling graph in onnxruntime, bound to the frame's memory by pointer as on the GPU, the
job's routing, fitting from frames, and the host fallbacks. The frames in these tests are
decoded by Pillow into host memory (``PillowFrames``), standing in for nvImageCodec's.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clothes_extractor.runtime.fitting import crop_resize
from clothes_extractor.runtime.gpudecode import GpuDecoder, host_reason, open_decoder
from clothes_extractor.runtime.jobs import MaskIndex, find_jobs
from clothes_extractor.runtime.options import ExtractOptions
from clothes_extractor.runtime.pipeline import run_extraction
from clothes_extractor.runtime.resample import DeviceFrame, Resampler, pillow_taps
from clothes_extractor.runtime.session import ModelSession
from conftest import opened_files, person_photo


class PillowFrames(GpuDecoder):
    """The GPU decoder with frames in host memory, decoded by Pillow (nvImageCodec needs a GPU)."""

    def __init__(self) -> None:  # no nvImageCodec, no CUDA runtime: a resampler on the CPU
        self.device_id = 0
        self.resampler = Resampler("cpu")

    def decode(self, data: list[bytes]) -> list[DeviceFrame | str]:
        frames: list[DeviceFrame | str] = []
        for blob in data:
            try:
                frames.append(DeviceFrame.from_array(np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))))
            except OSError as exc:
                frames.append(f"the GPU decoder could not decode it ({exc})")
        return frames


@pytest.fixture(scope="module")
def resampler() -> Resampler:
    return Resampler("cpu")


def textured(seed: int = 0, size: tuple[int, int] = (300, 220)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = ((xx // 3 + yy // 5) % 2 * 200).astype(np.uint8)
    noise = rng.integers(0, 55, (h, w, 3), dtype=np.uint8)
    return np.stack([stripes, 255 - stripes, stripes // 2], axis=-1) + noise


@pytest.mark.parametrize(
    "window, size",
    [
        ((20.0, 30.0, 180.0, 243.3), (256, 192)),  # an upscale
        ((0.0, 0.0, 220.0, 300.0), (128, 96)),  # the whole photo, shrunk 2.3x (antialiased)
        ((-40.5, -12.0, 250.0, 330.0), (160, 120)),  # past every edge: the fill colour there
        ((10.25, 5.5, 60.75, 90.0), (64, 48)),  # fractional
        ((-500.0, 0.0, -300.0, 200.0), (32, 24)),  # wholly outside: all fill
    ],
)
def test_graph_crops_like_pillow(resampler, window, size):
    photo = textured()
    expected = np.asarray(crop_resize(Image.fromarray(photo), window, size, (255, 250, 240))).astype(int)
    got = resampler.crop_resize(DeviceFrame.from_array(photo), window, size, (255, 250, 240)).astype(int)
    assert got.shape == (*size, 3) and got.dtype == int
    assert np.abs(got - expected).max() <= 1  # Pillow rounds its intermediate rows to 8 bits


def test_graph_reads_padded_rows_as_they_lie(resampler):
    photo = textured(1)
    padded = np.zeros((photo.shape[0], photo.shape[1] + 13, 3), np.uint8)  # a decoder's row pitch
    padded[:, : photo.shape[1]] = photo
    padded[:, photo.shape[1] :] = 7  # never read
    frame = DeviceFrame.from_array(padded[:, : photo.shape[1]])
    assert frame.row_pitch == padded.strides[0] != photo.shape[1] * 3
    window = (0.0, 0.0, float(photo.shape[1]), float(photo.shape[0]))
    plain = resampler.crop_resize(DeviceFrame.from_array(photo), window, (150, 110), (255, 255, 255))
    assert np.array_equal(resampler.crop_resize(frame, window, (150, 110), (255, 255, 255)), plain)


def test_taps_are_normalised_and_identity_at_scale_one():
    index, weight = pillow_taps(0.0, 50.0, 50, 50)
    assert np.allclose(weight.sum(axis=1), 1.0)
    assert np.array_equal(index[np.arange(50), weight.argmax(axis=1)], np.arange(50))
    assert np.allclose(weight.max(axis=1), 1.0)
    _, shrink = pillow_taps(0.0, 200.0, 200, 50)  # 4x: the triangle widens (antialias)
    assert (shrink > 0).sum(axis=1)[1:-1].min() == 8 and np.allclose(shrink.sum(axis=1), 1.0)  # edges: fewer


def test_host_reasons(tmp_path):
    photo = Image.fromarray(textured(2))
    cases = {
        "rgb.jpg": (photo, {}, None),
        "cut.png": (photo, {}, "not a JPEG (PNG)"),
        "print.jpg": (photo.convert("CMYK"), {}, "CMYK JPEG"),
        "grey.jpg": (photo.convert("L"), {}, "greyscale JPEG"),
    }
    for name, (image, options, _) in cases.items():
        image.save(tmp_path / name, **options)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    photo.save(tmp_path / "turned.jpg", exif=exif)
    cases["turned.jpg"] = (None, {}, "EXIF rotation")
    for name, (_, _, reason) in cases.items():
        with Image.open(tmp_path / name) as opened:
            assert host_reason(opened) == reason, name


def test_open_decoder_says_why_it_decodes_on_the_host():
    assert open_decoder("host", "cuda") == (None, "")
    assert open_decoder("auto", "cpu") == (None, "")
    decoder, why = open_decoder("gpu", "cpu")
    assert decoder is None and "CUDA" in why and "host" in why
    with pytest.raises(ValueError, match="decode must be one of"):
        open_decoder("fpga", "cuda")


def _mixed_folder(tmp_path: Path, figures: Path) -> Path:
    """The example figures (JPEG and others), a CMYK JPEG, a PNG and a truncated JPEG."""
    folder = tmp_path / "in"
    shutil.copytree(figures, folder)
    photo, _ = person_photo(3, (150, 200))
    photo.convert("CMYK").save(folder / "cmyk.jpg")
    photo.save(folder / "lossless.png")
    photo.save(folder / "whole.jpg", quality=92)
    data = (folder / "whole.jpg").read_bytes()
    (folder / "broken.jpg").write_bytes(data[: len(data) // 3])
    return folder


def test_gpu_route_matches_the_host_path(tiny_model_path, segmenter_path, figures, tmp_path):
    folder = _mixed_folder(tmp_path, figures)
    generator, segmenter = ModelSession(tiny_model_path, "cpu"), ModelSession(segmenter_path, "cpu")
    options = ExtractOptions(batch_size=2, workers=2, processes=False)
    outputs = {}
    for name, decoder in (("host", None), ("frames", PillowFrames())):
        results = []
        jobs = find_jobs([folder], tmp_path / name, "png", None)
        summary = run_extraction(generator, jobs, options, results.append, segmenter, decoder=decoder)
        outputs[name] = {Path(r.input).name: r for r in results}
    host, frames = outputs["host"], outputs["frames"]
    jpegs = sorted(n for n in host if n.endswith(".jpg") and n not in ("cmyk.jpg", "broken.jpg"))
    others = sorted(n for n in host if not n.endswith(".jpg"))
    assert summary.decoded["gpu"] == len(jpegs) >= 3 and others
    assert summary.decoded["host: CMYK JPEG"] == 1
    assert sum(n for how, n in summary.decoded.items() if how.startswith("host: not a JPEG")) == len(others)
    assert [how for how in summary.decoded if "could not decode" in how] and summary.failed == 1
    assert frames["broken.jpg"].status == host["broken.jpg"].status == "error"
    assert "truncated" in frames["broken.jpg"].error  # the host path's own report of the file
    for name in jpegs + others + ["cmyk.jpg"]:
        assert frames[name].status == host[name].status == "ok", name
        assert frames[name].mask == host[name].mask
        a = np.asarray(Image.open(host[name].output)).astype(int)
        b = np.asarray(Image.open(frames[name].output)).astype(int)
        assert a.shape == b.shape and np.abs(a - b).mean() < 1.0, name  # same pixels, resampled alike
    assert not list((tmp_path / "frames").glob("*.partial"))


def test_gpu_route_with_mask_files(tiny_model_path, photo_folder, tmp_path):
    photos, masks = photo_folder
    generator = ModelSession(tiny_model_path, "cpu")
    results = []
    jobs = find_jobs([photos], tmp_path / "out", "png", MaskIndex(masks))
    options = ExtractOptions(batch_size=2, workers=2, processes=False)
    summary = run_extraction(generator, jobs, options, results.append, None, decoder=PillowFrames())
    assert (summary.ok, summary.decoded) == (5, {"gpu": 5}) and summary.masks == {"file": 5}
    again = run_extraction(generator, jobs, options, None, None, decoder=PillowFrames())
    assert (again.skipped, again.ok, again.decoded) == (5, 0, {})  # resume: nothing decoded again


def test_the_gpu_route_reads_each_photo_file_once(tiny_model_path, segmenter_path, figures, tmp_path):
    """A worker reads a photo file once for the GPU route (``gpudecode.read_for_gpu``): its header
    (whether the GPU takes it), its digest and the bytes sent to the decoder, and, where the host
    takes it (not a JPEG, CMYK), ``prepare``'s decodes too. Before: the header, then the file again
    for the GPU (and for the host path, again for its digest and its decodes)."""
    folder = _mixed_folder(tmp_path, figures)
    generator, segmenter = ModelSession(tiny_model_path, "cpu"), ModelSession(segmenter_path, "cpu")
    options = ExtractOptions(batch_size=2, workers=2, processes=False)
    results = []
    jobs = find_jobs([folder], tmp_path / "out", "png", None)
    opened = opened_files(
        lambda: run_extraction(generator, jobs, options, results.append, segmenter, decoder=PillowFrames())
    )
    done = sorted(os.path.realpath(r.input) for r in results if r.status == "ok")
    assert len(done) >= 5 and sorted(path for path in opened if path in done) == done  # each once


def write_or_die(item, outputs, plan):
    """The write stage (``stages.write``), whose worker process dies on the first try of a photo
    named ``crash-once*`` (it leaves a ``.died`` file beside the photo). Module-level: worker
    processes import it."""
    from clothes_extractor.runtime.stages import write

    died = item.job.photo.with_suffix(".died")
    if item.job.photo.name.startswith("crash-once") and not died.exists():
        died.touch()
        os._exit(70)
    return write(item, outputs, plan)


def test_a_photo_tried_again_is_counted_once_where_it_was_decoded(tiny_model_path, photo_folder, tmp_path, monkeypatch):
    """A photo whose worker process died after its decode (here in its write) is tried again,
    alone, and decoded again: until the 54th stop the summary counted it twice ("gpu": 7 for
    6 photos)."""
    from clothes_extractor.runtime import pipeline

    photos, masks = photo_folder
    shutil.copy(photos / "p2.jpg", photos / "crash-once.jpg")
    shutil.copy(masks / "p2.png", masks / "crash-once.png")
    monkeypatch.setattr(pipeline, "write", write_or_die)
    generator = ModelSession(tiny_model_path, "cpu")
    jobs = find_jobs([photos], tmp_path / "out", "png", MaskIndex(masks))
    options = ExtractOptions(batch_size=2, workers=2, processes=True)
    summary = run_extraction(generator, jobs, options, None, None, decoder=PillowFrames())
    assert (photos / "crash-once.died").exists() and summary.retried >= 1
    assert (summary.ok, summary.failed) == (6, 0) and summary.decoded == {"gpu": 6}


@pytest.mark.gpu
def test_nvimgcodec_decodes_like_pillow(tmp_path):
    decoder, why = open_decoder("gpu", "cuda")
    if decoder is None:
        pytest.skip(why)
    assert isinstance(decoder, GpuDecoder)
    photo = Image.fromarray(textured(4, (600, 450)))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=95)
    (frame,) = decoder.decode([buffer.getvalue()])
    assert isinstance(frame, DeviceFrame) and frame.size == (450, 600) and frame.device == "cuda"
    window = (0.0, 0.0, 450.0, 600.0)
    got = decoder.resampler.crop_resize(frame, window, (256, 192), (255, 255, 255)).astype(int)
    decoded = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    expected = np.asarray(crop_resize(decoded, window, (256, 192), (255, 255, 255))).astype(int)
    assert np.abs(got - expected).mean() < 2.0  # nvJPEG's IDCT and upsampling differ from libjpeg's
    assert decoder.decode([b"not a jpeg"])[0].startswith("the GPU decoder")
