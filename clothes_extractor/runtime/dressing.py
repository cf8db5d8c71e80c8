"""Try-on serving: dress persons in catalog garments (numpy, Pillow, onnxruntime only).

    parse    (parser)  each person photo, letterboxed -> a class per pixel; the region to
                       dress anew is its upper clothes and arms. Where the person's upper
                       body is small in the photo (a full-body shot), a second look at a
                       window framed as the try-on's training photos are (head to thigh).
                       Of several people apart, the largest wearing a top (``people``)
    fit      (numpy)   the person letterboxed (or that window) to the try-on model, the
                       region, the catalog garment letterboxed on white and its silhouette
    dress    (model)   a batch of fitted pairs -> dressed persons at the model size
    paste    (Pillow)  the dressed region scaled back into the full-resolution photo: the
                       face, hair, legs and background keep every original pixel

``api.dress`` and ``serve`` run them for a batch of pairs; ``dress_jobs.run_dressing``
for a folder job (``tryon``, ``api.dress_folder``), which reads each pair ahead on threads
(``Dresser.person``, ``Dresser.garment``: the decoded photo letterboxed, the garment
fitted) while the model dresses the batch before. A person on whom the parser finds no top
(``MIN_TOP_SHARE``), a person photo that shows a garment alone (``alone.no_one_wears``), or a
garment image with nothing on its background or no garment the parser sees (``people.garment_seen``),
is an error for that pair: nothing is invented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
from PIL import Image

from ..errors import InputError, ModelError, NothingToDressError
from .alone import WORN_BELOW, no_one_wears, off_colour, on_white
from .fitting import Box, crop_photo, fills_frame, fit_window, letterbox_for, output_size_for, share_shown, shown_box
from .images import extract_wrote, written_background
from .people import garment_seen, keep_columns, main_person
from .session import ModelSession
from .tryon import (
    REGION_NAMES,
    TOP,
    fit_at_resolution,
    fit_person,
    framed_garment,
    labels_in_frame,
    region_from_labels,
    upper_body_window,
    window_to_photo,
)

# Less than this share of the person frame in upper clothes: no top to replace on this photo.
# A top covers 7% or more of that frame on every VITON (1,528 validation), VITON-HD and Dress
# Code sample photo; garment-free photos the parser still finds arms or a top on stay under 4%.
MIN_TOP_SHARE = 0.03
# Less than this share of the garment frame off-white: the garment image shows no garment.
MIN_GARMENT_SHARE = 0.01
NO_PERSON = (
    "found no upper-body clothing to replace on the person (the parser sees a top on {share:.1%} of the frame, "
    f"less than {MIN_TOP_SHARE:.0%}); use a photo of a person facing the camera, upper body visible"
)
NO_GARMENT = (
    "found no garment in the garment image ({why}): it must be a catalog image, the garment on white, "
    "transparent or a plain backdrop (for a photo of someone wearing it: {how})"
)
PERSON_IN_GARMENT = (
    "the garment image looks like a photo of someone wearing the garment (the parser takes it for a garment "
    "shown alone at {alone:.0%}): it must be a catalog image, the garment alone (to dress in the garment a photo "
    "shows someone wearing: {how})"
)
FROM_PHOTO = "--garment-from, or garment_from_photo=True"  # how a caller dresses in the garment of a photo
GARMENT_AS_PERSON = (
    "the person photo shows a garment alone, no one wearing it (the parser takes it for a garment shown alone at "
    "{alone:.0%}): use a photo of a person facing the camera, upper body visible; a catalog image or a flat lay is "
    "the garment to dress them in"
)


@dataclass(frozen=True, eq=False)  # (compared by identity: it holds an array)
class Person:
    """A person photo and its first look: the whole photo letterboxed to the parser's input.
    Where the try-on model's frame is the parser's (the bundled pair) and the padding is too
    (or there is none: a photo of the model's aspect), a person with no second look is
    fitted to the try-on model by the same array."""

    photo: Image.Image
    plane: np.ndarray  # [h, w, 3] uint8, the parser's input
    window: Box  # the photo's window that fills it (photo pixels)
    fill: tuple[int, int, int]  # the padding around the photo in ``plane``, for a second look's as well


class Parsed(NamedTuple):
    """A person photo's parse: its class map (mode L) over the plane the parser saw, the photo's
    window that plane shows, and the head's ``alone`` where the photo shows a garment alone
    with no one wearing it (``alone.no_one_wears``; else None): no person to dress."""

    classes: Image.Image
    window: Box
    garment_alone: int | None = None


class Garment(NamedTuple):
    """A catalog garment fitted to the try-on model (``tryon.framed_garment``): letterboxed on
    white (or its own near-white), and its silhouette."""

    image: np.ndarray  # [h, w, 3] uint8
    mask: np.ndarray  # [h, w, 1] uint8, 255 = garment
    alone: int | None = None  # the parser's ``alone`` for the garment image (None: a parser without the head)
    # the garment image as fitted (cut out onto white, reframed: at its own resolution), for a
    # photo-resolution model's ``garment_photo``
    source: Image.Image | None = None
    seen: bool = True  # whether the parser sees a garment in the garment image (``people.garment_seen``; or not asked)


@dataclass
class Fitted:
    """One pair, ready for the model, and what pasting its result back needs."""

    photo: Image.Image
    window: Box  # the person photo's window that fills the model frame (photo pixels)
    inputs: dict[str, np.ndarray]


class Dresser:
    """A try-on model and the parser that finds what it dresses anew, with the fitting of both."""

    def __init__(
        self,
        tryon: ModelSession,
        parser: ModelSession,
        from_photo: str = FROM_PHOTO,
        extracted: bool = False,
        resolution: str = "photo",
        garments_by: str = "",
    ):
        if resolution not in ("photo", "model"):
            raise ValueError(f"resolution must be 'photo' or 'model', got {resolution!r}")
        tryon.require_task("tryon")
        parser.require_task("segmenter")
        names = parser.contract.labels
        if not all(name in names for name in REGION_NAMES):
            raise ModelError(
                f"{parser.path.name} is a garment segmenter without the parser's classes; try-on needs a "
                f"parser (classes {', '.join(REGION_NAMES)}): the bundled segmenter is one"
            )
        self.tryon, self.parser = tryon, parser
        # "photo": a photo-resolution model dresses the person's window at its own resolution
        # (the garment's prints at that resolution); "model": at the model size, upsampled (faster)
        self.resolution = resolution
        self.from_photo = from_photo  # (said where a garment image shows no garment)
        # the garment images are this tool's own extractions, as images (``api.dress``'s stage one; files
        # extract wrote say so by their signature): not asked whether they show someone wearing the garment
        self.extracted = extracted
        self.size = tryon.contract.size
        self.signature = f"tryon={tryon.digest[:16]} parser={parser.digest[:16]}"
        if resolution == "model" and tryon.contract.catalog_resolution:  # (another picture than "photo" makes)
            self.signature += " resolution=model"
        if garments_by:  # the digest of the generator that makes the garments of photos (--garment-from): a
            self.signature += f" generator={garments_by[:16]}"  # rerun with another redoes those pairs
        # fit_person letterboxes a whole photo on white at the try-on's size: the parser's
        # first look is that array where the parser's frame is the same and so is its padding
        self._same_frame = parser.contract.size == self.size

    @property
    def garment_size(self) -> str:
        """The ``output_size`` stage one extracts a garment photo's garment at for this dresser
        (``--garment-from``, ``garment_from_photo=True``, serve's ``garment_photo``): "auto" where
        it dresses at the photo's resolution, so a garment shown alone (a flat lay: the photo's
        own pixels, cut out) keeps its resolution, up to 1024x768 (a garment drawn by a
        generator without catalog resolution comes at 256x192 either way); else "model"."""
        return "auto" if self.resolution == "photo" and self.tryon.contract.catalog_resolution else "model"

    def person(self, photo: Image.Image) -> Person:
        """A person photo with its first look made (thread-safe: Pillow's resize lets go of
        the GIL, so readers can make them beside a model run)."""
        contract = self.parser.contract
        return Person(photo, *letterbox_for(photo, contract.size, contract.fit))

    def garment(self, image: Image.Image) -> Garment:
        """A catalog garment fitted once for every pair it dresses (thread-safe, as ``person``),
        and asked of the parser's ``alone`` head: a photo of someone wearing it is no garment alone.
        One this tool extracted is not asked (the dresser's ``extracted``, or a file ``extract`` wrote:
        its signature names a generator; the fifth-stage parser's head took those of the example figures 4
        and 5 for photos). A garment alone on a backdrop the catalog silhouette takes for garment (a
        saturated colour, a wood grain) is cut out onto white first (``alone.on_white``; one ``extract``
        wrote on a colour: ``alone.off_colour``), and one framed loosely is reframed (``framed_garment``)."""
        if self.extracted or extract_wrote(image):
            colour = written_background(image)  # (one written on a colour: that colour made white)
            image = image if colour is None else off_colour(image, colour)
            source, fitted, mask = framed_garment(image, self.size)
            return Garment(fitted, mask, source=source)
        contract = self.parser.contract
        plane, window, _ = letterbox_for(image, contract.size, contract.fit)
        found = self.parser.run(image=plane[None])
        alone = None if found.get("alone") is None else int(found["alone"].max())
        shown = shown_box(window, image.size, contract.size)
        labels = found["labels"][0, :, :, 0] if "labels" in found else None
        top, threshold = found["mask"][0, :, :, 0], contract.fit.mask_threshold
        seen = garment_seen(top, labels, contract.labels, shown, threshold)
        cut = on_white(image, plane, top, labels, contract.labels, shown, alone, threshold)
        image = image if cut is None else cut
        source, fitted, mask = framed_garment(image, self.size)
        return Garment(fitted, mask, alone, source, seen)

    def refusal(self, garment: Garment | tuple[np.ndarray, np.ndarray]) -> NothingToDressError | None:
        """Why a fitted garment dresses no one, whoever the person (nothing on its background, no garment
        the parser sees, a person wearing it), or None: ``fit`` raises it; a folder job asks once a garment."""
        share, how = float(np.mean(garment[1] > 127)), self.from_photo
        if share < MIN_GARMENT_SHARE:
            return NothingToDressError(NO_GARMENT.format(why=f"{share:.1%} of it is not background", how=how))
        if isinstance(garment, Garment) and not garment.seen:
            return NothingToDressError(NO_GARMENT.format(why="the parser sees none in it", how=how))
        if isinstance(garment, Garment) and garment.alone is not None and garment.alone < WORN_BELOW:
            return NothingToDressError(PERSON_IN_GARMENT.format(alone=garment.alone / 255, how=how))
        return None

    def parse(self, photos: Sequence[Image.Image | Person]) -> list[Parsed]:
        """Each photo's class map (mode L, the parser's class indices) over the plane the
        parser saw, and the window of the photo that plane shows: the whole photo,
        letterboxed, or where its person's upper body is small in it (a full-body shot), a
        second look at a window framed as the try-on's training photos are. A photo that
        shows a garment alone (a catalog image or a flat lay given as the person) is marked so."""
        contract = self.parser.contract
        persons = [photo if isinstance(photo, Person) else self.person(photo) for photo in photos]
        parsed, said = self._parse([(person.plane, person.window) for person in persons])
        zoom, kept = {}, {}  # kept: the photo's columns (x0, x1) of the one person dressed among several
        for i, (person, (classes, plane, _)) in enumerate(zip(persons, parsed, strict=True)):
            x0, y0, x1, y1 = shown_box(plane, person.photo.size, classes.size[::-1])
            if no_one_wears(said[i], np.asarray(classes)[y0:y1, x0:x1], contract.labels):
                parsed[i] = Parsed(classes, plane, said[i])
                continue
            columns = self._one_person(np.asarray(classes), plane, person.photo.size)
            if columns is not None:
                kept[i] = columns
                parsed[i] = Parsed(_other_people_cleared(classes, plane, columns), plane)
            size, names = person.photo.size, contract.labels
            window = upper_body_window(parsed[i][0], plane, size, contract.size, names, always=i in kept)
            if window is not None:
                zoom[i] = window
        if zoom:
            crops = [
                (crop_photo(persons[i].photo, window, contract.size, persons[i].fill), window)
                for i, window in zoom.items()
            ]
            for i, (classes, window, _) in zip(zoom, self._parse(crops)[0], strict=True):
                parsed[i] = Parsed(_other_people_cleared(classes, window, kept[i]) if i in kept else classes, window)
        return parsed

    def _one_person(self, classes: np.ndarray, plane: Box, photo_size: tuple[int, int]) -> tuple[float, float] | None:
        """Where the class map (over ``plane`` of the photo) shows several people apart wearing
        a top, the photo's columns (x0, x1) of the largest of them (``people.main_person``, on
        the part of the map the photo covers, as ``extract`` does): only that one is dressed."""
        x0, y0, x1, y1 = shown_box(plane, photo_size, classes.shape)
        shown = classes[y0:y1, x0:x1]
        top = (shown == self.parser.contract.labels.index(TOP)).astype(np.uint8) * 255
        columns = main_person(top, shown, 128, names=self.parser.contract.labels)
        if columns is None:
            return None
        scale = (plane[2] - plane[0]) / classes.shape[1]
        return plane[0] + (columns[0] + x0) * scale, plane[0] + (columns[1] + x0) * scale

    def _parse(self, fitted: list[tuple[np.ndarray, Box]]) -> tuple[list[Parsed], list[int | None]]:
        """The parses of the planes, and the head's ``alone`` for each (None: a parser without it)."""
        found = self.parser.run(image=np.stack([array for array, _ in fitted]))
        labels, alone = found["labels"], found.get("alone")
        parsed = [Parsed(Image.fromarray(labels[i, :, :, 0], "L"), window) for i, (_, window) in enumerate(fitted)]
        return parsed, [None if alone is None else int(alone[i].max()) for i in range(len(fitted))]

    def fit(
        self,
        photo: Image.Image | Person,
        parsed: Parsed | tuple[Image.Image, Box],
        garment: Garment | tuple[np.ndarray, np.ndarray],
    ) -> Fitted:
        """The model inputs of one pair, ``garment`` fitted already (``garment(image)``, once
        for all the pairs it dresses); ``InputError`` when there is nothing to dress or no
        garment."""
        if isinstance(parsed, Parsed) and parsed.garment_alone is not None:
            raise NothingToDressError(GARMENT_AS_PERSON.format(alone=parsed.garment_alone / 255))
        first = photo if isinstance(photo, Person) else None
        photo = photo.photo if isinstance(photo, Person) else photo
        whole = fit_window((0.0, 0.0, float(photo.width), float(photo.height)), self.parser.contract.size, 0.0)
        zoomed = not np.allclose(parsed[1], whole, atol=1e-6)  # a second look: that window, at the try-on's aspect
        if first is not None and not zoomed and self._same_frame and _padded_alike(first):
            # the parser's first look is the try-on's input
            person, window = first.plane, first.window
        else:
            person, window = fit_person(photo, self.size, fit_window(parsed[1], self.size, 0.0) if zoomed else None)
        labels = labels_in_frame(parsed, photo.size, window, self.size)
        names = self.parser.contract.labels
        share = share_shown(labels == names.index(TOP), window, photo.size, self.size)
        if share < MIN_TOP_SHARE:
            raise NothingToDressError(NO_PERSON.format(share=share))
        refused = self.refusal(garment)
        if refused is not None:
            raise refused
        garment_image, garment_mask = garment[:2]
        inputs = {
            "person": person,
            "region": region_from_labels(labels, names),
            "garment": garment_image,
            "garment_mask": garment_mask,
        }
        if self.tryon.contract.catalog_resolution:
            source = garment.source if isinstance(garment, Garment) else None
            inputs.update(self._at_photo_resolution(photo, window, person, garment_image, source))
        return Fitted(photo, window, inputs)

    def _at_photo_resolution(
        self, photo: Image.Image, window: Box, person: np.ndarray, garment: np.ndarray, source: Image.Image | None
    ) -> dict[str, np.ndarray]:
        """A photo-resolution model's ``photo`` and ``garment_photo``: the person's window at its
        own resolution (``fitting.output_size_for``: at most the contract's ``max_output``, never
        under the model size) and the garment letterboxed at that size, from its own image
        where there is one; the model-size arrays where that is the model size (or the dresser's
        ``resolution`` is "model")."""
        size = self.size
        if self.resolution != "model":
            size = output_size_for(window[3] - window[1], self.tryon.contract)
        if size == self.size:
            return {"photo": person, "garment_photo": garment}
        source = source if source is not None else Image.fromarray(garment)
        big, big_garment = fit_at_resolution(photo, window, source, size)
        return {"photo": big, "garment_photo": big_garment}

    def draw(self, batch: Sequence[Fitted]) -> list[np.ndarray]:
        """The try-on model's dressed persons of a batch of fitted pairs, each at the size of its
        ``photo`` input (the model size, or the person's window at its own resolution); pairs of
        one size run as one batch (``paste`` puts each into its photo)."""
        groups: dict[tuple, list[int]] = {}
        for index, item in enumerate(batch):
            groups.setdefault(item.inputs["photo"].shape if "photo" in item.inputs else (), []).append(index)
        drawn: list[np.ndarray] = [np.empty(0)] * len(batch)
        for rows in groups.values():
            feeds = {name: np.stack([batch[i].inputs[name] for i in rows]) for name in batch[rows[0]].inputs}
            for index, image in zip(rows, self.tryon.run(**feeds)["image"], strict=True):
                drawn[index] = image
        return drawn

    def dress(self, batch: Sequence[Fitted]) -> list[Image.Image]:
        """The dressed persons of a batch of fitted pairs, each at its photo's size."""
        return [paste(item, image) for item, image in zip(batch, self.draw(batch), strict=True)]

    def draw_pairs(
        self, pairs: Sequence[tuple[Image.Image | Person, Image.Image | Garment]]
    ) -> list[tuple[Fitted, np.ndarray] | InputError]:
        """Each (person photo, catalog garment) pair fitted and dressed at the model size, in
        one parser run (two for second looks) and one try-on run: ``paste(*result)`` is the
        dressed photo. In place of a pair with nothing to dress anew or no garment, the
        ``InputError`` that says so. Photos and garments may come prepared (``person``,
        ``garment``); a prepared person of several pairs (the same object) is parsed once."""
        persons = [person if isinstance(person, Person) else self.person(person) for person, _ in pairs]
        distinct = list({id(person): person for person in persons}.values())  # (one person in many garments)
        parses = dict(zip(map(id, distinct), self.parse(distinct), strict=True))
        parsed = [parses[id(person)] for person in persons]
        results: list[tuple[Fitted, np.ndarray] | InputError | None] = [None] * len(pairs)
        fitted: dict[int, Fitted] = {}
        garments: dict[int, Garment] = {}  # a garment image of many pairs is fitted once
        for index, ((_, garment), person, labels) in enumerate(zip(pairs, persons, parsed, strict=True)):
            if not isinstance(garment, Garment):
                if id(garment) not in garments:
                    garments[id(garment)] = self.garment(garment)
                garment = garments[id(garment)]
            try:
                fitted[index] = self.fit(person, labels, garment)
            except InputError as exc:
                results[index] = exc
        if fitted:
            drawn = self.draw(list(fitted.values()))
            for row, (index, item) in enumerate(fitted.items()):
                results[index] = (item, drawn[row])
        return results  # type: ignore[return-value]

    def dress_pairs(
        self, pairs: Sequence[tuple[Image.Image | Person, Image.Image | Garment]]
    ) -> list[Image.Image | InputError]:
        """Each (person photo, catalog garment) pair dressed, at the photo's size (``draw_pairs``,
        pasted); in place of a pair with nothing to dress anew or no garment, its ``InputError``."""
        return [found if isinstance(found, InputError) else paste(*found) for found in self.draw_pairs(pairs)]


