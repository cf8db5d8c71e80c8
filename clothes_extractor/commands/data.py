"""``clothes-extractor data``: synthetic triplets, downsampled dataset copies, and the copies
between a dataset's splits."""

from __future__ import annotations

from pathlib import Path

import click

from .common import LocalPath, Progress, parse_size, reports_errors, verbose_option


@click.group()
def data() -> None:
    """Make datasets (synthetic triplets, smaller copies of real ones) and check them."""


@data.command()
@click.argument("dest", type=LocalPath(path_type=Path, file_okay=False))
@click.option("-n", "count", type=click.IntRange(min=1), required=True, help="How many triplets.")
@click.option("--size", default="256x192", show_default=True, help="HEIGHTxWIDTH.")
@click.option("--seed", type=int, default=0, show_default=True)
@verbose_option
@reports_errors
def synth(dest: Path, count: int, size: str, seed: int) -> None:
    """Write N deterministic synthetic triplets (photo/, mask/, garment/) to DEST, a new or
    empty folder."""
    from ..data.synth import write_synthetic

    written = write_synthetic(dest, count, seed, parse_size(size))
    click.echo(f"wrote {written} triplets to {dest} (photo/, mask/, garment/)")


@data.command()
@click.argument("src", type=LocalPath(path_type=Path, exists=True, file_okay=False))
@click.argument("dst", type=LocalPath(path_type=Path, file_okay=False))
@click.option(
    "--size",
    required=True,
    help="Output HEIGHT (the width keeps each image's aspect), or HEIGHTxWIDTH where that is the photos' aspect.",
)
@click.option("--files", type=click.IntRange(min=1), default=None, help="Keep only the first N samples per split.")
@verbose_option
@reports_errors
def downsample(src: Path, dst: Path, size: str, files: int | None) -> None:
    """Copy the dataset SRC (any supported layout) to DST, a new or empty folder, at a smaller
    height; its pairs files come along."""
    from ..data.downsample import downsample_dataset

    height, width = (int(size), None) if size.isdigit() else parse_size(size)  # (the width: a check of the aspect)
    if height < 8:
        raise click.BadParameter(f"{size!r}: the height must be at least 8", param_hint="--size")

    shown: list[Progress] = []  # (made at the first sample: the total is counted by then)

    def progress(_done: int, total: int) -> None:
        if not shown:
            shown.append(Progress(total, "sample", "downsample"))
        shown[0].update()

    try:
        written = downsample_dataset(src, dst, height, files, width, progress)
    finally:
        for bar in shown:
            bar.close()
    click.echo(f"wrote {written} samples to {dst} at height {height}")


