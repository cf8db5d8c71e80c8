"""``extract --decode gpu``: JPEGs decoded on the GPU (nvImageCodec), fitted there.

    read     (worker)  the file's bytes and its header (and its mask, if it has one); a
                       photo the GPU path does not take goes the host way, with the reason
    decode   (model)   a batch of JPEGs -> RGB frames in GPU memory (nvImageCodec)
    fit      (model)   crops and letterboxes cut from the frame on the GPU (``resample``)

then the host path's stages (segment, infer, write) as ``pipeline`` runs them. The photo is
never decoded on the host and its full-size pixels never leave the GPU; the model-size
crops come back to the host, where the batches are formed (``ModelSession.run``).

Where the GPU path cannot run, a photo falls back to the host path and the summary says how
many and why: not a JPEG, a CMYK or greyscale JPEG, an EXIF rotation, over
``MAX_GPU_PIXELS``, or a JPEG the GPU decoder refuses. No GPU, no nvImageCodec or no CUDA
runtime: the whole job decodes on the host, with one warning that says why.
"""

from __future__ import annotations

import ctypes
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from PIL import Image

from ..errors import ClothesExtractorError, InputError, MissingDependencyError, ProviderError
from .colour import profile_name
from .fitting import check_photo_size
from .images import displayed_size, exif_orientation, open_image, read_whole
from .jobs import ExtractJob
from .pipeline import Extraction
from .providers import _first_error_line, native_output_captured
from .resample import DeviceFrame, DevicePhoto, Resampler
from .resume import Skipped, already_done
from .stages import (
    NeedsMask,
    Plan,
    Prepared,
    describe_error,
    fit_photo,
    for_segmenter,
    known_mask,
    prepare,
)

log = logging.getLogger(__name__)

DECODE_CHOICES = ("auto", "host", "gpu")
MAX_GPU_PIXELS = 50_000_000  # larger photos decode on the host (draft mode shrinks them there)
CUDA_RUNTIMES = ("libcudart.so.13", "libcudart.so.12", "libcudart.so", "cudart64_13.dll", "cudart64_12.dll")
GPU_DECODE_INSTALL = 'pip install "clothes-extractor[gpu]" (it brings nvidia-nvimgcodec-cu13 with nvJPEG)'
DEVICE_ID = 0  # the GPU the providers open sessions on (providers.SessionSettings)


class DecodeUnavailable(ClothesExtractorError):
    """The GPU decoder cannot start here (the message says why)."""


@dataclass
class Encoded:
    """A JPEG read by a worker, waiting for the GPU decoder."""

    job: ExtractJob
    data: bytes
    mask: Image.Image | None = None  # from a file or label map
    mask_source: str = ""  # how the mask was found (``MaskSource.describe``), with a mask


def host_reason(image: Image.Image) -> str | None:
    """Why an opened (not decoded) photo goes the host way, or None if the GPU takes it."""
    if image.format != "JPEG":
        return f"not a JPEG ({image.format or 'unknown format'})"
    if image.mode != "RGB":
        return {"CMYK": "CMYK JPEG", "L": "greyscale JPEG"}.get(image.mode, f"{image.mode} JPEG")
    if exif_orientation(image) != 1:
        return "EXIF rotation"
    profile = profile_name(image)
    if profile is not None:  # (converted to sRGB on the host: colour.py)
        return f"colour profile {profile}"
    if image.width * image.height > MAX_GPU_PIXELS:
        return f"over {MAX_GPU_PIXELS // 1_000_000} Mpx"
    return None


def read_for_gpu(job: ExtractJob, plan: Plan, overwrite: bool) -> tuple[Any, str]:
    """(item, route) for one job (in a worker): an ``Encoded`` JPEG and "gpu", or what the
    host path makes of it (``prepare``) and "host: <why>"; "skipped" for a finished output."""
    if already_done(job, plan, overwrite):
        return Skipped(job), "skipped"
    mask = known_mask(job)
    if mask is None and plan.segmenter is None:
        return prepare(job, plan), "host: no mask and no segmenter"  # prepare says what is missing
    data = read_whole(job.photo)  # (the file read once: its header, its digest and its decode, either way)
    image = open_image(job.photo, "photo", data)
    try:
        check_photo_size(displayed_size(image), job.photo)
        reason = host_reason(image)
    finally:
        image.close()
    if reason is not None:
        return prepare(job, plan, data), f"host: {reason}"
    try:
        data = data if data is not None else job.photo.read_bytes()  # (over ``images.WHOLE_READ_MAX``)
    except OSError as exc:
        raise InputError(f"cannot read photo {job.photo}: {exc.strerror or exc}") from None
    return Encoded(job.with_content(data), data, mask, job.mask.describe() if mask is not None else ""), "gpu"


