"""``clothes-extractor extract``: photos -> garment images (a folder, or one file).

It is long because its option table (some thirty options, each with its help) is half of it;
the work itself is in ``runtime.pipeline`` and, with ``--ray``, ``distributed.ray_job``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

import click

from ..api.web import MOST_FETCHES, URL_FETCHES, is_url, shown
from ..errors import InputError, NoGarmentError, WorkersKeepDying, files_named
from ..runtime.providers import PROVIDER_CHOICES
from .common import (
    MAX_FAILURES_SHOWN,
    LocalPath,
    Progress,
    batch_size_option,
    check_stdin_piped,
    note_unsearched,
    once,
    report_options,
    reports_errors,
    shard_option,
    verbose_option,
)
from .given import as_given, in_messages, in_words, resolve_inputs
from .one_output import (
    check_stdout_takes_an_image,
    format_option,
    names_an_image_file,
    one_output,
    scratch_folder,
    write_to_stdout,
)
from .reports import SHEET_ROWS, SHEET_SUFFIXES, Report, check_side_files, report_dry_run, write_sheet
from .watching import check_watch, stopped_by_signals


def _error_line(result: Any) -> str:
    """A failed photo's reason, with the photo named once (most reasons name it already)."""
    name, error = in_messages(result.input), result.error
    if result.input == "-" and error.startswith(NoGarmentError.SUMMARY):  # --masks DIR pairs files by name
        error = f"{NoGarmentError.SUMMARY}; if there is one, save the photo as a file and give its mask: --masks DIR"
    return error if name in error else f"{name}: {error}"


def _single_output(paths: list[Path], output: str) -> bool:
    """One photo in and an image file (or ``-``) out: write that file, not a folder."""
    if output == "-":
        if len(paths) != 1 or os.path.isdir(paths[0]):
            raise click.UsageError("-o - (standard output) takes exactly one photo")
        check_stdout_takes_an_image()
        return True
    return len(paths) == 1 and os.path.isfile(paths[0]) and names_an_image_file(Path(output), "garments")


