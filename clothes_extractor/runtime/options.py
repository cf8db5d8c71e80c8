"""What an extraction is asked to do (``ExtractOptions``, from the command line, the Python
API or a request) and what its workers get from it (``make_plan``: the settings checked
against the model, before any work)."""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from typing import Callable

from PIL import ImageColor

from ..errors import ClothesExtractorError
from .contract import ModelContract
from .fill import parse_fill
from .hardware import physical_cores
from .limits import check_batch_size
from .session import ModelSession
from .stages import Plan

PROCESS_MIN_CORES = 4  # below this, threads: process start-up and pickling cost more than the GIL
MAX_OUTPUT_SIDE = 4096  # an --output-size past this on a side is refused (memory grows with its square)


def parse_output_size(value: str) -> str | int | tuple[int, int]:
    """``auto``, ``model``, ``HEIGHTxWIDTH`` or ``HEIGHT`` (the model's aspect) -> the value
    ``ExtractOptions.output_size`` takes; ``ValueError`` with what is accepted otherwise."""
    text = value.strip().lower()
    if text in ("auto", "model"):
        return text
    try:
        sides = tuple(int(v) for v in text.split("x"))
    except ValueError:
        sides = ()
    if len(sides) in (1, 2) and min(sides) >= 1:
        return sides[0] if len(sides) == 1 else (sides[0], sides[1])
    raise ValueError(f"output size must be auto, model, HEIGHTxWIDTH or HEIGHT (positive), got {value!r}")


def parse_background(value: str) -> str | tuple[int, int, int]:
    """``white``, ``transparent`` or a colour as CSS writes one (``#RRGGBB``, ``#RGB``, a name:
    ``navy``, ``rgb(30, 58, 138)``) -> the ``Plan.background`` value: the name, or (r, g, b)."""
    value = value.strip().lower()
    if value in ("white", "transparent"):
        return value
    try:
        colour = ImageColor.getrgb(value)
    except ValueError:
        raise ValueError(
            f"background must be white, transparent or a colour (#RRGGBB, #RGB, a CSS name such as navy), got {value!r}"
        ) from None
    if len(colour) == 4:  # (#RRGGBBAA, rgba(...))
        raise ValueError(f"background {value!r} has an alpha: a page colour is opaque; for a cut-out, use transparent")
    return colour


def default_workers() -> int:
    return max(1, min(16, os.cpu_count() or 1))


@dataclass(frozen=True)
class ExtractOptions:
    batch_size: int = 8
    workers: int = field(default_factory=default_workers)
    quality: int = 95
    overwrite: bool = False
    output_size: str | int | tuple[int, int] = "auto"  # auto | model | height (the model's aspect) | (height, width)
    background: str | tuple[int, int, int] = "white"  # white | transparent | (r, g, b)
    alpha_mask: bool = False  # use a photo's alpha channel as its garment mask
    processes: bool | None = None  # worker processes instead of threads (None: on 4+ cores)
    fill: float | str | None = None  # the garment's box's share of the page (0.85, "85%"); None: as drawn

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be 1-100, got {self.quality}")
        # the words extract takes ("512x384", "#RRGGBB") are parsed here too, for the Python API
        if isinstance(self.background, str):
            object.__setattr__(self, "background", parse_background(self.background))
        object.__setattr__(self, "output_size", _output_size(self.output_size))
        if self.fill is not None:
            object.__setattr__(self, "fill", parse_fill(self.fill))
        colour = self.background
        if not isinstance(colour, str) and (len(colour) != 3 or not all(0 <= int(c) <= 255 for c in colour)):
            raise ValueError(f"a background colour is (r, g, b), each 0-255, got {colour!r}")

    @property
    def use_processes(self) -> bool:
        return self.processes if self.processes is not None else physical_cores() >= PROCESS_MIN_CORES


def _output_size(value: object) -> str | int | tuple[int, int]:
    """``ExtractOptions.output_size`` as make_plan reads it: extract's words parsed, a height or
    (height, width) of whole numbers (a list, numpy integers too); ``ValueError`` for anything
    else (a float; True, which Python counts as 1: a 1x1 garment)."""
    if isinstance(value, str):
        return parse_output_size(value)
    sequence = isinstance(value, (tuple, list))
    sides = tuple(value) if sequence else (value,)  # type: ignore[arg-type]
    whole = all(isinstance(side, numbers.Integral) and not isinstance(side, bool) for side in sides)
    if whole and len(sides) == (2 if sequence else 1):
        return (int(sides[0]), int(sides[1])) if sequence else int(sides[0])
    raise ValueError(f"output size must be 'auto', 'model', a height or (height, width) in whole pixels, got {value!r}")