def fit_decoded(item: Encoded, photo: DevicePhoto, plan: Plan) -> Prepared | NeedsMask:
    """A photo decoded on the GPU, fitted there: to the generator with its mask, or
    letterboxed for the segmenter (which then fits it from the same frame)."""
    if item.mask is not None:
        return fit_photo(item.job, item.mask, item.mask_source, plan, photo)
    assert plan.segmenter is not None  # read_for_gpu sends maskless photos without one to the host
    return for_segmenter(item.job, plan.segmenter, photo)


def _cuda_synchronize() -> Callable[[], None]:
    """``cudaDeviceSynchronize`` from the CUDA runtime onnxruntime loaded (no PyTorch, no
    CuPy): the decoder's frames are complete before onnxruntime reads them on its stream."""
    for name in CUDA_RUNTIMES:
        try:
            runtime = ctypes.CDLL(name)
        except OSError:
            continue

        def sync(synchronize: Any = runtime.cudaDeviceSynchronize) -> None:
            status = synchronize()
            if status != 0:
                raise RuntimeError(f"cudaDeviceSynchronize failed with CUDA error {status}")

        return sync
    raise DecodeUnavailable(f"no CUDA runtime library loads here (tried {', '.join(CUDA_RUNTIMES)})")


class GpuDecoder:
    """nvImageCodec on one GPU, and the resampler that cuts frames where they lie.

    ``DecodeUnavailable`` (or the provider's own error) when either cannot start; what the
    libraries print while they start is captured, never shown (``-vv`` logs it)."""

    def __init__(self, provider: str = "cuda"):
        self.device_id = DEVICE_ID
        self.resampler = Resampler(provider)
        if self.resampler.device != "cuda":
            raise DecodeUnavailable(f"the crop-resize graph runs on {self.resampler.device}, not on a CUDA GPU")
        with native_output_captured() as said:
            try:
                from nvidia import nvimgcodec
            except ImportError:
                raise DecodeUnavailable(f"nvImageCodec is not installed; {GPU_DECODE_INSTALL}") from None
            try:
                kinds = (nvimgcodec.HW_GPU_ONLY, nvimgcodec.GPU_ONLY, nvimgcodec.HYBRID_CPU_GPU)
                self._decoder = nvimgcodec.Decoder(
                    device_id=DEVICE_ID, backends=[nvimgcodec.Backend(kind) for kind in kinds]
                )
                self._params = nvimgcodec.DecodeParams(
                    apply_exif_orientation=False, color_spec=nvimgcodec.SRGB, sample_format=nvimgcodec.I_RGB
                )
            except Exception as exc:  # noqa: BLE001 - nvImageCodec raises untyped errors
                reason = _first_error_line(said.getvalue()) or describe_error(exc)
                raise DecodeUnavailable(f"nvImageCodec did not start: {reason}") from None
        self._nvimgcodec = nvimgcodec
        self._synchronize = _cuda_synchronize()

    def extraction(self, *args: Any) -> "GpuExtraction":
        """The folder job (``pipeline.Extraction``'s arguments) with its photos decoded here."""
        return GpuExtraction(*args, decoder=self)

    def decode(self, data: list[bytes]) -> list[DeviceFrame | str]:
        """One frame per JPEG, or the reason the GPU could not decode it (for the summary)."""
        streams: list[Any] = []
        for blob in data:
            try:
                streams.append(self._nvimgcodec.CodeStream(blob))
            except Exception as exc:  # noqa: BLE001 - a stream it cannot parse goes the host way
                streams.append(f"the GPU decoder cannot parse it ({describe_error(exc)})")
        parsed = [s for s in streams if not isinstance(s, str)]
        images = iter(self._decoder.decode(parsed, params=self._params) if parsed else [])
        self._synchronize()
        return [s if isinstance(s, str) else self._frame(next(images)) for s in streams]

    def _frame(self, image: Any) -> DeviceFrame | str:
        if image is None:
            return "the GPU decoder could not decode it"
        face = image.__cuda_array_interface__
        shape, typestr = tuple(face["shape"]), face["typestr"]
        if len(shape) != 3 or shape[2] != 3 or typestr != "|u1":
            return f"the GPU decoder gave {shape} {typestr}, not 8-bit RGB"
        height, width = int(shape[0]), int(shape[1])
        strides = tuple(face.get("strides") or (width * 3, 3, 1))
        if strides[1:] != (3, 1):
            return f"the GPU decoder gave strides {strides}"
        return DeviceFrame(int(face["data"][0]), width, height, int(strides[0]), "cuda", self.device_id, image)


