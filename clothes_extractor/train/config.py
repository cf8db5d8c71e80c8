"""Every setting of a training run: the ``train`` command's options, one field each.

Stored in every checkpoint (``train_config``), so a run resumes with its own settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..runtime.contract import FitSettings, ModelContract
from ..runtime.settings import unknown_key
from ..tasks import PARSER_CLASSES, TASKS, task_of
from .flow import FlowConfig
from .networks import UNetConfig
from .silhouette import SilhouetteConfig
from .tryon import TryOnConfig

LR_SCHEDULES = ("constant", "linear")
COMPOSITION_TARGETS = ("photo", "better")


def renderer_shape(path: str) -> tuple[int, int]:
    """(ngf, depth) of the U-Net generator in a served ONNX file, read from its contract."""
    from ..runtime.session import contract_of
    from .architectures import unet_of

    try:
        ngf, depth, _ = unet_of(contract_of(path).training.get("architecture") or {})
    except ValueError:
        raise ValueError(f"--renderer {path} is not a pix2pix U-Net generator") from None
    return ngf, depth


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run; the fields are the ``train`` command's options."""

    task: str = "generator"
    arch: str = "unet"  # generator: unet (pix2pix), flow (warping) or silhouette; the segmenter is a U-Net
    data: str = ""
    out: str = ""
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 8
    height: int = 256
    width: int = 192
    ngf: int = 16
    depth: int = 6  # unet: levels; flow: grid levels (the coarsest grid at 1/2**depth)
    top: int = 12  # flow: decoder channels at the full model size
    residual_px: float = 0.0  # flow: bound of each finer grid level's residual offset, in its pixels (0: none)
    relight: bool = False  # try-on: a gain per colour channel puts the catalog garment in the person's light
    renderer: str | None = None  # flow, silhouette: a served U-Net generator (ONNX) whose network renders the garment
    renderer_trainable: bool = False  # flow: fine-tune the renderer too (default: frozen)
    lr_renderer: float = 2e-6  # flow, --renderer-trainable: the renderer's rate (it starts trained)
    target_ngf: int = 16  # flow: channels of the encoder over the rendered garment
    attention: str = "none"
    dropout: bool = True
    ndf: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-5  # the seed project found D must learn ~10x slower than G
    beta1: float = 0.5
    l1_weight: float = 100.0
    gan_mode: str = "lsgan"
    gan_weight: float = 1.0
    fm_weight: float = 0.0  # discriminator feature matching (pix2pixHD)
    ssim_weight: float = 0.0
    gms_weight: float = 0.0  # 1 - mean gradient magnitude similarity (GMSD's map) of the output vs the target
    edge_weight: float = 0.0  # L1 of the output's pixel differences (its edges, signed) vs the target's
    warp_weight: float = 50.0  # flow: L1 of the sampled photo against the target, every grid level
    warp_edge_weight: float = 0.0  # flow: L1 of the sampled photo's gradients against the target's (finest grid)
    warp_mask_weight: float = 0.0  # flow: L1 of the photo's garment mask as each grid samples it vs the silhouette
    tv_weight: float = 0.02  # flow: total variation of the grid offsets (pixels)
    tv2_weight: float = 0.2  # flow: second-order variation of the grid offsets (pixels)
    composition_weight: float = 2.0  # flow: weight of the composition mask's own term
    composition: str = "photo"  # flow: "photo" (the mask on the photo inside the garment) or "better" (see objectives)
    composition_block: int = 8  # flow, "better": side of the box (pixels) over which the two sources are compared
    alpha_weight: float = 2.0  # flow: silhouette BCE + Dice
    val_fraction: float = 0.05
    val_limit: int | None = None  # validate on the first N samples only (quick runs)
    keep_val_copies: bool = False  # train on samples that are copies of validation samples (eval.overlap)
    val_every: int = 1  # validate and checkpoint every N epochs (and at the end)
    lr_schedule: str = "constant"  # or "linear": constant for the first half, then linearly to 0 (pix2pix)
    time_limit_min: float | None = None  # stop (validate, checkpoint) after this many minutes
    data_on_device: bool = False  # decode the data once, keep it on the device, augment there
    augment: bool = True
    framing: float = 0.0  # probability of a framing change per sample (zoom-out / resolution loss)
    negatives: float = 0.0  # segmenter: share of samples replaced by garment-free photos
    letterbox: float = 0.0  # segmenter: share of samples cropped to another aspect and letterboxed
    backdrops: float = 0.0  # parser: share of samples whose background is replaced (plain, gradient, blotches)
    busy: float = 0.0  # parser: share of samples on a busy backdrop (train.busy), and of negatives busy
    retexture: float = 0.0  # parser: share of samples whose garment wears another fabric (train.busy.texture)
    catalogs: float = 0.0  # segmenter: share of samples replaced by their catalog garment alone (no person)
    objects: float = 0.0  # segmenter: share of the negatives that are objects alone on a backdrop (train.products)
    full_length: float = 0.0  # parser: share of samples drawn on down to the feet (train.full_length)
    retexture_lower: float = 0.0  # parser: share of samples whose lower clothes wear another fabric
    drawn: float = 0.0  # parser: share of samples drawn in flat colours (train.scenes.with_drawn)
    scene_photos: str | None = None  # parser: a folder of photographed garment-free scenes (train.scene_photos)
    scene_share: float = 0.0  # parser: share of the busy scenes that are crops of scene_photos
    grayscale: float = 0.0  # probability of a black-and-white sample (photo, and garment or person alike)
    lighting: float = 0.0  # probability of another exposure and white balance of the photo alone
    parser: bool = (
        False  # segmenter: a human parser (the classes of tasks.PARSER_CLASSES) whose upper class is the mask
    )
    device: str = "auto"
    amp: bool = True  # CUDA only
    channels_last: bool = True  # CUDA only
    workers: int = 2
    seed: int = 0
    sheet_rows: int = 8
    log_every: int = 50
    init: str | None = None  # start from this checkpoint's network weights

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.arch not in ("unet", "flow", "silhouette"):
            raise ValueError(f"arch must be unet, flow or silhouette, got {self.arch!r}")
        if self.arch == "flow" and self.task == "segmenter":
            raise ValueError("the flow architecture is a generator or a try-on; a segmenter is a unet")
        if self.arch == "silhouette" and (self.task != "generator" or not self.renderer or self.renderer_trainable):
            raise ValueError(
                "the silhouette architecture is a generator's head: --task generator and --renderer U-NET.onnx, "
                "which stays frozen (it learns only the alpha: a trainable U-Net would drift from its garment)"
            )
        if self.renderer_trainable and not (self.arch == "flow" and self.renderer):
            raise ValueError("--renderer-trainable fine-tunes a flow network's --renderer U-NET.onnx: give one")
        if self.task == "tryon" and self.arch != "flow":
            raise ValueError("try-on is built from the warping generator's modules: --arch flow")
        if self.framing and self.task == "tryon":
            raise ValueError(
                "--framing is the segmenter's and the generator's: a try-on sample is fitted whole (person, region "
                "and garment stay aligned) and takes no framing change"
            )
        if self.relight and self.task != "tryon":
            raise ValueError("--relight is the try-on network's (--task tryon)")
        self._check_segmenter_settings()
        self._check_composition()
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        for name in ("epochs", "batch_size", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1")
        if self.time_limit_min is not None and self.time_limit_min <= 0:
            raise ValueError("time_limit_min must be > 0")

    def _check_segmenter_settings(self) -> None:
        scenes = self.negatives or self.letterbox or self.backdrops or self.busy or self.retexture or self.catalogs
        scenes = scenes or self.full_length or self.retexture_lower or self.drawn
        if self.objects and not self.negatives:
            raise ValueError("--objects is a share of the --negatives: give --negatives too")
        if (self.parser or scenes) and self.task != "segmenter":
            raise ValueError(
                "parser, negatives, letterbox, backdrops, busy, retexture, catalogs, full-length and drawn are "
                "segmenter settings"
            )
        if scenes and not self.data_on_device:
            raise ValueError(
                "--negatives, --letterbox, --backdrops, --busy, --retexture(-lower), --catalogs, --full-length and "
                "--drawn change whole batches where they lie: add --data-on-device (the data decoded once, on the "
                "training device)"
            )
        for name in ("backdrops", "busy", "retexture", "full_length", "retexture_lower", "drawn"):
            if getattr(self, name) and not self.parser:
                option = name.replace("_", "-")
                raise ValueError(f"--{option} needs --parser: a parser's labels say where the person is")
        self._check_scene_photos()

    def _check_scene_photos(self) -> None:
        if not (self.scene_photos or self.scene_share):
            return
        if not (self.scene_photos and self.scene_share):
            given, missing = ("--scene-photos", "--scene-share")[:: 1 if self.scene_photos else -1]
            raise ValueError(
                f"{given} needs {missing}: the photos (a folder) stand in for that share of the --busy scenes "
                "(e.g. --busy 0.3 --scene-photos DIR --scene-share 0.5)"
            )
        if not self.busy:
            raise ValueError(
                "--scene-photos stand in for a share of the busy scenes: give --busy too (and --parser: a parser's "
                "labels say where the person stands in front of one)"
            )
        if not Path(self.scene_photos).is_dir():
            raise ValueError(
                f"--scene-photos {self.scene_photos}: no such folder (give a folder of photos with no one in them)"
            )

    def _check_composition(self) -> None:
        if self.composition not in COMPOSITION_TARGETS:
            raise ValueError(f"composition must be one of {', '.join(COMPOSITION_TARGETS)}, got {self.composition!r}")
        if self.composition != "photo" and (self.task, self.arch) != ("generator", "flow"):
            raise ValueError("--composition better is the warping generator's (--task generator --arch flow)")
        if self.composition_block < 1:
            raise ValueError("composition_block must be >= 1")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        problem = unknown_key(data, cls)
        if problem is not None:
            raise ValueError(f"unknown training setting {problem}")
        return cls(**data)

    @property
    def architecture(self) -> str:
        """The registry name of the network (``train.architectures``)."""
        return "tryon-flow" if self.task == "tryon" else self.arch

    def network(self) -> UNetConfig | FlowConfig | TryOnConfig | SilhouetteConfig:
        if self.task == "tryon":
            return TryOnConfig(
                height=self.height, width=self.width, ngf=self.ngf, levels=self.depth, top=self.top,
                residual_px=self.residual_px, relight=self.relight,
            )  # fmt: skip
        if self.arch == "silhouette":
            ngf, depth = renderer_shape(self.renderer)
            return SilhouetteConfig(
                height=self.height, width=self.width, ngf=self.ngf, levels=self.depth,
                renderer_ngf=ngf, renderer_depth=depth, unet_features=True,
            )  # fmt: skip
        if self.arch == "flow":
            renderer = renderer_shape(self.renderer) if self.renderer else (0, 6)
            return FlowConfig(
                height=self.height,
                width=self.width,
                ngf=self.ngf,
                levels=self.depth,
                top=self.top,
                residual_px=self.residual_px,
                renderer_ngf=renderer[0],
                renderer_depth=renderer[1],
                target_ngf=self.target_ngf,
            )
        return UNetConfig(
            task=self.task,
            height=self.height,
            width=self.width,
            ngf=self.ngf,
            depth=self.depth,
            dropout=self.dropout and self.task == "generator",
            attention=self.attention,
            classes=len(PARSER_CLASSES) if self.parser else 0,
        )

    def contract(self) -> ModelContract:
        """The contract the exported model will carry: training fits data by it."""
        return ModelContract(
            task=self.task,
            height=self.height,
            width=self.width,
            fit=FitSettings(method=task_of(self.task).fit, pad=task_of(self.task).pad),
            catalog_resolution=self.architecture == "flow",
            alpha=self.architecture in ("flow", "silhouette"),
            labels=PARSER_CLASSES if self.parser else (),
        )