def generator_outputs(
    background: str | tuple[int, int, int], fill: object = None, output_size: object = None
) -> tuple[str, ...] | Callable[[ModelContract], tuple[str, ...] | None] | None:
    """The generator outputs an extraction on ``background`` reads (None: all), as ``ModelSession``
    takes them: on white, the garment alone, so that a generator's silhouette is not computed for
    nothing; all with a ``fill`` (the silhouette finds the garment's box, ``fill.garment_box``) or
    on a page of another aspect than the model's (an ``output_size`` (height, width): the garment
    is laid on the page's white by it, ``Plan.page``), which its contract says."""
    if background != "white" or fill is not None:
        return None
    if isinstance(output_size, (tuple, list)):
        page = tuple(output_size)
        return lambda contract: None if another_aspect(page, contract) else ("garment",)
    return ("garment",)


def another_aspect(size: tuple[int, int], contract: ModelContract) -> bool:
    """Whether ``size`` (height, width) is of another aspect than the model's by more than a row:
    a page (``make_plan``)."""
    (height, width), (model_h, model_w) = size, contract.size
    return abs(height * model_w - width * model_h) > model_h


# How each front end spells what make_plan refuses: the size setting, white.
SPELLINGS = {
    "cli": ("--output-size", "--background white"),
    "api": ("output_size", "background='white'"),
    "http": ("output_size", "background=white"),  # (and no server paths)
}


def make_plan(
    generator: ModelSession, segmenter: ModelSession | None, options: ExtractOptions, spelling: str = "cli"
) -> Plan:
    """The workers' view of a run; refuses settings the model cannot serve, before any work,
    in the words of the front end (``SPELLINGS``)."""
    contract = generator.contract
    size_option, white = SPELLINGS[spelling]
    model = generator.path.name if spelling == "http" else generator.path
    if (options.background != "white" or options.fill is not None) and contract.alpha:
        if "alpha" not in generator.output_names:
            raise ValueError(
                f"the session on {generator.path} was opened without its alpha output, which a background "
                "other than white or a fill needs; open it with outputs=generator_outputs(background, fill)"
            )
    if options.background != "white" and not contract.alpha:
        raise ClothesExtractorError(
            f"{model} has no silhouette output, so it cannot give a transparent or coloured background; "
            f"use {white}, the bundled generator, or a generator trained with a silhouette (train --arch "
            "silhouette or flow)"
        )
    output_size = options.output_size
    if isinstance(output_size, int):  # a height: the width that keeps the model's aspect
        output_size = (output_size, round(output_size * contract.width / contract.height))
    canvas = None
    if isinstance(output_size, tuple):
        h, w = output_size
        if min(h, w) < 1 or max(h, w) > MAX_OUTPUT_SIDE:  # (a server's clients must not ask for gigapixels)
            raise ClothesExtractorError(
                f"{size_option} {h}x{w}: each side must be 1 to {MAX_OUTPUT_SIDE} pixels (past the photo's own "
                "resolution a garment is only upsampled: resize it afterwards)"
            )
        if another_aspect(output_size, contract):  # another aspect (a square page):
            canvas, output_size = output_size, contained(output_size, contract.size)  # the garment centred on it
    background = options.background if isinstance(options.background, str) else "#%02x%02x%02x" % options.background
    size = output_size if isinstance(output_size, str) else "%dx%d" % (canvas or output_size)
    page = (" canvas" if canvas else "") + ("" if options.fill is None else " fill=%g%%" % round(options.fill * 100, 2))
    return Plan(
        generator=contract,
        segmenter=segmenter.contract if segmenter is not None else None,
        output_size=output_size,
        background=options.background,
        quality=options.quality,
        alpha_mask=options.alpha_mask,
        signature=f"model={generator.digest[:16]} size={size}{page} background={background}",
        segmenter_digest=segmenter.digest[:16] if segmenter is not None else "",
        canvas=canvas,
        fill=options.fill,
    )


def contained(canvas: tuple[int, int], aspect: tuple[int, int]) -> tuple[int, int]:
    """The largest (height, width) of ``aspect``'s proportions (a model's size) inside ``canvas``."""
    (height, width), (ah, aw) = canvas, aspect
    if height * aw <= width * ah:  # (the canvas is wider than the aspect: its height bounds it)
        return height, max(1, round(height * aw / ah))
    return max(1, round(width * ah / aw)), width
