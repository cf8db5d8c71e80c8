"""``extract --urls-from`` from Python: the photos a list of http(s) URLs names (a shop's feed,
a product table, a Shopify export, or the URLs in hand), fetched as the job goes, each
garment named by its line, a rerun asking the server whether each image changed.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterable

from ..errors import renamed
from ..runtime.session import ModelSession
from ..runtime.stages import ExtractionSummary, FileResult
from .folders import ExtractRun
from .web import URL_FETCHES


def extract_urls(
    urls: str | Path | Iterable[str | tuple[str, str]],
    output: str | Path,
    *,
    generator: ModelSession | str | Path | None = None,
    segmenter: ModelSession | str | Path | None = None,
    masks: str | Path | None = None,
    save_masks: str | Path | None = None,
    shard: str | None = None,
    output_format: str = "png",
    quality: int = 95,
    output_size: str | int | tuple[int, int] = "auto",
    background: str | tuple[int, int, int] = "white",
    alpha_mask: bool = False,
    fill: float | str | None = None,
    overwrite: bool = False,
    batch_size: int = 8,
    workers: int | None = None,
    processes: bool = False,
    fetches: int = URL_FETCHES,
    decode: str = "auto",
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[FileResult], None] | None = None,
    cancel: threading.Event | None = None,
) -> ExtractionSummary:
    """The garment of each photo ``urls`` names, to ``output/<its name>.<output_format>``: a list
    file (a URL a line, ``URL<TAB>NAME``, a product table or an XML feed: ``extract
    --urls-from``'s), the http(s) URL of one (fetched whole first), or the URLs themselves,
    each a string or a ``(url, name)`` pair. ``fetches`` downloads run at once, each photo removed once its
    garment is written; a result's ``input`` is its URL (or, for a line that is none, the
    line). The other settings, ``on_start``, ``on_result`` and ``cancel`` as in
    ``extract_folder``; a cancel stops the job within a tenth of a second, the downloads under
    way then left to end on their own. Raises ``InputError`` / ``OutputError`` / ``ValueError``
    for a list or settings that cannot work, before any photo is fetched.
    """
    from ..runtime.files import check_local, from_file_uri
    from .feed import Feed
    from .web import LIST, MOST_FETCHES, fetch, is_url, shown

    if isinstance(fetches, bool) or not isinstance(fetches, int) or not 1 <= fetches <= MOST_FETCHES:
        raise ValueError(f"fetches is a whole number from 1 to {MOST_FETCHES}, got {fetches!r}")
    output = from_file_uri(output)
    check_local(output, "output")
    out_dir = Path(output)
    job = ExtractRun([], out_dir, masks, save_masks, shard, output_format, background)
    options = job.options(batch_size, workers, quality, overwrite, output_size, alpha_mask, processes, fill)
    with tempfile.TemporaryDirectory(prefix="clothes-extractor-", ignore_cleanup_errors=True) as scratch:
        (Path(scratch) / "feed").mkdir()
        if isinstance(urls, (str, Path)) and is_url(str(urls)):
            (Path(scratch) / "listing").mkdir()
            listing, shown_as = fetch(str(urls), Path(scratch) / "listing", wanted=LIST), shown(str(urls))
        elif isinstance(urls, (str, Path)):
            listing, shown_as = Path(urls), str(urls)
        else:
            listing, shown_as = _listed(urls, Path(scratch) / "urls.txt"), "urls"
        feed = Feed(listing, shown_as, Path(scratch) / "feed", fetches)
        if on_start is not None:
            on_start(feed.count(job.share))

        def opening(generator: ModelSession, segmenter: ModelSession | None, options) -> None:
            if not options.overwrite and job.masks_dir is None:  # a rerun asks whether each image changed
                feed.ask_since(generator, segmenter, options)

        def emitted(result: FileResult) -> None:
            url = feed.given.get(Path(result.input))
            feed.release(result.input)  # (its download: removed)
            if url is not None:
                error = renamed(result.error, {Path(result.input): url}) if result.error else None
                result = dataclasses.replace(result, input=url, error=error)
            if on_result is not None:
                on_result(result)

        jobs = feed.jobs(out_dir, output_format, job.index, job.save_dir, job.share)
        return job.run(jobs, options, generator, segmenter, decode, emitted, cancel, opening)


def _listed(urls: Iterable[str | tuple[str, str]], listing: Path) -> Path:
    """``urls`` (each a URL, or a URL and its output's name) written as a list, ``URL<TAB>NAME`` a
    line; ``ValueError`` for one that a line cannot hold (a tab or a line break in it)."""
    with open(listing, "w", encoding="utf-8") as lines:
        for index, item in enumerate(urls):
            pair = isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(v, str) for v in item)
            if not (isinstance(item, str) or pair):
                raise ValueError(f"urls[{index}]: a URL or a (url, name) pair, got {item!r}")
            url, name = (item, "") if isinstance(item, str) else item
            if any(mark in f"{url}{name}" for mark in "\t\r\n"):
                raise ValueError(f"urls[{index}]: a URL or name holds a tab or a line break: {item!r}")
            lines.write(f"{url}\t{name}\n" if name else f"{url}\n")
    return listing
