"""The one-photo API: open a model, turn one photo (or a list) into one garment image, dress
a person in a garment. A photo or mask is a path, bytes (an encoded image), a binary file
object (``open(path, "rb")``, ``io.BytesIO``, a web framework's upload) or a PIL image.
The fitting, the mask rules and the models are those of ``extract``: the same photo gives
the same pixels.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Collection, Sequence, Union

import numpy as np
from PIL import Image

from ..errors import InputError, ModelError, NoGarmentError, files_named, lookup_error
from ..models import GPU_PROVIDERS, TASKS, model_for, task_model
from ..runtime.colour import to_srgb
from ..runtime.contract import ModelContract
from ..runtime.hardware import has_nvidia_gpu
from ..runtime.jobs import ExtractJob
from ..runtime.providers import SessionSettings, import_onnxruntime, provider_name
from ..runtime.session import ModelSession
from ..runtime.stages import (
    NeedsMask,
    Plan,
    Prepared,
    SegmentedMask,
    finish,
    prepare,
    segment,
)
from ..runtime.walk import MaskSource

PhotoLike = Union[str, Path, bytes, BinaryIO, Image.Image]
PNG_MODES = ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA")  # the modes a PNG file stores


def _gpu_likely(provider: str) -> bool:
    if provider in GPU_PROVIDERS:
        return True
    if provider != "auto":
        return False
    try:
        available = import_onnxruntime().get_available_providers()
    except Exception:  # noqa: BLE001 - no onnxruntime: the session itself will say so
        return False
    return has_nvidia_gpu() and any(provider_name(p) in available for p in ("cuda", "tensorrt"))


def new_session(
    model: str | Path,
    provider: str = "auto",
    *,
    settings: SessionSettings | None = None,
    outputs: Collection[str] | Callable[[ModelContract], Collection[str] | None] | None = None,
) -> ModelSession:
    """A session on a bundled model by task name (``"generator"``, ``"segmenter"``) or on a
    model file. A bundled model comes in the precision that suits the provider it gets
    (fp16 on a GPU, fp32 on the CPU). ``outputs``: only these (see ``ModelSession``). Close
    it (or use ``with``) to release the provider. A path that names no file but a task
    (``Path("generator")``, as a command's ``--model generator`` gives it) is that task's."""
    if isinstance(model, Path) and str(model) in TASKS and not model.exists():
        model = str(model)
    if isinstance(model, str) and model in TASKS:
        chosen = task_model(model, _gpu_likely(provider))
        session = ModelSession(chosen, provider, settings=settings, outputs=outputs)
        cpu_file = model_for(model, gpu=False)
        if session.provider == "cpu" and cpu_file is not None and cpu_file != chosen:
            session.close()
            session = ModelSession(cpu_file, "cpu", settings=settings, outputs=outputs)  # no working GPU after all
        return session
    if isinstance(model, str) and not Path(model).exists() and Path(model).suffix.lower() != ".onnx":
        raise ModelError(f"no model file {model!r}, and no task of that name: give a path or one of {', '.join(TASKS)}")
    return ModelSession(Path(model), provider, settings=settings, outputs=outputs)


def _as_file(image: PhotoLike, folder: Path, name: str) -> Path:
    """An image given as a path, bytes, a binary file object or a PIL image, as a file the stages
    can read; ``name`` is its temporary file's, whose first word says what it is in messages
    (``photo-3``: a photo; ``mask-``, ``person-``, ``garment-``)."""
    what = name.split("-")[0]
    if isinstance(image, (str, Path)):
        return _existing(image, what)
    target = folder / name
    if callable(getattr(image, "read", None)) and not isinstance(image, Image.Image):
        image = _read(image, what)
    if isinstance(image, (bytes, bytearray, memoryview)):
        target.write_bytes(bytes(image))
    elif isinstance(image, Image.Image):
        image = to_srgb(image)  # (a P3 or CMYK image by its profile, as photo files are read: colour.py)
        if image.mode not in PNG_MODES:  # CMYK (print JPEGs), YCbCr, LAB, HSV, F: as the photo files are read
            image = image.convert("RGB")
        # a temporary copy the stages read back at once: stored without compression (a 1024x768
        # photo in 21 ms instead of Pillow's default 103; extract_garment of one such image 185 -> 99 ms)
        image.save(target.with_suffix(".png"), compress_level=0)
        target = target.with_suffix(".png")
    else:
        hint = ""
        if type(image).__name__ == "ndarray" and what == "mask":
            hint = "; for an array: PIL.Image.fromarray(mask) (uint8, 255 on the garment)"
        elif type(image).__name__ == "ndarray":  # numpy's channel order is the caller's to say: RGB, or OpenCV's BGR
            hint = "; for an array: PIL.Image.fromarray(rgb) (from OpenCV, cv2.cvtColor(a, cv2.COLOR_BGR2RGB) first)"
        raise TypeError(
            f"a {what} is a path, bytes, a binary file object or a PIL image, not {type(image).__name__}{hint}"
        )
    return target


def _existing(path_given: str | Path, what: str) -> Path:
    """The image file a path names; ``InputError`` where there is none, or where the system cannot
    look it up (a name too long, a loop of links: it raised ``OSError`` out of the call)."""
    path = Path(path_given)
    problem = lookup_error(path)
    if problem is not None:
        raise InputError(f"{what} {problem}")
    if not os.path.exists(path):
        if isinstance(path_given, str) and "://" in path_given:  # (a URL: Path would have made it https:/host/...)
            command = "extract URL" if what in ("photo", "mask") else "tryon --person/--garment URL"
            raise InputError(
                f"{what} not found: {path_given} is a URL, and the API reads files, bytes or PIL images: give it "
                f"the downloaded bytes (urllib.request.urlopen(url).read()), or use clothes-extractor {command}"
            )
        raise InputError(f"{what} not found: {path}")
    if os.path.isdir(path):
        fix = f"give its photos' paths as a list, or extract_folder({str(path)!r}, output)"
        raise InputError(f"{what} {path} is a folder: {fix if what == 'photo' else 'give an image file'}")
    return path


def _read(stream: BinaryIO, what: str) -> bytes:
    """The bytes of a file object, from where it stands; ``TypeError`` for a text stream or an
    asynchronous upload (whose ``read`` must be awaited)."""
    data = stream.read()
    if inspect.isawaitable(data):
        if inspect.iscoroutine(data):
            data.close()  # (never awaited: no "coroutine was never awaited" warning)
        raise TypeError(f"the {what}'s read() is asynchronous (an upload of an async framework): pass await x.read()")
    if isinstance(data, str):
        raise TypeError(f"the {what} is a file opened in text mode: open it in binary mode, open(path, 'rb')")
    if not data:
        raise InputError(f"the {what}'s file object gave no bytes: it is read from where it stands (seek(0) first)")
    return data


def extract_garment(
    photo: PhotoLike | Sequence[PhotoLike],
    mask: PhotoLike | Sequence[PhotoLike | None] | None = None,
    *,
    generator: ModelSession | str | Path | None = None,
    segmenter: ModelSession | str | Path | None = None,
    output_size: str | int | tuple[int, int] = "auto",
    background: str | tuple[int, int, int] = "white",
    alpha_mask: bool = False,
    fill: float | str | None = None,
) -> Image.Image | list[Image.Image]:
    """The garment of one photo as a PIL image (RGB, or RGBA with ``background="transparent"``),
    or a list for a list of photos (run as one batch).

    ``mask``: the garment mask (white on the garment); without one the photo's alpha
    (``alpha_mask=True``) or the segmenter finds it. ``output_size``, ``background`` and ``fill``
    (the garment's share of the image: ``0.85`` or ``"85%"``; None, as the model frames it) as in
    ``extract``. A session is an open one (``new_session``), or a model file's path or None
    (the bundled model), opened for this call and closed. Raises ``InputError`` for a bad
    photo or one with no garment, ``ModelError`` for a session of another task.
    """
    many = isinstance(photo, (list, tuple))
    photos = list(photo) if many else [photo]
    masks = list(mask) if isinstance(mask, (list, tuple)) else [mask] * len(photos)
    if len(masks) != len(photos):
        raise ValueError(f"{len(photos)} photos but {len(masks)} masks")
    if not photos:
        return []
    from ..runtime.options import ExtractOptions, make_plan

    opened = _opened({"generator": generator, "segmenter": segmenter}, background, fill=fill, output_size=output_size)
    generator, segmenter = opened.get("generator", generator), opened.get("segmenter", segmenter)
    try:
        generator.require_task("generator")
        if segmenter is not None:
            segmenter.require_task("segmenter")
        options = ExtractOptions(output_size=output_size, background=background, alpha_mask=alpha_mask, fill=fill)
        plan = make_plan(generator, segmenter, options, spelling="api")
        with tempfile.TemporaryDirectory(prefix="clothes-extractor-") as tmp:
            prepared = _prepare_all(photos, masks, Path(tmp), plan, segmenter)
            garments = _run_batches(generator, prepared, plan)
    finally:
        for session in opened.values():
            session.close()
    return garments if many else garments[0]


def _opened(
    given: dict[str, ModelSession | str | Path | None],
    background: str | tuple[int, int, int] = "white",
    names: dict[str, str] | None = None,
    fill: object = None,
    output_size: object = None,
) -> dict[str, ModelSession]:
    """Sessions, for one call (the caller closes them), for the tasks of ``given`` (task -> the
    argument) not given an open session: the bundled model for None, a model file's path (or a
    task's name) as ``new_session`` takes it; a generator for white backgrounds leaves its
    silhouette out where it is not read (``generator_outputs``: no ``fill``, no page of another
    aspect given as ``output_size``). ``TypeError`` for another argument (``names``: how the
    call names it)."""
    from ..runtime.options import generator_outputs

    opened: dict[str, ModelSession] = {}
    try:
        for task, session in given.items():
            if isinstance(session, ModelSession):
                continue
            if session is not None and not isinstance(session, (str, Path)):
                raise TypeError(
                    f"{(names or {}).get(task, task)}= takes a session (new_session) or a model file's path, not "
                    f"{type(session).__name__}"
                )
            outputs = generator_outputs(background, fill, output_size) if task == "generator" else None
            opened[task] = new_session(task if session is None else session, outputs=outputs)
    except BaseException:
        for session in opened.values():
            session.close()
        raise
    return opened


def _prepare_all(photos, masks, folder: Path, plan: Plan, segmenter: ModelSession | None) -> list[Prepared]:
    """The photos fitted to the model; an error names a photo given as bytes or an image by its
    place in the list ("photo [3] is ...", or just "photo is ..." for one), not by its temporary file."""
    prepared: list[Prepared | NeedsMask] = []
    names: dict[Path, str] = {}  # temporary file -> how the caller knows it
    for index, (photo, mask) in enumerate(zip(photos, masks, strict=True)):
        place = f"[{index}]" if len(photos) > 1 else ""
        path = _as_file(photo, folder, f"photo-{index}")
        source = MaskSource("file", _as_file(mask, folder, f"mask-{index}")) if mask is not None else MaskSource("auto")
        names |= {file: place for file in (path, source.path) if file is not None and file.parent == folder}
        with files_named(names):
            prepared.append(prepare(ExtractJob(path, folder / f"out-{index}.png", source), plan))
    waiting = [item for item in prepared if isinstance(item, NeedsMask)]
    if waiting:
        masks_found = segment(waiting, segmenter)
        done = iter(masks_found)
        for i, item in enumerate(prepared):
            if isinstance(item, NeedsMask):
                found = next(done)
                if isinstance(found, NoGarmentError):
                    which = f", with a mask for photo [{i}]" if len(photos) > 1 else ""
                    raise NoGarmentError(f"extract_garment(photo, mask=...){which}") from None
                if not isinstance(found, SegmentedMask):
                    raise found
                with files_named(names):
                    prepared[i] = finish(item, found, plan)
    return prepared  # type: ignore[return-value]


def _run_batches(generator: ModelSession, prepared: list[Prepared], plan: Plan) -> list[Image.Image]:
    """The garments of ``prepared``, in order; photos of one output size run as one batch."""
    garments: list[Image.Image | None] = [None] * len(prepared)
    groups: dict[tuple, list[int]] = {}
    for index, item in enumerate(prepared):
        if item.ready is not None:  # a garment shown alone, cut out already
            garments[index] = _with_background(item.ready, plan)
        else:
            groups.setdefault(item.batch_key, []).append(index)
    for indices in groups.values():
        feeds = {name: np.stack([prepared[i].inputs[name] for i in indices]) for name in prepared[indices[0]].inputs}
        outputs = generator.run(**feeds)
        for row, index in enumerate(indices):
            garments[index] = _with_background({name: array[row] for name, array in outputs.items()}, plan)
    return garments  # type: ignore[return-value]


def _with_background(outputs: dict[str, np.ndarray], plan: Plan) -> Image.Image:
    """One garment's outputs (``garment`` on white, ``alpha``) on the plan's background."""
    rgb, alpha = plan.page(outputs)
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA") if alpha is not None else Image.fromarray(rgb)


def dress(
    person: PhotoLike | Sequence[PhotoLike],
    garment: PhotoLike | Sequence[PhotoLike],
    *,
    garment_from_photo: bool = False,
    tryon: ModelSession | str | Path | None = None,
    parser: ModelSession | str | Path | None = None,
    generator: ModelSession | str | Path | None = None,
    resolution: str = "photo",
) -> Image.Image | list[Image.Image]:
    """The person of ``person`` wearing ``garment`` (a catalog image on white, transparent or a plain backdrop),
    as an RGB image of the person photo's size; a list for lists (pairwise, as one batch).
    ``resolution``: "photo" warps the garment onto the person at the person's own resolution (up to
    1024x768), "model" at the model's size, upsampled (faster on a CPU), as ``tryon --resolution``.

    ``garment_from_photo``: ``garment`` is a photo of someone wearing it; stage one
    (``extract_garment``) makes its catalog image first. Sessions as ``extract_garment``
    takes them; the bundled segmenter is the parser. Raises ``InputError`` for a bad image,
    a person with no upper body to dress or no garment.
    """
    from ..runtime.dressing import Dresser

    many = isinstance(person, (list, tuple))
    persons = list(person) if many else [person]
    garments = list(garment) if isinstance(garment, (list, tuple)) else [garment] * len(persons)
    if len(garments) != len(persons):
        raise ValueError(f"{len(persons)} persons but {len(garments)} garments")
    if not persons:
        return []
    stage_one = {"generator": generator} if garment_from_photo else {}
    opened = _opened({"tryon": tryon, "segmenter": parser, **stage_one}, names={"segmenter": "parser"})
    tryon, parser = opened.get("tryon", tryon), opened.get("segmenter", parser)
    generator = opened.get("generator", generator)
    try:
        dresser = Dresser(
            tryon, parser, from_photo="garment_from_photo=True", extracted=garment_from_photo, resolution=resolution
        )
        if garment_from_photo:  # (at the size `tryon --garment-from` and `serve` extract it at)
            garments = extract_garment(
                garments, generator=generator, segmenter=parser, output_size=dresser.garment_size
            )
        with tempfile.TemporaryDirectory(prefix="clothes-extractor-") as tmp:
            pairs = _load_pairs(persons, garments, Path(tmp), many)
        dressed = dresser.dress_pairs(pairs)
    finally:
        for session in opened.values():
            session.close()
    for index, result in enumerate(dressed):
        if isinstance(result, InputError):
            if many:
                result.args = (f"pair [{index}]: {result}",)
            raise result
    return dressed if many else dressed[0]


def _load_pairs(
    persons: list[PhotoLike], garments: list[PhotoLike], folder: Path, many: bool
) -> list[tuple[Image.Image, Image.Image]]:
    """The pairs decoded as the folder job decodes them; a garment given once for many
    persons is decoded once (and fitted once). Errors name an input by its place in the list."""
    from ..runtime.images import load_garment, load_person

    decoded: dict[int, Image.Image] = {}
    pairs = []
    for index, (person, garment) in enumerate(zip(persons, garments, strict=True)):
        place = f"[{index}]" if many else ""
        person_file = _as_file(person, folder, f"person-{index}")
        with files_named({person_file: place} if person_file.parent == folder else {}):
            photo = load_person(person_file)
        if id(garment) not in decoded:
            garment_file = _as_file(garment, folder, f"garment-{index}")
            with files_named({garment_file: place} if garment_file.parent == folder else {}):
                decoded[id(garment)] = load_garment(garment_file)
        pairs.append((photo, decoded[id(garment)]))
    return pairs


__all__ = ["PhotoLike", "dress", "extract_garment", "new_session"]
