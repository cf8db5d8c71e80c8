"""What each model task is: one description that networks, export, evaluate, training and
the bundled models all ask.

The serving side of a task (the uint8 tensors its graph takes and gives, how photos are
fitted to it) is the runtime's protocol, ``runtime.contract``; the runtime may import
nothing outside itself, so it keeps that part and this module refers to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .runtime.contract import TASK_FIT, TASK_INPUTS, TASK_OUTPUTS, TASK_PAD, TensorSpec

# The human parser's classes (a segmenter trained with ``--parser``): what the try-on stage
# needs from a person photo, merged from the LIP labels of VITON's parse maps so that a
# horizontal flip keeps every label (left and right arms are one class).
PARSER_CLASSES = ("background", "hair", "face", "upper", "other-upper", "lower", "arms", "legs")
UPPER_CLASS = PARSER_CLASSES.index("upper")
# Classes whose IoU the parser is judged by (its "labels that matter").
PARSER_SCORED = ("hair", "face", "upper", "lower", "arms")
_LIP = {
    1: "hair",  # hat
    2: "hair",
    3: "other-upper",  # glove
    4: "face",  # sunglasses
    5: "upper",
    6: "other-upper",  # dress
    7: "other-upper",  # coat
    8: "legs",  # socks
    9: "lower",  # pants
    10: "other-upper",  # jumpsuit
    11: "other-upper",  # scarf
    12: "lower",  # skirt
    13: "face",
    14: "arms",
    15: "arms",
    16: "legs",
    17: "legs",
    18: "legs",  # shoes
    19: "legs",
}
# Dress Code's label maps (label_maps/NNNNNN_4.png) use the ATR labels: the same classes
# from another numbering (its full-body photos are what teach a parser that framing)
_DRESSCODE = {
    1: "hair",  # hat
    2: "hair",
    3: "face",  # sunglasses
    4: "upper",
    5: "lower",  # skirt
    6: "lower",  # pants
    7: "other-upper",  # dress
    8: "lower",  # belt
    9: "legs",  # shoes
    10: "legs",
    11: "face",  # the head
    12: "legs",
    13: "legs",
    14: "arms",
    15: "arms",
    17: "other-upper",  # scarf (16, a bag, is background)
}


def _lookup(labels: dict[int, str]) -> np.ndarray:
    table = np.zeros(256, np.uint8)  # any other label is background
    for label, name in labels.items():
        table[label] = PARSER_CLASSES.index(name)
    return table


LIP_TO_CLASS = _lookup(_LIP)
DRESSCODE_TO_CLASS = _lookup(_DRESSCODE)


@dataclass(frozen=True)
class Task:
    name: str
    in_channels: int  # of the network (the generator sees the masked photo and the mask)
    out_channels: int
    activation: str  # "tanh" (an image in [-1, 1]) or "logits" (a mask, sigmoid in the served graph)
    description: str  # the exported model's doc string
    main_metric: str  # training keeps the best checkpoint by it (higher is better)
    worst_by: tuple[str, bool]  # (metric, higher is worse): evaluate's worst pairs
    needs_garment: bool  # its samples need the catalog garment image

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return TASK_INPUTS[self.name]

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return TASK_OUTPUTS[self.name]

    @property
    def fit(self) -> str:
        return TASK_FIT[self.name]

    @property
    def pad(self) -> str:
        return TASK_PAD[self.name]


TASKS = {
    "generator": Task(
        "generator",
        4,
        3,
        "tanh",
        "clothes-extractor garment generator: photo + garment mask -> catalog garment",
        "ssim",
        ("gmsd", True),
        True,
    ),
    "segmenter": Task(
        "segmenter",
        3,
        1,
        "logits",
        "clothes-extractor garment segmenter: photo -> garment mask",
        "iou",
        ("iou", False),
        False,
    ),
    "tryon": Task(
        "tryon",
        4,  # each side: RGB and a mask (the person painted grey where it is dressed anew; the garment)
        3,
        "tanh",
        "clothes-extractor try-on: person + catalog garment -> the person wearing it",
        "ssim",
        ("gmsd", True),
        True,
    ),
}
# The parser's classes a try-on dresses anew: the old top and the arms it shaped.
TRYON_REGION_CLASSES = ("upper", "arms")


def task_of(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None