def _list_option(name: str, help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An option that takes one LIST file (or - for standard input); a second is refused."""
    return click.option(
        name,
        metavar="LIST",
        multiple=True,
        callback=once(f"one list (cat A B | clothes-extractor extract ... {name} -)"),
        help=help_text,
    )


@click.command()
@click.argument("inputs", nargs=-1)
@click.option(
    "-o",
    "--output",
    required=True,
    help="Folder for the garment images (created if missing); for one photo also a file "
    "(garment.png / .jpg / .webp) or - for standard output.",
)
@click.option(
    "--model",
    type=LocalPath(path_type=Path, dir_okay=False),
    help="Served ONNX model (default: the generator bundled with the package).",
)
@click.option(
    "--provider",
    type=click.Choice(PROVIDER_CHOICES),
    default="auto",
    show_default=True,
    help="Execution provider; auto tries tensorrt, cuda, cpu. A named one must start.",
)
@batch_size_option("photo")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Decode/encode workers  [default: CPU count, at most 16]",
)
@click.option(
    "--processes/--threads",
    default=None,
    help="Workers as processes (scale with cores) or threads  [default: processes on 4+ cores]",
)
@click.option(
    "--decode",
    type=click.Choice(("auto", "host", "gpu")),
    default="auto",
    show_default=True,
    help="Where JPEGs are decoded and fitted: gpu (nvImageCodec, the [gpu] extra; other photos fall "
    "back to the host, counted in the summary), host (Pillow), auto (gpu when the models run on CUDA "
    "and it starts).",
)
@click.option(
    "--cpu-streams",
    type=click.IntRange(min=1),
    default=None,
    help="CPU: run each batch as this many parts at once, each on its share of the cores; "
    "1 runs it whole  [default: 2 on 2+ cores]",
)
@click.option(
    "--segmenter",
    type=LocalPath(path_type=Path, dir_okay=False),
    help="Segmenter model for photos without a mask (default: the bundled one).",
)
@click.option("--no-segmenter", is_flag=True, help="Never segment: a photo without a mask is an error.")
@click.option(
    "--masks",
    multiple=True,
    callback=once("one folder (the masks of all the photos in it)"),
    type=LocalPath(path_type=Path, file_okay=False),
    help="Folder of garment masks named like the photos (any image format and size).",
)
@click.option(
    "--alpha-mask", is_flag=True, help="Use a photo's alpha channel as its garment mask (a cut-out of the garment)."
)
@click.option(
    "--save-masks",
    type=LocalPath(path_type=Path, file_okay=False),
    help="Save the mask used for each photo here (<name>.png; reusable with --masks).",
)
@click.option(
    "--sheet",
    type=LocalPath(path_type=Path, dir_okay=False),
    help="Write a contact sheet (photo | mask | garment) of the first photos extracted (.png/.jpg/.webp).",
)
@click.option("-r", "--recursive", is_flag=True, help="Also take photos in subfolders.")
@click.option(
    "--watch",
    is_flag=True,
    help="Go on after the photos in the INPUTS folders: extract each photo that comes into them later, or "
    "changes, once it is written whole (the folders are walked every 2 s, a large one less often), until "
    "Ctrl-C or SIGTERM, which finishes the photos in flight and ends as a job does.",
)
@format_option
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG/WebP quality.")
@click.option(
    "--output-size",
    default="auto",
    show_default=True,
    help="Garment size: auto (the photo crop's own resolution, up to 1024x768), model (the model's, "
    "fastest), or HEIGHTxWIDTH / HEIGHT (a garment a 256x192 generator draws is resized to it; of another "
    "aspect than the model's 3:4, a page: 1000x1000, the garment at 1000x750 centred on the background).",
)
@click.option(
    "--fill",
    default=None,
    metavar="SHARE",
    help="Frame every garment alike: its box scaled to fill SHARE of the image (85% or 0.85: the longer side, "
    "relative to the image's, reaches it), centred, on an image of --output-size (a marketplace's 85% rule). "
    "Default: as the model frames it (as its training catalog did: about 95% of a 3:4 frame).",
)
@click.option(
    "--background",
    default="white",
    show_default=True,
    help="white, transparent (PNG/WebP with alpha) or a colour: #RRGGBB, #RGB, a CSS name (navy).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Redo photos whose output already exists, and replace files there that this tool did not write.",
)
@_list_option(
    "--files-from",
    "Take only the photos LIST names, one a line, relative to the one INPUT folder (- for standard "
    "input), not the whole folder; their outputs keep their paths under -o.",
)
@_list_option(
    "--urls-from",
    "Extract the photos at the http(s) URLs LIST names, one a line (LIST a file, its URL, or - for standard "
    "input), fetched a few at a time as the job goes; a line URL<TAB>NAME writes NAME.png. A product table "
    "(CSV/TSV) is read by its header: image_link (or image_url, image_src, images, url) and id (or sku, name, handle); "
    "a Shopify export's; an XML feed (RSS, Atom) by its items' g:image_link and g:id. No INPUTS then.",
)
@click.option(
    "--fetches",
    type=click.IntRange(1, MOST_FETCHES),
    default=URL_FETCHES,
    show_default=True,
    metavar="N",
    help="Downloads at once, of URL inputs and --urls-from: fewer where a server answers 429 Too Many Requests, "
    "more where it is far and the job waits for it.",
)
@shard_option("photo")
@click.option("--ray", is_flag=True, help="Run on Ray (a local Ray on this machine unless --ray-address).")
@click.option(
    "--ray-address",
    default=None,
    help="Join this Ray cluster (auto, or ray://HEAD:10001); implies --ray. Inputs and -o may then be "
    "s3:// or gs:// URIs too.",
)
@click.option(
    "--actors", type=click.IntRange(min=1), default=None, help="Ray: model actors [default: one per GPU, else 1]."
)
@report_options("photo", "extract")
@verbose_option
@reports_errors
def extract(inputs: tuple[str, ...], output: str, **options: Any) -> None:
    """Extract the garment of every photo in INPUTS (files, folders, dataset folders, an
    http(s) URL, or - for standard input), or of each URL that --urls-from LIST names.

    Each photo's garment mask comes from, in this order: --masks DIR (same name, any
    format), the parse map of a VITON-HD / CP-VTON / Dress Code dataset folder, the photo's
    alpha channel with --alpha-mask, and last the segmenter. Finished outputs are skipped
    on a rerun; the exit code is 0 only if every photo succeeded.
    """
    _check_inputs_given(inputs, output, options)  # (at most one list: --files-from or --urls-from)
    listing = next((f"--{name}-from" for name in ("files", "urls") if options[f"{name}_from"] is not None), None)
    if "-" in inputs or "-" in (options["files_from"], options["urls_from"]):
        _check_stdin_piped("-" if "-" in inputs else f"{listing} -")
    if options["shard"] is not None:
        _check_shard(inputs, output, options)
    if options["files_from"] is not None:
        _check_listing(inputs, options)
    _check_folder_output(inputs, output, listing)
    if options["watch"]:
        check_watch(inputs, output, options)
    if options["ray"] or options["ray_address"]:
        if options["dry_run"]:
            raise click.UsageError("--dry-run walks the inputs on this machine: leave out --ray")
        _extract_on_ray(inputs, output, options)
        return
    inputs, output = _local_uris(inputs, output)
    if options["dry_run"] and output == "-":
        raise click.UsageError("--dry-run writes no image: leave out -o -")
    if options["dry_run"] and any(item == "-" or "://" in item for item in inputs):
        raise click.UsageError(
            "--dry-run looks at photo files and folders: a URL or standard input is fetched, not looked at"
        )
    with scratch_folder() as scratch:
        paths, options["given"], options["unfetched"] = resolve_inputs(inputs, scratch, options["fetches"])
        options["listing"], options["feed"] = _listing(options["files_from"], scratch), _feed(options, scratch)
        if options["feed"] is not None:
            options["given"] = options["feed"].given
        with files_named(in_words(options["given"])):
            if _single_output(paths, output):
                _extract_one(paths[0], output, scratch, options)
            else:
                _extract_folder(paths, Path(output), options)


def _no_photos(names: list[str], folders: list[Path], recursive: bool, below: bool) -> str:
    """Why a job found nothing to do in ``names``: where it did not look (subfolders ``below``,
    without ``recursive``) and the other files in its ``folders``, by suffix."""
    from ..runtime.walk import passed_over_note

    hint = " (add --recursive to look in subfolders)" if below and not recursive else ""
    return f"no photos found in {', '.join(names)}{hint}{passed_over_note(folders, recursive)}"


def _check_inputs_given(inputs: tuple[str, ...], output: str, options: dict[str, Any]) -> None:
    """``UsageError`` where no photo is given (INPUTS, or ``--urls-from``), or a list without what
    it needs: ``--files-from`` its folder, ``--urls-from`` a folder job of its own."""
    feed = options["urls_from"]
    if feed is None and inputs:
        return
    if feed is None and options["files_from"] is not None:
        raise click.UsageError(
            "--files-from names photos relative to a folder: give the folder too: "
            "clothes-extractor extract FOLDER --files-from LIST -o OUT"
        )
    if feed is None:
        raise click.UsageError(
            "give the photos: files, folders or http(s) URLs (clothes-extractor extract photos -o garments), "
            "or a list of URLs (--urls-from LIST)"
        )
    if inputs or options["files_from"] is not None:
        given = "--files-from" if options["files_from"] is not None else " ".join(inputs)
        raise click.UsageError(f"--urls-from takes its photos from its list: give {given} in another run")
    if options["ray"] or options["ray_address"]:
        raise click.UsageError("--urls-from fetches on this machine: leave out --ray (--shard K/N splits a feed)")
    if options["dry_run"]:
        raise click.UsageError("--dry-run looks at photo files and folders: --urls-from's photos are fetched")
    if output == "-":
        raise click.UsageError("-o - (standard output) takes exactly one photo: give --urls-from a folder, -o garments")


def _check_stdin_piped(what: str) -> None:
    """``UsageError`` where standard input is a terminal (``common.check_stdin_piped``)."""
    example = {
        "--files-from -": "find photos -name '*.jpg' -printf '%P\\n' | clothes-extractor extract photos "
        "--files-from - -o OUT",
        "--urls-from -": "curl -s https://shop.example/feed.tsv | clothes-extractor extract --urls-from - -o OUT",
    }.get(what, "clothes-extractor extract - -o garment.png < photo.jpg")
    check_stdin_piped(what, example)


def _check_shard(inputs: tuple[str, ...], output: str, options: dict[str, Any]) -> None:
    """``UsageError`` where ``--shard`` has nothing to split."""
    if options["ray"] or options["ray_address"]:
        raise click.UsageError("Ray spreads the job over its cluster itself: leave out --shard with --ray")
    if any(item == "-" or "://" in item for item in inputs):
        raise click.UsageError("--shard splits folders and files of photos, not standard input or a URL")
    if output == "-" or (
        len(inputs) == 1 and os.path.isfile(inputs[0]) and names_an_image_file(Path(output), "garments")
    ):
        raise click.UsageError("--shard splits a folder job: one photo to one file is not split")


def _local_uris(inputs: tuple[str, ...], output: str) -> tuple[tuple[str, ...], str]:
    """Without Ray: ``file://`` inputs and ``-o`` as the local paths they name; ``UsageError``
    for any other URI but an http(s) photo, which a local run would take for a path (``-o
    s3://bucket/out`` wrote a local folder ``s3:/bucket/out``)."""
    from ..runtime.files import URI, from_file_uri

    def local(item: str, what: str) -> str:
        item = str(from_file_uri(item))
        if not URI.match(item) or (what != "-o" and is_url(item)):
            return item
        reads = "writes to a local folder or file" if what == "-o" else "reads local files and folders and http(s) URLs"
        raise click.UsageError(
            f"{what} {item} is a URI: without --ray, extract {reads}; with --ray its nodes read and write s3:// and "
            "gs:// (or copy the photos here first, and the garments after)"
        )

    return tuple(local(item, "input") for item in inputs), local(output, "-o")


def _check_folder_output(inputs: tuple[str, ...], output: str, listing: str | None) -> None:
    """``UsageError`` for a folder job (a folder, several photos, a list: ``listing``, the option
    that gives it) whose ``-o`` names an image file: it made a folder of that name (an existing
    folder of that name is the job's)."""
    from ..runtime.files import URI, from_file_uri
    from ..runtime.images import IMAGE_SUFFIXES

    output = str(from_file_uri(output))  # (file:///x.png is the local x.png; s3://... is Ray's)
    out = Path(output)
    if output == "-" or URI.match(output) or out.suffix.lower() not in IMAGE_SUFFIXES or out.is_dir():
        return
    if listing or len(inputs) > 1 or os.path.isdir(inputs[0]):
        what = f"a {listing} list makes a folder job" if listing else (
            f"{inputs[0]} is a folder" if len(inputs) == 1 else f"{len(inputs)} photos or folders are given"
        )  # fmt: skip
        raise click.UsageError(
            f"{what}: -o must be a folder for their garments, not an image file ({output}): e.g. -o garments"
        )


def _check_listing(inputs: tuple[str, ...], options: dict[str, Any]) -> None:
    """``UsageError`` where ``--files-from`` has no folder to read its entries in, or cannot be read."""
    if len(inputs) != 1 or not os.path.isdir(inputs[0]):
        raise click.UsageError("--files-from LIST names photos under one folder: give that folder as the only INPUT")
    listing = options["files_from"]
    if listing == "-":
        if options["ray"] or options["ray_address"]:
            raise click.UsageError("--ray reads the list in the cluster: give --files-from a file on a shared path")
        return
    try:
        with open(listing, "rb"):
            pass
    except OSError as exc:
        raise click.UsageError(f"cannot read --files-from {listing}: {exc.strerror or exc}") from None


def _listing(given: str | None, scratch: Callable[[], Path], name: str = "files-from.txt") -> Path | None:
    """The ``--files-from`` (or ``--urls-from``) file; standard input is saved to ``scratch()`` first
    (the list is read twice: counted, then taken)."""
    if given != "-":
        return None if given is None else Path(given)
    saved = scratch() / name
    with open(saved, "wb") as copy:
        shutil.copyfileobj(sys.stdin.buffer, copy)
    return saved


def _feed(options: dict[str, Any], scratch: Callable[[], Path]) -> Any:
    """The ``--urls-from`` list as a ``Feed`` fetching into the job's ``scratch()`` folder, or None.
    A list given by its http(s) URL (a shop's feed, as Google Merchant Center fetches it) is
    fetched first, whole (``InputError`` where it cannot be)."""
    from ..api.feed import Feed
    from ..api.web import LIST, fetch

    given = options["urls_from"]
    if is_url(given):
        (scratch() / "listing").mkdir()
        listing = fetch(given, scratch() / "listing", wanted=LIST)
    else:
        listing = _listing(given, scratch, "urls-from.txt")
    if listing is None:
        return None
    folder = scratch() / "feed"
    folder.mkdir()
    shown_as = "standard input" if given == "-" else shown(given)
    return Feed(listing, shown_as, folder, options["fetches"])


def _extract_options(options: dict[str, Any], fmt: str, *, fix: str = "use --format png or webp") -> Any:
    """The run's options; ``fix`` says how to choose another format where the output's format rules one out."""
    from ..runtime.fill import parse_fill
    from ..runtime.options import ExtractOptions, default_workers, parse_background, parse_output_size

    try:
        size = parse_output_size(options["output_size"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--output-size") from None
    try:
        background = parse_background(options["background"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--background") from None
    if background == "transparent" and fmt == "jpg":
        raise click.UsageError(f"JPEG has no transparency: {fix} with --background transparent")
    try:
        fill = parse_fill(options["fill"]) if options["fill"] is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fill") from None
    return ExtractOptions(
        batch_size=options["batch_size"],
        workers=options["workers"] or default_workers(),
        quality=options["quality"],
        overwrite=options["overwrite"],
        output_size=size,
        background=background,
        alpha_mask=options["alpha_mask"],
        processes=options["processes"],
        fill=fill,
    )


def _open_models(options: dict[str, Any], extract_options: Any):
    from ..api import new_session
    from ..runtime.options import generator_outputs
    from ..runtime.providers import SessionSettings

    if options["no_segmenter"] and options["segmenter"] is not None:
        raise click.UsageError("--segmenter and --no-segmenter exclude each other")
    settings = SessionSettings(cpu_streams=options["cpu_streams"])
    outputs = generator_outputs(extract_options.background, extract_options.fill, extract_options.output_size)
    generator = new_session(options["model"] or "generator", options["provider"], settings=settings, outputs=outputs)
    generator.require_task("generator")
    segmenter = None
    if not options["no_segmenter"]:
        segmenter = new_session(options["segmenter"] or "segmenter", options["provider"], settings=settings)
        segmenter.require_task("segmenter")
    return generator, segmenter


def _extract_one(photo: Path, output: str, scratch: Callable[[], Path], options: dict[str, Any]) -> None:
    """One photo to one file (or standard output): the folder job's guarantees, one job."""
    from ..runtime.files import check_writable_file
    from ..runtime.jobs import MaskIndex, find_jobs, overwrite_error
    from ..runtime.pipeline import run_extraction
    from ..runtime.resume import preview_extraction
    from ..runtime.stages import output_format

    to_stdout = output == "-"
    target = one_output(output, options["fmt"], scratch, "garment")
    fmt = output_format(target)
    fix = "use --format png or webp" if to_stdout else f"name the output {Path(output).stem}.png or .webp"
    extract_options = _extract_options(options, fmt, fix=fix)
    masks = MaskIndex(options["masks"]) if options["masks"] is not None else None
    (job,) = find_jobs([photo], scratch() / "unused", fmt, masks)  # (its mask and errors; the output is target)
    job = type(job)(
        job.photo,
        target,
        job.mask,
        job.error,
        Path(options["save_masks"]) / f"{photo.stem}.png" if options["save_masks"] else None,
        redo=options["given"].get(photo) == "-",  # another photo each time: never "already done"
        stamp=job.stamp,  # (a download's file is new each run: its bytes say whether the image changed)
    )
    refused = overwrite_error(job.photo, job.output, job.mask_output, job.mask.path)
    if refused is not None:
        raise click.UsageError(refused)
    check_side_files(
        [photo], None if to_stdout else target.parent, options["report"], stdout_taken=to_stdout, sheet=options["sheet"]
    )
    if options["sheet"] is not None:
        check_writable_file(options["sheet"], "--sheet", SHEET_SUFFIXES)
    generator, segmenter = _open_models(options, extract_options)
    if options["dry_run"]:
        previewed = preview_extraction(generator, [job], extract_options, segmenter)
        report_dry_run(previewed, Report(options["report"]), "photo", "extract", _error_line)
        return
    note = _size_note(generator, segmenter, extract_options)
    if note:
        click.echo(note, err=True)
    report, results = Report(options["report"]), []
    try:
        run_extraction(generator, [job], extract_options, results.append, segmenter)
        (result,) = results
        shown = as_given(result, options["given"])
        report.write(dataclasses.replace(shown, output="-") if to_stdout and shown.output else shown)
    finally:
        report.close()
    if result.status == "error":
        raise InputError(_error_line(shown))
    if to_stdout:
        write_to_stdout(target)
    else:
        click.echo(f"{'skipped (already done)' if result.status == 'skipped' else 'wrote'} {target}", err=True)
    for problem in (
        report.failed,
        _write_sheet(options["sheet"], [result] if result.status == "ok" else [], generator.contract.size),
    ):
        if problem:
            click.echo(f"error: {problem}", err=True)
            sys.exit(1)


def _extract_folder(inputs: list[Path], out_dir: Path, options: dict[str, Any]) -> None:
    from ..runtime.files import check_output_dir, check_writable_file
    from ..runtime.jobs import MaskIndex, check_output_folders, removing_stale_partials
    from ..runtime.pipeline import run_extraction
    from ..runtime.resume import preview_extraction
    from ..runtime.stages import FailingPhotos

    fmt = options["fmt"]
    extract_options = _extract_options(options, fmt)
    save_masks, sheet = options["save_masks"], options["sheet"]
    check_output_folders(inputs, out_dir, save_masks, options["masks"])
    check_side_files(inputs, out_dir, options["report"], sheet=sheet)
    check_output_dir(out_dir)
    if save_masks is not None:
        check_output_dir(save_masks, "the --save-masks folder")
    if sheet is not None:
        check_writable_file(sheet, "--sheet", SHEET_SUFFIXES)
    mask_index = MaskIndex(options["masks"]) if options["masks"] is not None else None
    total, jobs = _jobs(inputs, out_dir, fmt, mask_index, options)
    if not total and not options["watch"]:
        return
    generator, segmenter = _open_models(options, extract_options)
    if options["feed"] is not None and not extract_options.overwrite and mask_index is None:
        options["feed"].ask_since(generator, segmenter, extract_options)
    if options["dry_run"]:
        previewed = preview_extraction(generator, jobs, extract_options, segmenter)
        report_dry_run(previewed, Report(options["report"]), "photo", "extract", _error_line)
        return
    note = _size_note(generator, segmenter, extract_options)
    decoder = _open_decoder(options["decode"], generator)
    jobs = removing_stale_partials(jobs)
    # standard input and URLs: temporary files, new each run (their bytes say whether a URL's image changed;
    # standard input's is never done already: see _extract_one); a URL not fetched: why
    given, unfetched = options["given"], options["unfetched"]
    jobs = (
        dataclasses.replace(job, redo=given[job.photo] == "-", error=unfetched.get(job.photo, job.error))
        if job is not None and job.photo in given
        else job
        for job in jobs
    )
    report = Report(options["report"])
    click.echo(_start_line(total, inputs, out_dir, generator, segmenter, extract_options, decoder, options), err=True)
    if note:
        click.echo(note, err=True)
    failures: list[Any] = []
    finished: list[Any] = []  # the first results, for --sheet
    progress, feed = Progress(None if options["watch"] else total, "photo", "extract"), options["feed"]
    failing = FailingPhotos()  # a watch's photos whose last try failed (said): one written again may come

    def on_result(result: Any) -> None:
        drawn = result.status == "ok" and sheet is not None and len(finished) < SHEET_ROWS
        if drawn:
            finished.append(result)
        shown = as_given(result, options["given"])
        if feed is not None and not drawn:  # (a feed's photo, fetched for this job: the sheet draws its own)
            feed.release(result.input)
        failed = int(shown.status == "error")
        if options["watch"]:  # (a watch's errors are said as they come, and their end)
            failed = _say_watched(shown, failing, progress)
        elif failed and len(failures) < MAX_FAILURES_SHOWN:
            failures.append(shown)
        report.write(shown)
        progress.update(failed=failed)

    try:
        with stopped_by_signals(options["watcher"].stop) if options["watch"] else contextlib.nullcontext():
            summary = run_extraction(
                generator, jobs, extract_options, on_result, segmenter, decoder=decoder, watched=options["watch"]
            )
        if summary.stopped and report.handle is not None and feed is None and not options["watch"]:
            _report_untried(summary, jobs, report, options["given"])  # (a feed's would be fetched)
    except KeyboardInterrupt:
        progress.close()
        report.close()
        click.echo("finished outputs are complete; run the same command again to resume", err=True)
        raise
    finally:
        progress.close()
        report.close()
    if options["watch"] and options["watcher"].passes:  # (photos came since they were counted)
        total = None  # (else: stopped before the first walk's end, the photos there at the start not all tried)
    size = generator.contract.size
    _summarise(summary, failures, report, sheet, finished, size, options["masks"], total, options["watch"])


def _say_watched(result: Any, failing: Any, progress: Progress) -> int:
    """A watched photo's error, as it comes (once), and the end of one: the photo written again
    (or its permissions mended) and done. How many more photos fail now: 1, 0, or -1
    (``failing``: ``stages.FailingPhotos``)."""
    change = failing.change(result.input, result.status == "error")
    if change > 0:
        again = "--watch tries it again once the file is written again or its permissions change"
        progress.say(f"error: {_error_line(result)} ({again})")
    elif change < 0:
        done = "extracted" if result.status == "ok" else "done already (skipped)"
        progress.say(f"{in_messages(result.input)}: {done} now, changed since its error")
    return change


def _start_line(total, inputs, out_dir, generator, segmenter, extract_options, decoder, options) -> str:
    """What the job does, with what, where: the line it starts with."""
    using = generator.path.name + (f" + {segmenter.path.name}" if segmenter else "")
    streams = f" in {generator.cpu_streams} streams" if generator.cpu_streams > 1 else ""
    workers = f"{extract_options.workers} {'processes' if extract_options.use_processes else 'threads'}"
    decoding, shard = (", GPU decode" if decoder is not None else ""), options["shard"]
    decoding += f", {options['fetches']} downloads at once" if options["feed"] is not None else ""
    what = f"extracting {total} photo(s){f' (shard {shard})' if shard else ''}"
    if options["watch"]:
        what = f"{what}, then" if total else f"watching {', '.join(map(str, inputs))}: extracting"
        what += " each new or changed one as it comes (--watch; Ctrl-C to stop)"
    return (
        f"{what} with {using} on {generator.provider} (batch {extract_options.batch_size}{streams}, "
        f"{workers}{decoding}) -> {out_dir}"
    )


def _report_untried(summary: Any, jobs: Any, report: Report, given: dict[Path, str]) -> None:
    """Each photo a stopped job (a full disk) did not try, in the report as not tried: those in
    flight then (``summary.dropped``) and the rest of ``jobs``, where the job left it (a walk of
    what is left, nothing read)."""
    from ..runtime.stages import FileResult

    said = f"not tried: the job stopped ({summary.stopped}); run the same command again once it can go on"
    untried = itertools.chain(summary.dropped, (str(job.photo) for job in jobs if job is not None))
    for photo in untried:
        report.write(as_given(FileResult(photo, "error", None, said), given))


def _jobs(inputs: list[Path], out_dir: Path, fmt: str, mask_index: Any, options: dict[str, Any]) -> tuple[int, Any]:
    """The job's photos (of ``--shard``'s share): counted first, for the progress bar, then streamed
    (memory does not grow with the folder, nor with a ``--urls-from`` feed); a total of 0 where the
    shard holds none (said). ``ClickException`` where there are none to take. With ``--watch``, the
    photos there now and then those that come (``runtime.watch``; none there now is no error)."""
    from ..runtime.jobs import count_jobs, iter_jobs, unsearched_subfolders
    from ..runtime.watch import Watch, watched_walk

    save_masks, shard, listing, feed = options["save_masks"], options["shard"], options["listing"], options["feed"]
    if feed is not None:
        total, where = feed.count(shard), f"the URLs of {feed.shown_as}"
        if not total and (shard is None or not feed.count()):
            raise click.ClickException(
                f"--urls-from {shown(options['urls_from'])} names no URL (blank and # lines are left out)"
            )
        jobs = feed.jobs(out_dir, fmt, mask_index, save_masks, shard)
    else:
        total = count_jobs(inputs, out_dir, options["recursive"], save_masks, options["masks"], shard, listing)
        where = f"the photos in {', '.join(map(str, inputs))}"
        if (
            not total
            and not options["watch"]
            and (
                shard is None or not count_jobs(inputs, out_dir, options["recursive"], save_masks, None, None, listing)
            )
        ):
            _no_jobs(inputs, out_dir, options)
        jobs = iter_jobs(inputs, out_dir, fmt, mask_index, options["recursive"], save_masks, shard, listing)
        if options["watch"]:  # the same walk, again every few seconds (no listing: check_watch)
            walk = watched_walk(inputs, out_dir, fmt, options["masks"], options["recursive"], save_masks, shard)
            options["watcher"] = Watch(walk)
            jobs = options["watcher"].jobs()
        if total and not options["recursive"] and listing is None:
            note_unsearched(unsearched_subfolders(inputs, out_dir, save_masks, options["masks"]))
    if not total and not options["watch"]:
        click.echo(f"shard {shard} holds none of {where}: nothing to do", err=True)
    return total, jobs


def _no_jobs(inputs: list[Path], out_dir: Path, options: dict[str, Any]) -> None:
    """``ClickException`` saying why a job's inputs give no photo: an empty list, or the folders'."""
    from ..runtime.jobs import unsearched_subfolders

    if options["listing"] is not None:
        raise click.ClickException(
            f"--files-from {options['files_from']} names no photo (blank and # lines are left out)"
        )
    folders = [i for i in inputs if os.path.isdir(i)]
    below = bool(unsearched_subfolders(inputs, out_dir, options["save_masks"], options["masks"]))
    raise click.ClickException(_no_photos([str(i) for i in inputs], folders, options["recursive"], below))


def _size_note(generator: Any, segmenter: Any, extract_options: Any) -> str:
    """The line to show where --output-size asks for a size the generator does not draw at, or
    "". It builds the job's plan: settings that cannot work (a size of another aspect) are
    refused here, before the job says it starts."""
    from ..runtime.options import make_plan

    plan = make_plan(generator, segmenter, extract_options)
    if not plan.resizes_drawn:
        return ""
    (h, w), (mh, mw) = plan.output_size, generator.contract.size
    page = f", each centred on a {plan.canvas[0]}x{plan.canvas[1]} page" if plan.canvas else ""
    if plan.fill is not None:  # (the box brought to its share: from the size drawn, in one resampling)
        ph, pw = plan.canvas or (h, w)
        return (
            f"note: {generator.path.name} draws garments at {mh}x{mw}: each is brought to a {ph}x{pw} page, its "
            f"box filling {round(plan.fill * 100, 2):g}% of it (bicubic: smoother, no detail added)"
        )
    return (
        f"note: {generator.path.name} draws garments at {mh}x{mw}: they are resized to {h}x{w} (bicubic: "
        f"smoother, no detail added); a garment shown alone is cut out of its photo at {h}x{w}{page}"
    )


def _open_decoder(choice: str, generator: Any) -> Any:
    """The GPU decoder ``--decode`` asks for, or None (host decode) with one line saying why."""
    from ..runtime.gpudecode import open_decoder

    decoder, why = open_decoder(choice, generator.provider)
    if why:
        click.echo(f"warning: {why}", err=True)
    return decoder


def _decode_summary(decoded: Any) -> str:
    """'; decoded: 480 on the GPU, 24 on the host (20 not a JPEG (PNG), 4 EXIF rotation)'."""
    if not decoded:
        return ""
    host = {how.removeprefix("host: "): n for how, n in decoded.items() if how != "gpu"}
    why = ", ".join(f"{n} {reason}" for reason, n in sorted(host.items(), key=lambda kv: -kv[1]))
    return f"; decoded: {decoded.get('gpu', 0)} on the GPU, {sum(host.values())} on the host" + (
        f" ({why})" if why else ""
    )


def _write_sheet(sheet: Path | None, finished: list[Any], size: tuple[int, int]) -> str | None:
    """The contact sheet of ``finished`` results (``reports.write_sheet``), or why none was written."""
    from ..eval.sheets import extraction_sheet

    return write_sheet(sheet, finished, lambda rows: extraction_sheet(rows, size))


def _summarise(summary, failures, report, sheet, finished, size, masks_dir=None, total=None, watched=False) -> None:
    """The end of a folder job: its errors (``watched``: ``--watch``'s, said as they came), its
    sheet, the line of what it did, and exit code 1 where a photo failed or the job stopped."""
    for failure in failures:
        click.echo(f"error: {_error_line(failure)}", err=True)
    if summary.failed > len(failures) and not watched:
        click.echo(
            f"... and {summary.failed - len(failures)} more errors"
            + (f", all in {report.named}" if report.path and not report.failed else "; --report FILE lists them all"),
            err=True,
        )
    refused = _write_sheet(sheet, finished, size)
    rate = summary.ok / summary.seconds if summary.seconds > 0 else 0.0
    masks = ", ".join(f"{count} {source}" for source, count in summary.masks.most_common())
    stopped = getattr(summary, "stopped", None)  # (a Ray job's summary has no such thing)
    untried = total - summary.ok - summary.skipped - summary.failed if (stopped or watched) and total else 0
    ended = "stopped after" if stopped else "watched for" if watched else "done in"
    click.echo(
        f"{ended} {summary.seconds:.1f} s: {summary.ok} extracted"
        + ("" if watched else f" ({rate:.1f} photos/s)")
        + f", {summary.skipped} skipped (already done), {summary.failed} failed"
        + (f"; failed at first, done once written again: {summary.recovered}" if summary.recovered else "")
        + (f", {untried} not tried" if untried else "")
        + (" (the photos there at the start: run it again for them)" if untried and watched else "")
        + (f"; {summary.retried} tried again alone after a worker process died" if summary.retried else "")
        + (f"; masks from: {masks}" if masks else "")
        + _decode_summary(summary.decoded),
        err=True,
    )
    sources = {source for source, count in summary.masks.items() if count and source != "?"}
    if masks_dir is not None and sources and "file" not in sources:
        click.secho(  # a naming slip (photo.jpg wants masks/photo.png) should not pass for a choice
            f"warning: no photo found its mask in --masks {masks_dir} (a mask is named like its photo: "
            "photo.jpg takes photo.png); the masks above came from elsewhere",
            fg="yellow",
            err=True,
        )
    if stopped:
        fix = "Then run" if stopped.startswith(WorkersKeepDying.SUMMARY) else "Free some space there and run"
        click.echo(
            f"error: the job stopped: {stopped}. {fix} the same command again: it "
            "resumes, skipping the finished photos (every file written is complete)",
            err=True,
        )
    for problem in (report.failed, refused):
        if problem:
            click.echo(f"error: {problem}", err=True)
    if summary.failed or report.failed or refused or stopped:
        sys.exit(1)


def _extract_on_ray(inputs: tuple[str, ...], output: str, options: dict[str, Any]) -> None:
    """The folder job on Ray: the same stages, models in actor pools, outputs from the workers."""
    from ..distributed.ray_job import JobWalk, is_remote
    from ..runtime.files import check_output_dir, check_writable_file
    from ..runtime.jobs import MaskIndex, check_output_folders, unsearched_subfolders

    fmt = options["fmt"]
    extract_options = _extract_options(options, fmt)
    if options["no_segmenter"] and options["segmenter"] is not None:
        raise click.UsageError("--segmenter and --no-segmenter exclude each other")
    piped = [i for i in inputs if i == "-" or is_url(i)]
    if piped:
        raise click.UsageError(
            f"--ray reads photos from paths and URIs its nodes reach (s3://, gs://, a shared folder), not {piped[0]}: "
            "save the photo to a file first, or extract it without --ray"
        )
    local = tuple(Path(i) for i in inputs if not is_remote(i))
    remote = tuple(i for i in inputs if is_remote(i))
    sheet = options["sheet"]
    if options["decode"] == "gpu":
        click.echo("warning: --decode gpu is not used on Ray: its prepare tasks decode on the host", err=True)
    if not is_remote(output):
        check_output_folders(local, Path(output), options["save_masks"], options["masks"])
    check_side_files(local, None if is_remote(output) else Path(output), options["report"], sheet=sheet)
    if not is_remote(output):
        check_output_dir(Path(output))
    if sheet is not None:
        if is_remote(output) or remote:
            raise click.UsageError("--sheet is made from local photos and outputs; on Ray with URIs, leave it out")
        check_writable_file(sheet, "--sheet", SHEET_SUFFIXES)
    if options["masks"] is not None:
        MaskIndex.check(options["masks"])
    # walked in the cluster as the job goes; counted here first, for the progress bar
    listing = None if options["files_from"] is None else Path(options["files_from"]).absolute()  # (read in the cluster)
    jobs = JobWalk(local, remote, output, fmt, options["masks"], options["recursive"], options["save_masks"], listing)
    total = jobs.count()
    if not total:  # (a bucket's other files are not listed again)
        folders = [i for i in local if os.path.isdir(i)]
        out_dir = None if is_remote(output) else Path(output)
        below = bool(remote) or bool(unsearched_subfolders(local, out_dir, options["save_masks"], options["masks"]))
        raise click.ClickException(_no_photos(list(inputs), folders, options["recursive"], below))
    if not options["recursive"] and listing is None:  # (local input folders; a bucket has no folders to forget)
        out_dir = None if is_remote(output) else Path(output)
        note_unsearched(unsearched_subfolders(local, out_dir, options["save_masks"], options["masks"]))
    _run_ray_job(jobs, total, output, options, extract_options)


def _run_ray_job(jobs: Any, total: int, output: str, options: dict[str, Any], extract_options: Any) -> None:
    """``extract --ray``'s job, its photos counted: its report, progress, sheet and summary."""
    from ..distributed.quiet import DriverPrints
    from ..distributed.ray_job import RayOptions, run_on_ray

    address, sheet = options["ray_address"], options["sheet"]
    ray_options = RayOptions(
        address=address, actors=options["actors"], provider=options["provider"], extract=extract_options
    )
    segmenter = None if options["no_segmenter"] else str(options["segmenter"] or "segmenter")
    report = Report(options["report"])
    # Ray's driver prints its cluster's errors to sys.stdout, up to the process's end: not into --report -
    sys.stdout = DriverPrints(sys.stderr)
    click.echo(f"extracting {total} photo(s) on Ray ({address or 'a local Ray'}) -> {output}", err=True)
    failures: list[Any] = []
    finished: list[Any] = []  # the first results, for --sheet
    progress = Progress(total, "photo", "extract")

    def on_result(result: Any) -> None:
        if result.status == "error" and len(failures) < MAX_FAILURES_SHOWN:
            failures.append(result)
        if result.status == "ok" and sheet is not None and len(finished) < SHEET_ROWS:
            finished.append(result)
        report.write(result)
        progress.update(failed=result.status == "error")

    try:
        summary = run_on_ray(str(options["model"] or "generator"), segmenter, jobs, ray_options, on_result, total)
    except KeyboardInterrupt:
        progress.close()
        click.echo("finished outputs are complete; run the same command again to resume", err=True)
        raise
    finally:
        progress.close()
        report.close()
    size = None
    if finished:  # the sheet's cells at the model's size, as local extract makes them
        from ..api import new_session

        with new_session(str(options["model"] or "generator"), "cpu") as generator:
            size = generator.contract.size
    _summarise(summary, failures, report, sheet, finished, size, options["masks"])
