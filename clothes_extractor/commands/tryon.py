"""``clothes-extractor tryon``: dress persons in garments (one pair, a pairs file, folders)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from ..errors import InputError, files_named
from ..runtime.providers import PROVIDER_CHOICES
from .common import (
    LocalPath,
    Progress,
    batch_size_option,
    check_stdin_piped,
    once,
    report_options,
    reports_errors,
    shard_option,
    tryon_resolution_option,
    verbose_option,
)
from .given import as_given, fetched, in_words
from .one_output import (
    check_stdout_takes_an_image,
    format_option,
    names_an_image_file,
    one_output,
    scratch_folder,
    write_to_stdout,
)
from .reports import SHEET_ROWS, SHEET_SUFFIXES, Report, check_side_files, report_dry_run, write_sheet
from .tryon_pairs import check_pairs_options, find_pairs
from .tryon_summary import Failures, error_line, say_watched, sheet_row, summarise
from .watching import check_tryon_watch, stopped_by_signals

if TYPE_CHECKING:
    from ..runtime.pairs import Pairs
    from ..runtime.stage_one import Catalog


class _InputsAsOptions(click.Command):
    """``tryon``: its images are options. A person and a garment typed as arguments
    (``tryon me.jpg shirt.png -o out.png``) are refused with the command to type, rather
    than with click's "Missing option '--person'" (which leaves the two words unexplained)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = [p for p in self.params if isinstance(p, click.Option) and not (p.is_flag or p.count)]
        valued = {name for option in takes_value for name in option.opts}
        stray, value_next = [], False
        for token in args:
            if value_next:
                value_next = False
            elif token.startswith("-") and token != "-":
                value_next = token in valued  # (its value the next token; "--person=x" carries its own)
            else:
                stray.append(token)
        if stray and "--help" not in args:
            first = " ".join(stray[:2])
            raise click.UsageError(
                f"tryon takes its images as options, not as arguments ({first}): "
                "clothes-extractor tryon --person PERSON --garment GARMENT -o OUT (--garment-from PHOTO for a "
                "photo of someone wearing it)",
                ctx,
            )
        return super().parse_args(ctx, args)


def _input_option(*decls: str, what: str, required: bool = False) -> Callable[[Callable[..., Any]], Any]:
    """A person or garment input: one file, an http(s) URL (fetched: ``given.fetched``), ``-`` for
    standard input (read into a file the same way), or a folder."""
    return click.option(
        *decls,
        required=required,
        multiple=True,
        callback=once("one file, or a folder of them"),
        type=LocalPath(path_type=Path, exists=True, urls=True, allow_dash=True),
        metavar="PATH|URL|-",
        help=what.format(kind="a file, an http(s) URL, or - for standard input"),
    )


@click.command(cls=_InputsAsOptions)
@_input_option("--person", what="A person photo ({kind}), or a folder of them.", required=True)
@_input_option(
    "--garment",
    what="A catalog garment image (on white, transparent or a plain backdrop; {kind}), or a folder of them.",
)
@_input_option(
    "--garment-from",
    "garment_from",
    what="A photo of someone wearing the garment ({kind}), or a folder of them: stage one (extract) makes the "
    "catalog image first.",
)
@click.option(
    "--pairs",
    multiple=True,
    callback=once("one pairs file (their lines in one)"),
    type=LocalPath(path_type=Path, exists=True, dir_okay=False),
    help="Who wears what: lines 'PERSON GARMENT' (file names in the --person and --garment folders, "
    "as VITON's test_pairs.txt).",
)
@click.option(
    "--all-pairs",
    is_flag=True,
    help="--person and the garment both folders: dress every person in every garment (a garment at a time).",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=LocalPath(path_type=Path),
    help="The image to write for one pair (.png/.jpg/.webp), else a folder: PERSON__GARMENT.FORMAT.",
)
@click.option(
    "-r",
    "--recursive",
    is_flag=True,
    help="Also take the photos in the subfolders of the --person (or garment) folder; the outputs mirror them.",
)
@click.option(
    "--sheet",
    type=LocalPath(path_type=Path, dir_okay=False),
    help="Write a contact sheet (person | garment | dressed) of the first pairs dressed (.png/.jpg/.webp).",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Go on after the photos in the --person folder (or the garment's; with --all-pairs, both): dress the "
    "pairs of each photo that comes into it later, or changes, once it is written whole (the folder is walked "
    "every 2 s, a large one less often), until Ctrl-C or SIGTERM, which finishes the pairs in flight and ends as "
    "a job does.",
)
@click.option("--model", type=LocalPath(path_type=Path, dir_okay=False), help="Try-on model (default: bundled).")
@click.option(
    "--parser",
    type=LocalPath(path_type=Path, dir_okay=False),
    help="Parser model that finds what to dress anew (default: the bundled segmenter, a parser).",
)
@click.option(
    "--generator",
    type=LocalPath(path_type=Path, dir_okay=False),
    help="With --garment-from: the generator model (default: bundled).",
)
@tryon_resolution_option("--resolution", "resolution", "The try-on")
@click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default="auto", show_default=True)
@batch_size_option("pair")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Threads that read the photos (decode, fit), and as many that paste, encode and write the results  "
    "[default: CPU count, at most 16]",
)
@format_option
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG/WebP quality.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Redo pairs whose output already exists, and replace files there that this tool did not write.",
)
@shard_option("pair")
@report_options("pair", "dress")
@verbose_option
@reports_errors
def tryon(output: Path, **options: Any) -> None:
    """Dress the person of each --person photo in a garment: the garment image of --garment,
    or the garment worn in a --garment-from photo (stage one, then stage two).

    The output is the whole person photo at its own resolution: only the upper clothes and
    arms are redrawn. Finished outputs are skipped on a rerun; the exit code is 0 only if
    every pair succeeded.
    """
    if (options["garment"] is None) == (options["garment_from"] is None):
        raise click.UsageError("give the garment: --garment IMAGE|FOLDER or --garment-from PHOTO|FOLDER")
    to_stdout = options["to_stdout"] = str(output) == "-"
    if to_stdout and options["dry_run"]:
        raise click.UsageError("--dry-run writes no image: leave out -o -")
    if to_stdout:
        check_stdout_takes_an_image()
    single = to_stdout or names_an_image_file(output, "results")
    check_pairs_options(options)
    if options["shard"] is not None and single:
        raise click.UsageError("--shard splits a folder job: one pair to one file is not split")
    if options["watch"]:
        check_tryon_watch(options, single)
    _check_stdin(options)
    with scratch_folder() as scratch:  # (URLs fetched into it: messages and the report name them as given)
        options["given"] = fetched(options, ("person", "garment", "garment_from"), scratch)
        with files_named(in_words(options["given"])):
            _tryon(output, single, scratch, options)