@data.command()
@click.argument("dataset", type=LocalPath(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--held-out-pairs",
    type=LocalPath(path_type=Path, dir_okay=False),
    help="Write the validation pairs that are not copies of training pairs, PHOTO GARMENT per line "
    "(the pairs-file format of VITON and VITON-HD).",
)
@click.option(
    "--unseen-by",
    type=LocalPath(path_type=Path, exists=True, dir_okay=False),
    help="Pairs file of the training pairs a model learned from (PHOTO GARMENT per line); with --unseen-pairs.",
)
@click.option(
    "--unseen-pairs",
    type=LocalPath(path_type=Path, dir_okay=False),
    help="Write the training pairs that are not in --unseen-by and not copies of them (photo or catalog "
    "image): what a model built on that one (the warping generator on its renderer) can learn from "
    "without the first one's memory.",
)
@click.option(
    "--val-fraction", type=float, default=0.05, show_default=True, help="As in training, without a val split."
)
@click.option("--seed", type=int, default=0, show_default=True, help="As in training, for the seeded split.")
@verbose_option
@reports_errors
def overlap(
    dataset: Path,
    held_out_pairs: Path | None,
    unseen_by: Path | None,
    unseen_pairs: Path | None,
    val_fraction: float,
    seed: int,
) -> None:
    """Copies between DATASET's training and validation splits (the same photo or catalog
    image, byte for byte, under any name) and repeats inside each: what train leaves out of
    training and evaluate reports apart. With --unseen-by, also the training pairs that a
    model trained on those pairs has not seen in any form."""
    from ..eval.datasets import load_samples
    from ..eval.overlap import copies, repeats
    from ..runtime.files import check_writable_file, write_atomic

    if (unseen_by is None) != (unseen_pairs is None):
        raise click.UsageError("--unseen-by and --unseen-pairs go together")
    outputs = {"--held-out-pairs": held_out_pairs, "--unseen-pairs": unseen_pairs}
    _check_pairs_outputs(dataset, outputs, unseen_by)
    for option, path in outputs.items():
        if path is not None:
            check_writable_file(path, option, (".txt",))
    common = {"val_fraction": val_fraction, "seed": seed, "require_garment": False}
    train, val = load_samples(dataset, "train", **common), load_samples(dataset, "val", **common)
    for name, samples in (("train", train), ("val", val)):
        click.echo(f"{name}: {len(samples)} samples, {len(samples) - repeats(samples)} distinct photos")
    seen = copies(val, train)
    click.echo(
        f"{sum(seen)} of the {len(val)} validation samples are copies of training samples (photo or catalog "
        f"image, byte for byte); {len(val) - sum(seen)} held out"
    )
    if held_out_pairs is not None:
        kept = [s for s, copy in zip(val, seen, strict=True) if not copy and s.garment is not None]
        write_atomic(held_out_pairs, _pairs_text(kept))
        click.echo(f"wrote {len(kept)} held-out pairs to {held_out_pairs}")
    if unseen_by is not None:
        _write_unseen(dataset, train, unseen_by, unseen_pairs)


def _check_pairs_outputs(dataset: Path, outputs: dict[str, Path | None], unseen_by: Path | None) -> None:
    """Refuse a pairs file to write that would replace an input: the --unseen-by file, the
    other output, or a pairs file DATASET reads (which catalog image each photo wears)."""
    from ..eval.datasets import pairs_files, split_folders
    from ..runtime.files import same_file

    read = [path for split in split_folders(dataset) for path in pairs_files(split)]
    for option, path in outputs.items():
        if path is None:
            continue
        if unseen_by is not None and same_file(path, unseen_by):
            raise click.UsageError(f"{option} {path} is the --unseen-by file; write the pairs to another file")
        if any(path.resolve() == pairs.resolve() for pairs in read):
            raise click.UsageError(
                f"{option} {path} is a pairs file of {dataset} (which catalog image each photo wears); "
                "write the pairs to another file"
            )
    if None not in outputs.values() and len({path.resolve() for path in outputs.values()}) == 1:
        raise click.UsageError("--held-out-pairs and --unseen-pairs name the same file; give each its own")


def _write_unseen(dataset: Path, train, unseen_by: Path, out: Path) -> None:
    """``--unseen-pairs``: the training pairs neither in ``unseen_by`` nor copies of them."""
    from ..eval.overlap import copies, repeats
    from ..runtime.files import write_atomic

    learned = {line.split()[0] for line in unseen_by.read_text().splitlines() if line.strip()}
    known = [s for s in train if s.photo.name in learned]
    if not known:
        raise click.UsageError(f"--unseen-by: none of its photos is in {dataset}'s training split")
    rest = [s for s in train if s.photo.name not in learned]
    kept = [s for s, copy in zip(rest, copies(rest, known), strict=True) if not copy and s.garment is not None]
    write_atomic(out, _pairs_text(kept))
    click.echo(
        f"{len(known)} training pairs learned ({unseen_by.name}); of the other {len(rest)}, "
        f"{len(rest) - len(kept)} are copies of them; wrote {len(kept)} pairs "
        f"({len(kept) - repeats(kept)} distinct photos) to {out}"
    )


def _pairs_text(samples) -> bytes:
    """The pairs-file format of VITON and VITON-HD: PHOTO GARMENT per line."""
    return "".join(f"{s.photo.name} {s.garment.name}\n" for s in samples).encode()
