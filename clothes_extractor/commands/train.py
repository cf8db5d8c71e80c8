"""``clothes-extractor train``: train a generator, a segmenter or a try-on network (needs the
[train] extra).

It is long because its option table (some sixty options, one per training setting) is most
of it; the training itself is in ``clothes_extractor.train``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import click

from .common import CheckpointPath, LocalPath, given_options, parse_size, reports_errors, require_torch, verbose_option


def share_option(flag: str, help: str):
    """A share of the training samples, 0 to 1 (an augmentation's probability)."""
    return click.option(flag, type=click.FloatRange(0, 1), default=0.0, show_default=True, help=help)


@click.command()
@click.option(
    "--task",
    type=click.Choice(["generator", "segmenter", "tryon"]),
    default="generator",
    show_default=True,
    help="tryon: dress a person in a catalog garment (--arch flow; VITON's parse maps).",
)
@click.option(
    "--arch",
    type=click.Choice(["unet", "flow", "silhouette"]),
    default="unet",
    show_default=True,
    help="Generator: unet (pix2pix, regenerates every pixel), flow (warps the photo's own pixels) or "
    "silhouette (a trained U-Net, --renderer, with a silhouette head for transparent backgrounds).",
)
@click.option(
    "--data",
    required=True,
    type=LocalPath(path_type=Path, exists=True, file_okay=False),
    help="Dataset: VITON-HD, CP-VTON/VITON or triplet layout; a root with splits or one split.",
)
@click.option("-o", "--output", "out", type=LocalPath(path_type=Path, file_okay=False), help="Run folder.  [required]")
@click.option("--out", "out_alias", type=LocalPath(path_type=Path, file_okay=False), hidden=True)
@click.option(
    "--resume",
    type=LocalPath(path_type=Path, exists=True, dir_okay=False),
    help="Continue a run exactly from its last.pt: its settings, where --epochs, --max-steps and --time-limit "
    "may change where it stops.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the run already in the -o folder (its checkpoints, metrics and sheets) with a new one.",
)
@click.option(
    "--init",
    type=CheckpointPath(exists=True),
    help="Start from the network weights (same architecture and settings) of this checkpoint (or run folder: "
    "its best.pt, else last.pt), or of this "
    "served model (.onnx: a bundled model, or one export wrote), with fresh optimizers. --arch unet takes "
    "the U-Net a silhouette model draws its garment with (the bundled generator's: --ngf 32).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after this many steps in all.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Per process.")
@click.option("--size", default="256x192", show_default=True, help="Model input HEIGHTxWIDTH.")
@click.option("--ngf", type=click.IntRange(min=2), default=16, show_default=True, help="Network width (channels).")
@click.option(
    "--depth", type=click.IntRange(min=2), default=6, show_default=True, help="U-Net levels; flow: grid levels."
)
@click.option("--top", type=click.IntRange(min=1), default=12, show_default=True, help="Flow: channels at full size.")
@click.option(
    "--residual-px",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Flow: bound each finer grid level's residual offset to this many of its pixels (0: unbounded).",
)
@click.option(
    "--relight",
    is_flag=True,
    help="Try-on: a gain on each colour channel of the catalog garment, read from the photo, puts it in the "
    "person's light (train it with --lighting).",
)
@click.option(
    "--renderer",
    type=LocalPath(exists=True, dir_okay=False),
    help="Flow, silhouette: a served U-Net generator (ONNX) whose network renders the garment (flow: the grid "
    "aligns the photo to it; silhouette: the garment is its own). Frozen, it is this file's U-Net with --init "
    "too (a silhouette head from --init re-paired with a retrained U-Net).",
)
@click.option("--renderer-trainable", is_flag=True, help="Flow: fine-tune the renderer too (default: frozen).")
@click.option("--lr-renderer", type=float, default=2e-6, show_default=True, help="--renderer-trainable: its rate.")
@click.option(
    "--target-ngf", type=click.IntRange(min=1), default=16, show_default=True, help="Flow: renderer encoder width."
)
@click.option("--attention", type=click.Choice(["none", "scse"]), default="none", show_default=True)
@click.option("--dropout/--no-dropout", default=True, show_default=True, help="Generator dropout (pix2pix).")
@click.option("--ndf", type=click.IntRange(min=1), default=64, show_default=True, help="PatchGAN width.")
@click.option("--lr-g", type=float, default=2e-4, show_default=True, help="Generator/segmenter learning rate.")
@click.option("--lr-d", type=float, default=2e-5, show_default=True, help="Discriminator learning rate.")
@click.option("--l1-weight", type=float, default=100.0, show_default=True)
@click.option("--gan-mode", type=click.Choice(["lsgan", "vanilla"]), default="lsgan", show_default=True)
@click.option("--gan-weight", type=float, default=1.0, show_default=True, help="0: L1 (+ SSIM) only, no discriminator.")
@click.option("--ssim-weight", type=float, default=0.0, show_default=True, help="Add (1 - SSIM) x this to the loss.")
@click.option(
    "--gms-weight",
    type=float,
    default=0.0,
    show_default=True,
    help="Add (1 - mean gradient magnitude similarity) x this to the loss: the catalog image's edges where it has "
    "them, as strong, none where it has none (the map whose deviation is GMSD, evaluate's edge score). A magnitude "
    "is matched wherever it is drawn: on a U-Net it invented stripes (models/generator.md).",
)
@click.option(
    "--edge-weight",
    type=float,
    default=0.0,
    show_default=True,
    help="Add L1 of the output's horizontal and vertical pixel differences against the catalog image's x this: its "
    "edges where they are, signed (a texture whose place the photo does not say averages out, not invented).",
)
@click.option("--fm-weight", type=float, default=0.0, show_default=True, help="Discriminator feature matching.")
@click.option("--warp-weight", type=float, default=50.0, show_default=True, help="Flow: sampled photo vs target.")
@click.option(
    "--warp-edge-weight", type=float, default=0.0, show_default=True, help="Flow: sampled photo's edges vs target's."
)
@click.option(
    "--warp-mask-weight",
    type=float,
    default=0.0,
    show_default=True,
    help="Flow: the photo's garment mask as the grid samples it vs the catalog silhouette (every grid level).",
)
@click.option("--tv-weight", type=float, default=0.02, show_default=True, help="Flow: grid total variation.")
@click.option("--tv2-weight", type=float, default=0.2, show_default=True, help="Flow: grid second-order variation.")
@click.option(
    "--composition-weight", type=float, default=2.0, show_default=True, help="Flow: weight of the composition term."
)
@click.option(
    "--composition",
    type=click.Choice(["photo", "better"]),
    default="photo",
    show_default=True,
    help="Flow: the composition mask's target: the photo inside the garment, or whichever of the sampled "
    "photo and the rendering is nearer the catalog image (over --composition-block pixels).",
)
@click.option(
    "--composition-block", type=click.IntRange(min=1), default=8, show_default=True, help="Flow: see --composition."
)
@click.option("--alpha-weight", type=float, default=2.0, show_default=True, help="Flow: silhouette BCE + Dice.")
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 0.5, min_open=True),
    default=0.05,
    show_default=True,
    help="Seeded validation share when the data has no validation split.",
)
@click.option("--val-limit", type=click.IntRange(min=1), default=None, help="Validate on the first N samples only.")
@click.option(
    "--keep-val-copies",
    is_flag=True,
    help="Also train on training samples whose photo or catalog image is a copy of a validation sample's "
    "(left out by default: VITON's validation split is mostly copies of training pairs).",
)
@click.option(
    "--val-every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Validate and checkpoint every N epochs.",
)
@click.option(
    "--lr-schedule",
    type=click.Choice(["constant", "linear"]),
    default="constant",
    show_default=True,
    help="linear: constant for the first half of the run, then linearly to 0 (pix2pix).",
)
@click.option(
    "--time-limit",
    "time_limit_min",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many minutes (then validate and checkpoint); the schedule follows the clock.",
)
@click.option(
    "--data-on-device",
    is_flag=True,
    help="Decode the data once and keep it on the device, augmenting there: GPU epochs in seconds "
    "(needs H x W x 7 bytes per sample of device memory, 2.4 GB for VITON at 256x192).",
)
@click.option("--augment/--no-augment", default=True, show_default=True)
@click.option(
    "--parser",
    is_flag=True,
    help="Segmenter: a human parser (hair, face, upper, other upper, lower, arms, legs) from human parsings "
    "(VITON's LIP parse maps, Dress Code's label maps); its upper-clothes probability is the garment mask.",
)
@share_option(
    "--negatives",
    "Segmenter: share of samples replaced by photos with no garment (plain, gradients, noise).",
)
@share_option(
    "--letterbox",
    "Segmenter: share of samples (garment-free ones too) cropped to another aspect, 0.4 to 2.4 wide per tall, "
    "and letterboxed as extract letterboxes such a photo (the rest of the frame in the photo's border colour).",
)
@share_option(
    "--backdrops",
    "Parser: share of samples put on another backdrop (a plain colour, a gradient or smooth blotches of any "
    "colour where the labels say background), so that a person on a coloured or dark studio wall is not new.",
)
@share_option(
    "--busy",
    "Parser: share of samples put in front of a busy scene, drawn (a room with its floor and furniture, shelves, "
    "bricks or tiles, stripes, wood, foliage, lights out of focus), and that share of the --negatives busy, so "
    "that a person photographed outside a studio is not new.",
)
@share_option(
    "--retexture",
    "Parser: share of samples whose garment wears another fabric: a texture as --busy draws them (stripes, "
    "checks, wood, stone, blurred dots), shaded by the garment's own light, so that a busy pattern is no "
    "sign of background.",
)
@share_option(
    "--retexture-lower",
    "Parser: share of samples (chosen apart from --retexture's) whose lower clothes wear another fabric, as "
    "--retexture gives the garment one, so that a patterned fabric is no sign of a top either (a parser "
    "trained with retextured tops took parts of full-body photos' jeans for a top).",
)
@share_option(
    "--objects",
    "Segmenter: share of the --negatives that are product photos of things that are no garment (a bag, a shoe, "
    "a box, a bottle, a mug, a hat, a plate, a watch, drawn alone on a backdrop), so that an object photographed "
    "as a garment alone is not taken for one.",
)
@share_option(
    "--full-length",
    "Parser: share of samples drawn as full-length studio shots: the person, cut at the thighs in VITON's "
    "photos, drawn on down to the feet (trousers in the photo's bottom colours, half of them light ones near "
    "the wall's colour, and shoes, labelled lower clothes and legs), its top cut off down to the neck at most, "
    "the whole figure fitted into the frame, so that a full-body photo's small top is not new (nor taken for an "
    "object, with --objects).",
)
@share_option(
    "--drawn",
    "Parser: share of samples drawn in flat colours: each of the person's parts (hair, face, top, lower clothes, "
    "arms, legs) painted in one colour, its own mean or another, on a plain backdrop, labels unchanged, so that a "
    "person drawn in flat colours is a person (with --objects alone, two drawn figures in one photo were taken "
    "for objects).",
)
@click.option(
    "--scene-photos",
    type=LocalPath(path_type=Path),
    default=None,
    help="Parser, with --busy and --scene-share: a folder of photos with no one in them (rooms, streets, tables, "
    "nature; JPEG, PNG, WebP, BMP or TIFF, subfolders too), whose seeded crops stand in for that share of the "
    "busy scenes, behind persons and among the --negatives, so that a photographed scene is neither new nor a "
    "garment (a parser taught only drawn scenes finds one in half the crops of real ones).",
)
@share_option(
    "--scene-share",
    "Parser: share of the --busy scenes (behind persons and among the --negatives) that are crops of the "
    "--scene-photos, the rest drawn.",
)
@share_option(
    "--catalogs",
    "Segmenter: share of samples replaced by their catalog garment alone (the garment labelled, the rest "
    "background; at the frame's scale, then on backdrops and letterboxed as photos are), so that a garment "
    "photographed alone is told apart from a person wearing one. The catalog images are held beside the photos.",
)
@share_option(
    "--grayscale",
    "Share of samples shown in black and white (the photo, and the catalog garment or try-on garment alike), "
    "so that a black-and-white photo is not new.",
)
@share_option(
    "--lighting",
    "Share of samples whose photo alone is shown in another light: exposure x0.4 to x1.3 and each colour "
    "channel x0.75 to x1.25 (a catalog garment keeps its colours; a try-on person takes the light).",
)
@share_option(
    "--framing",
    "Share of samples given a framing change: zoomed out (segmenter) or resampled smaller (generator).",
)
@click.option(
    "--alone-head",
    is_flag=True,
    help="Parser: keep the --init parser as it is (frozen: every mask and class map stays its own) and train a "
    "head on its features that tells a garment shown alone (a catalog image, a flat lay) from a worn one, on "
    "scenes made from --data's pairs (--epochs: the head's passes; --val-limit, --seed). Writes best.pt and "
    "metrics.json; export serves it with the parser (an 'alone' output, read by extract and tryon).",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--amp/--no-amp", default=True, show_default=True, help="Mixed precision (CUDA only).")
@click.option("--channels-last/--no-channels-last", default=True, show_default=True, help="CUDA only.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Data loader processes.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--log-every", type=click.IntRange(min=1), default=50, show_default=True)
@verbose_option
@reports_errors
def train(resume: Path | None, overwrite: bool, size: str, out_alias: Path | None, alone_head: bool, **options) -> None:
    """Train a generator (pix2pix U-Net or warping), a garment segmenter or parser (U-Net), or
    a try-on network (the warping generator's modules).

    Writes RUN/last.pt, best.pt, metrics.jsonl/.csv and contact sheets. For several GPUs:
    torchrun --nproc_per_node N -m clothes_extractor train ...
    """
    options["out"] = options["out"] or out_alias
    if options["out"] is None:
        raise click.UsageError("Missing option '-o' / '--output' (the run folder).")
    require_torch("train")
    if alone_head:
        _train_alone_head(options, resume, overwrite)
        return
    import dataclasses

    from ..runtime.files import held_folder
    from ..train.architectures import build
    from ..train.checkpoint import load_resumable
    from ..train.loop import TrainConfig
    from ..train.loop import train as run
    from ..train.served_init import load_init

    height, width = parse_size(size)
    values = {**options, "height": height, "width": width, "data": str(options["data"]), "out": str(options["out"])}
    values["scene_photos"] = str(options["scene_photos"]) if options["scene_photos"] else None
    try:
        config = TrainConfig.from_dict(values)
        if resume is not None:
            # A resumed run keeps its own settings; only the stopping point may change.
            # (a run from before --keep-val-copies trained on the copies)
            saved = TrainConfig.from_dict({"keep_val_copies": True, **load_resumable(resume)["train_config"]})
            changed = {name: getattr(config, name) for name in _resume_changes(config, saved, resume)}
            config = dataclasses.replace(saved, out=config.out, data=config.data, workers=config.workers, **changed)
        config.network()  # the network's own checks (--size against --depth) before any work
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if config.init is not None and resume is None:  # its kind and settings, before the data loads (minutes)
        said = logging.getLogger("clothes_extractor.train")  # (what it says of the file, the run says)
        level, _ = said.level, said.setLevel(logging.ERROR)
        try:
            load_init(config.init, build(config.architecture, dataclasses.asdict(config.network())), "--init")
        finally:
            said.setLevel(level)
    first = os.environ.get("RANK", "0") == "0"  # (under torchrun, the first process: it writes the run)
    with held_folder(options["out"], _busy(options["out"])) if first else contextlib.nullcontext():
        if first:
            _check_run_folder(options["out"], resume, overwrite)
        out = run(config, resume)
    if first:  # under torchrun, only the first process reports
        click.echo(f"run folder: {out} (last.pt, best.pt, metrics.csv, sheets/)")


ALONE_HEAD_TAKES = ("alone_head", "task", "parser", "init", "data", "out", "out_alias", "epochs", "val_limit", "seed")
ALONE_HEAD_TAKES += ("overwrite", "verbose")


def _train_alone_head(options: dict[str, Any], resume: Path | None, overwrite: bool) -> None:
    """``--alone-head``: a frozen parser's head, fitted in minutes on the CPU (``train.alone``)."""
    other = [max(p.opts, key=len) for p in given_options() if p.name not in ALONE_HEAD_TAKES]
    if other or resume is not None or options["task"] != "segmenter" or options["init"] is None:
        raise click.UsageError(
            "--alone-head trains a head on a parser: give --task segmenter, --init PARSER (a served .onnx or a "
            "checkpoint), --data and -o (and --epochs, --val-limit, --seed)"
            + (f"; it takes no {', '.join(other)}" if other else "")
        )
    from ..runtime.files import held_folder
    from ..train.alone import train_alone

    with held_folder(options["out"], _busy(options["out"])):
        _check_run_folder(options["out"], None, overwrite)
        metrics = train_alone(
            options["init"], options["data"], options["out"], epochs=options["epochs"],
            val_limit=options["val_limit"] or 500, seed=options["seed"],
        )  # fmt: skip
    val = metrics["validation"]
    click.echo(
        f"validation: {val['catalogs_found']} of {val['catalogs']} garments shown alone found, "
        f"{val['photos_taken_alone']} of {val['photos']} photos of a worn garment taken for one"
    )
    click.echo(f"run folder: {options['out']} (best.pt, metrics.json)")


def _busy(out: Path) -> str:
    return f"-o {out} is being trained right now by another process: wait for it, or give another folder"


RESUME_MAY_CHANGE = ("epochs", "max_steps", "time_limit_min", "log_every")  # else the run's own
RESUME_GIVES = ("resume", "overwrite", "out", "out_alias", "data", "workers", "verbose")


def _resume_changes(config: Any, saved: Any, resume: Path) -> list[str]:
    """The settings a --resume command line changes: only where the run stops (and how often it
    logs). Another setting given with a value other than the run's own is refused (it would be
    ignored); the same command line again plus --resume is fine."""
    given = given_options()
    fields = {"size": ("height", "width")}
    differ = [
        p
        for p in given
        if p.name not in (*RESUME_MAY_CHANGE, *RESUME_GIVES)
        and any(getattr(config, f, None) != getattr(saved, f, None) for f in fields.get(p.name, (p.name,)))
    ]
    if differ:
        options = ", ".join(max(p.opts, key=len) for p in differ)
        raise click.UsageError(
            f"{options}: a resumed run keeps its own settings (it may change --epochs, --max-steps, "
            "--time-limit, --log-every, --data, --workers); to change them, start from its weights: "
            f"--init {resume}"
        )
    return [p.name for p in given if p.name in RESUME_MAY_CHANGE]


RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "metrics.csv", "config.json")


def _check_run_folder(out: Path, resume: Path | None, overwrite: bool) -> None:
    """One run per folder: a folder that holds another run is refused (its checkpoints would be
    replaced, its metrics mixed with the new run's) unless --resume continues that run, or
    --overwrite removes its files first."""
    found = [name for name in RUN_FILES if (out / name).is_file()]
    if found in ([], ["config.json"]) or (resume is not None and resume.resolve().parent == out.resolve()):
        return  # (only the settings of a run that stopped before its first checkpoint: nothing to lose)
    if not overwrite:
        resume_it = f"continue it with --resume {out / 'last.pt'}, " if "last.pt" in found else ""
        raise click.UsageError(
            f"-o {out} already holds a run ({', '.join(found)}): {resume_it}give a new folder, or --overwrite "
            "to replace it"
        )
    for path in [out / name for name in found] + sorted((out / "sheets").glob("epoch_*.png")):
        path.unlink()