def _check_stdin(options: dict[str, Any]) -> None:
    """``UsageError`` where more than one image is to come from standard input, or it is a terminal."""
    dashes = [f"--{name.replace('_', '-')}" for name in ("person", "garment", "garment_from") if options[name] == "-"]
    if len(dashes) > 1:
        raise click.UsageError(f"standard input holds one image: give - to one of {', '.join(dashes)} only")
    if dashes:
        example = f"curl -s https://shop.example/photo.jpg | clothes-extractor tryon {dashes[0]} - ... -o OUT.png"
        check_stdin_piped(f"{dashes[0]} -", example)


def _tryon(output: Path, single: bool, scratch: Callable[[], Path], options: dict[str, Any]) -> None:
    garments, to_stdout, shard = options["garment"] or options["garment_from"], options["to_stdout"], options["shard"]
    pairs = find_pairs(options["person"], garments, options, output, shard)
    try:
        total, every = pairs.count()
    except InputError:
        if not options["watch"]:
            raise
        total = every = 0  # (a folder with no photos yet: they are to come)
    if total == 0 and not options["watch"]:
        click.echo(f"shard {shard} holds none of the {every} pairs: nothing to do", err=True)
        return
    if single and total != 1:
        where = "-o - (standard output) takes one pair" if to_stdout else "-o must be a folder, not an image file"
        raise click.UsageError(f"{total} pairs to dress: {where}")
    target = one_output(output, options["fmt"], scratch, Path("dressed", "result")) if single else output
    _run(pairs, total, target, single, scratch, options)
    if to_stdout:
        write_to_stdout(target)


def _open(options: dict[str, Any]) -> tuple[Any, Any]:
    """The dresser, and with --garment-from the generator of its stage one (its digest is in the
    outputs' signature, so it is opened even where every pair is done already)."""
    from ..api import new_session
    from ..runtime.dressing import Dresser
    from ..runtime.options import generator_outputs

    tryon_model = new_session(options["model"] or "tryon", options["provider"])
    parser = new_session(options["parser"] or "segmenter", options["provider"])
    generator = None
    if options["garment_from"] is not None:  # (catalog images on white: the generator's silhouette is not computed)
        generator = new_session(
            options["generator"] or "generator", options["provider"], outputs=generator_outputs("white")
        )
    garments_by = generator.digest if generator is not None else ""
    return Dresser(tryon_model, parser, resolution=options["resolution"], garments_by=garments_by), generator