def open_decoder(choice: str, provider: str) -> tuple[GpuDecoder | None, str]:
    """The GPU decoder ``--decode choice`` asks for on models running on ``provider``, or None
    and why not (empty where nothing needs saying: ``host``, or ``auto`` off the GPU)."""
    if choice not in DECODE_CHOICES:
        raise ValueError(f"decode must be one of {', '.join(DECODE_CHOICES)}, got {choice!r}")
    on_cuda = provider in ("cuda", "tensorrt")
    if choice == "host" or (choice == "auto" and not on_cuda):
        return None, ""
    if not on_cuda:
        return None, f"photos decode on the host: the models run on {provider}, and GPU decode needs CUDA"
    try:
        return GpuDecoder("cuda"), ""
    except (DecodeUnavailable, ProviderError, MissingDependencyError) as exc:
        return None, f"photos decode on the host: {exc}"


class GpuExtraction(Extraction):
    """The folder job with its photos decoded on the GPU: workers read the files, the
    decoder takes them a batch at a time, frames are cut on the GPU, then the host path's
    segment / infer / write. ``routes`` counts where each photo was decoded and why."""

    read = staticmethod(read_for_gpu)

    def __init__(self, *args: Any, decoder: GpuDecoder, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.decoder = decoder
        self.encoded: list[Encoded] = []
        # each photo in flight -> its route as counted: a photo tried again (its worker process
        # died) is counted once, where it was decoded last
        self.counted: dict[str, str] = {}
        emit = self.emit

        def emitted(result: Any) -> None:
            self.counted.pop(result.input, None)
            emit(result)

        self.emit = emitted
        # segmented frames are fitted on the GPU by this thread, beside the main one
        self.device_pool = ThreadPoolExecutor(1, thread_name_prefix="ce-gpu-fit")

    def run(self, jobs: Iterable[ExtractJob | None]) -> None:
        try:
            super().run(jobs)
        finally:
            self.device_pool.shutdown(wait=True, cancel_futures=True)

    def in_flight(self) -> int:
        return super().in_flight() + len(self.encoded)

    def route(self, job: ExtractJob, item: Any) -> None:
        if isinstance(item, tuple):  # from read_for_gpu
            item, how = item
            if how.startswith("host"):
                self.count(job, how)
        if isinstance(item, Encoded):
            self.encoded.append(item)
        else:
            super().route(job, item)

    def count(self, job: ExtractJob, how: str) -> None:
        """``job``'s photo decoded ``how`` (``routes``), instead of where it was before, if it was."""
        before = self.counted.get(str(job.photo))
        if before is not None:
            self.routes[before] -= 1
            if not self.routes[before]:
                del self.routes[before]
        self.routes[how] += 1
        self.counted[str(job.photo)] = how

    def collect_reads(self) -> None:
        super().collect_reads()
        if self.encoded and (len(self.encoded) >= self.options.batch_size or not self.reading):
            self.decode()

    def decode(self) -> None:
        items, self.encoded = self.encoded, []
        try:
            frames = self.timed("decode", self.decoder.decode)([item.data for item in items])
        except Exception as exc:  # noqa: BLE001 - the batch goes the host way, reported
            log.debug("GPU decode failed", exc_info=True)
            frames = [f"the GPU decoder failed ({describe_error(exc)})"] * len(items)
        for item, frame in zip(items, frames, strict=True):
            if isinstance(frame, str):
                self.count(item.job, f"host: {frame}")
                self.queue_read(item.job, prepare, item.job, self.plan)
                continue
            self.count(item.job, "gpu")
            try:
                fitted = self.timed("fit", fit_decoded)(item, DevicePhoto(frame, self.decoder.resampler), self.plan)
            except Exception as exc:  # noqa: BLE001 - a bad photo is reported, the job goes on
                self.fail(item.job, exc, item.mask_source)
                continue
            super().route(item.job, fitted)