def _other_people_cleared(classes: Image.Image, plane: Box, columns: tuple[float, float]) -> Image.Image:
    """A class map over ``plane`` (of the photo) that is background outside the photo's ``columns``."""
    labels = np.asarray(classes)
    scale = labels.shape[1] / (plane[2] - plane[0])
    c0, c1 = (max(0, min(labels.shape[1], round((x - plane[0]) * scale))) for x in columns)
    return Image.fromarray(keep_columns(labels, (c0, c1)), "L")


def _padded_alike(person: Person) -> bool:
    """Whether the parser's first look at ``person`` is padded as ``fit_person`` pads the
    try-on's input (on white), or not padded at all."""
    return person.fill == (255, 255, 255) or fills_frame(person.window, person.photo.size, person.plane.shape[:2])


def paste(item: Fitted, image: np.ndarray) -> Image.Image:
    """The model's dressed person pasted into the original photo through the (soft) region."""
    photo = item.photo
    dressed = window_to_photo(Image.fromarray(image), item.window, photo.size, Image.Resampling.BICUBIC)
    region = Image.fromarray(item.inputs["region"][:, :, 0], "L")
    alpha = window_to_photo(region, item.window, photo.size, Image.Resampling.BILINEAR)
    return Image.composite(dressed, photo, alpha)