def _run(
    pairs: Pairs, total: int, output: Path, single: bool, scratch: Callable[[], Path], options: dict[str, Any]
) -> None:
    from ..eval.sheets import dressing_sheet
    from ..runtime.dress_jobs import DressResult, preview_dressing, run_dressing
    from ..runtime.files import check_output_dir, check_writable_file, remove_stale_partials
    from ..runtime.pairs import check_output_folder, dress_jobs
    from ..runtime.stage_one import dress_from_photos
    from ..runtime.stages import FailingPhotos

    out_dir = output.parent if single else output
    check_side_files(
        [options["person"], options["garment"] or options["garment_from"]],
        out_dir,
        options["report"],
        stdout_taken=options["to_stdout"],
        sheet=options["sheet"],
    )
    if options["sheet"] is not None:
        check_writable_file(options["sheet"], "--sheet", SHEET_SUFFIXES)
    if not single:
        check_output_folder(options["person"], options["garment"] or options["garment_from"], out_dir)
    check_output_dir(out_dir)
    if not options["dry_run"]:
        remove_stale_partials(out_dir, recursive=pairs.tree is not None)
    dresser, generator = _open(options)
    jobs = dress_jobs(pairs, out_dir, options["fmt"], output if single else None)  # (walked as it goes)
    watcher = None
    if options["watch"]:  # the same walk, again every few seconds
        from ..runtime.watch import Watch, pair_job, watched_pairs

        watcher = Watch(watched_pairs(pairs, out_dir, options["fmt"]), describe=pair_job)
        jobs = watcher.jobs()
    report = Report(options["report"])  # (refused before stage one if another run writes it)
    if options["dry_run"]:  # (with --garment-from, stage one does not run either: the pairs name the photos)
        previews = (
            as_given(result, options["given"], ("person", "garment"))
            for result in preview_dressing(dresser, jobs, options["overwrite"])
        )
        report_dry_run(previews, report, "pair", "dress", error_line)
        return
    if not single:
        click.echo(
            f"{_what(pairs, total, options)} with {dresser.tryon.path.name} + {dresser.parser.path.name} "
            f"on {dresser.tryon.provider} -> {out_dir}",
            err=True,
        )
    progress = Progress(None if watcher else total, "pair", "tryon")
    failed = Failures()
    failing = FailingPhotos()  # a watch's pairs whose last try failed (said): a photo written again may come
    drawn: list[tuple[Path | Any, ...]] = []  # the first pairs dressed, for --sheet (``sheet_row``)

    def on_result(result: DressResult) -> None:
        if result.status == "ok" and options["sheet"] is not None and len(drawn) < SHEET_ROWS:
            drawn.append(sheet_row(result))
        result = as_given(result, options["given"], ("person", "garment"))
        failing_now = int(result.status == "error")
        if watcher is not None:  # (a watch's errors are said as they come, and their end)
            failing_now = say_watched(result, failing, progress)
        elif result.status == "error":
            failed.add(result)
        report.write(dataclasses.replace(result, output="-") if options["to_stdout"] else result)
        progress.update(failed=failing_now)

    dress = functools.partial(
        run_dressing,
        dresser,
        batch_size=options["batch_size"],
        overwrite=options["overwrite"],
        quality=options["quality"],
        on_result=on_result,
        workers=options["workers"],
        watched=watcher is not None,
    )
    stage_one = _StageOne(dresser, generator, options)
    try:
        with stopped_by_signals(watcher.stop, "pair") if watcher else contextlib.nullcontext():
            if options["garment_from"] is None:
                summary = dress(jobs)
            else:  # a window of pairs at a time: a rerun extracts only the garments of the pairs left to dress
                summary = dress_from_photos(
                    jobs, scratch(), stage_one, dress, dresser.signature, options["overwrite"], watched=bool(watcher)
                )
    finally:
        stage_one.close()
        progress.close()
        report.close()
    if watcher is not None and watcher.passes:  # (pairs came since they were counted)
        total = 0  # (else: stopped before the first walk's end, the pairs there at the start not all tried)
    size = dresser.tryon.contract.size
    refused = write_sheet(options["sheet"], drawn, lambda rows: dressing_sheet(rows, size), "dressed photo")
    output = Path("-") if options["to_stdout"] else output
    summarise(summary, failed, single, output, report, total, watched=watcher is not None, refused=refused)


def _what(pairs: Pairs, total: int, options: dict[str, Any]) -> str:
    """What the job dresses: the start of the line it starts with."""
    share = f" (shard {options['shard']})" if options["shard"] else ""
    what = f"dressing {total} pair(s){share}"
    if options["watch"]:
        folder = f"{pairs.person} and {pairs.garment}" if pairs.every else pairs.person
        folder = folder if pairs.every or pairs.person.is_dir() else pairs.garment
        what = f"{what}, then" if total else f"watching {folder}: dressing"
        what += " the pairs of each new or changed photo as it comes (--watch; Ctrl-C to stop)"
    return what


class _StageOne:
    """``--garment-from``'s stage one, as ``dress_from_photos`` calls it on each window's
    garment photos: photo -> its catalog image (on white, at the dresser's ``garment_size``)
    in ``into`` by ``generator`` (None without --garment-from), or the error; ``close``
    closes the generator."""

    def __init__(self, dresser: Any, generator: Any, options: dict[str, Any]):
        self.parser, self.output_size, self.options = dresser.parser, dresser.garment_size, options
        self.generator = generator

    def __call__(self, photos: list[Path], into: Path) -> tuple[Catalog, str | None]:
        from tqdm import tqdm

        from ..runtime.stage_one import extract_garments

        # (above the progress bar, on a terminal)
        tqdm.write(f"extracting the garments of {len(photos)} photo(s) with {self.generator.path.name}", sys.stderr)
        made, stopped = extract_garments(
            photos, into, self.generator, self.parser, self.options["batch_size"], output_size=self.output_size
        )
        return made, stopped and f"stage one (the garments of the --garment-from photos): {stopped}"

    def close(self) -> None:
        if self.generator is not None:
            self.generator.close()
