"""``extract --urls-from LIST``: the photos of a list of http(s) URLs (a product feed's image
links), fetched a few at a time as the job goes, each removed once its garment is written.

A line is a URL, or a URL, a tab and its output's name (``https://cdn.example/123/image.jpg``
``<TAB>`` ``SKU123``: ``-o/SKU123.png``; ``tops/SKU123`` makes a subfolder). Without a name the
output takes the URL's file name (``file_name``). Blank lines and ``#`` lines are left out, as
in ``--files-from``. A shop's product table (CSV, TSV, or cells between semicolons; Google
Merchant Center's feed, an export) is read by its header: its ``image_link`` (or ``image_url``,
``image_src``, ``images``, ``url``) column, its ``id`` (or ``sku``, ``name``, ``handle``) column
for the names; a cell of several URLs (WooCommerce's) and a product's other images (Google's
``additional_image_link``) by ``_images_of`` and ``_each_image``; a Shopify product export, a row for
each image and variant, by ``_products``. An XML feed (RSS or Atom: what a shop publishes for
Google Merchant Center) is read by its items' ``g:image_link``, ``g:additional_image_link`` and
``g:id`` (``_items``). A line that is no URL, a name that leads outside ``-o``, two lines for one output,
a URL that cannot be fetched: each is that line's failure, reported, and the job goes on. The photos are fetched
``fetches`` at once (``extract --fetches N``, 8 unless told), and at most ``AHEAD_PER_FETCH``
times that are fetched and not yet taken by the job, which takes each as its fetch ends (a slow
server's photo waits, not the feed; while it waits, the photos it has are written): the scratch
folder holds those and the photos in flight, never the feed. The URLs of a server that stopped
answering, which wait for it (``fetches``), are not counted there, up to ``SET_ASIDE_MOST``: the
other servers' photos go on. A rerun asks the server whether
each image changed since its garment was made (If-Modified-Since): one that has not (304) is
not downloaded again.
"""

from __future__ import annotations

import codecs
import itertools
import posixpath
import re
import shutil
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..errors import InputError
from .fetches import Fetches
from .web import URL_FETCHES, file_name, is_url, shown

AHEAD_PER_FETCH = 4  # photos fetched, or being fetched, ahead of the job: for each download at once
SET_ASIDE_MOST = 1000  # a silent server's URLs waiting for it (``fetches``), beyond those, at most
WAITING_S = 0.1  # while no fetch ends, the job hears this often that none is ready (None)
WITH_NAME = "URL<TAB>NAME"
# a table's column of image URLs (Google Merchant's image_link, Shopify's Image Src, WooCommerce's Images), of names
URL_COLUMNS = ("image_link", "image_url", "image_src", "images", "url")
NAME_COLUMNS = ("id", "sku", "name", "handle")
OTHERS_COLUMN = "additional_image_link"  # a product's other images (Google's: URLs between commas), each its garment
GOOGLE = "http://base.google.com/ns/1.0"  # the namespace of an XML feed's g:id, g:image_link
SEVERAL_URLS = re.compile(r",\s*(?=https?://)")  # the commas between a cell's URLs
POSITION_COLUMN = "image_position"  # a product's several images, a row each (Shopify's export: ``_products``)


@dataclass(frozen=True)
class FeedLine:
    number: int
    text: str  # the URL as given (where it is none, the line's name or number: the report's input)
    rel: str  # the output's path under -o, without its suffix
    error: str | None = None


class Feed:
    """The URLs of ``listing`` (a file; standard input is saved to one first: it is read twice,
    to count and to fetch; UTF-8, or UTF-16 with its byte-order mark, copied into ``folder`` as
    UTF-8) as the photos of a folder job, fetched into ``folder``."""

    def __init__(self, listing: Path, shown_as: str, folder: Path, fetches: int = URL_FETCHES):
        """``InputError`` where ``listing`` cannot be read, or is no text (an image given for the list)."""
        self.listing, self.shown_as, self.folder, self.fetches = listing, shown_as, folder, fetches
        try:
            with open(listing, "rb") as text:
                start = text.read(8192)
        except OSError as exc:
            raise InputError(f"cannot read --urls-from {shown_as}: {exc.strerror or exc}") from None
        if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # (Excel's "Unicode Text", a TSV)
            self.listing = _in_utf8(listing, folder / "listing.txt")
        elif b"\0" in start:
            raise InputError(
                f"--urls-from {shown_as} is no list of URLs: it holds binary data (an image?); give a text file, "
                "a URL a line, or a product table (CSV, TSV)"
            )
        self.given: dict[Path, str] = {}  # each photo the job holds -> its URL, as messages name it
        # what the list holds: lines of URLs, a table's rows (``_columns``), an XML feed's items (``_items``)
        self.unit, self.url_field, self.name_fix = "line", "", WITH_NAME
        self.others_field = ""  # (a table's or a feed's other images: ``OTHERS_COLUMN``)
        # an output -> the time its signature records (``resume.recorded_time``), where a rerun would
        # skip it while its image is the same: the server is asked whether the image changed since
        self.since: Callable[[Path], float | None] | None = None

    def lines(self, shard=None) -> Iterator[FeedLine]:
        """The list's lines (of ``shard``'s share, by output name), each with its output's name,
        or why it has none."""
        what = f"--urls-from takes a URL a line (or {WITH_NAME}), or a table with a header"
        for number, url, name, other in self._entries():
            line = f"{self.unit} {number} of {self.shown_as}"
            if not is_url(url):
                if not self.url_field:
                    error = f"{line} is not an http(s) URL: {url!r}; {what} ({', '.join(URL_COLUMNS)})"
                else:  # (a product with no image, or a path where its URL should be)
                    field = self.others_field if other else self.url_field
                    error = f"{line} has no http(s) URL in {field}" + (f": {url!r}" if url else "")
                url = rel = name or line  # (the report's input; a share's, by it: each line said by one share)
            else:
                rel, error = output_name(name or file_name(url))
                error = error and f"{line}: {error}"
            if shard is None or shard.holds(rel):
                yield FeedLine(number, url, rel, error)

    def _entries(self) -> Iterator[tuple[int, str, str, bool]]:
        """Each entry's line number, URL, output name and whether it is one of a product's other
        images (``OTHERS_COLUMN``): a line's URL and what follows its tab; in a table (a first line
        that names ``URL_COLUMNS``: a shop's CSV or TSV product feed), each row's cells of those
        columns; in an XML feed, each item's (``_items``). ``InputError`` for a table whose header
        names none."""
        import csv

        from ..runtime.walk import read_listing

        with open(self.listing, "rb") as head:
            if head.read(1024).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
                yield from self._items()
                return
        entries = read_listing(self.listing)
        header, first = next(entries, (0, ""))
        if first and not is_url(first.strip()) and _delimiter(first):
            (url_at, name_at, others_at), (url_column, others_column), position = _columns(first, header, self.shown_as)
            self.url_field, self.name_fix = f"its {url_column} column", "an id column"
            self.others_field = f"its {others_column} column"
            with open(self.listing, encoding="utf-8-sig", errors="replace", newline="") as table:
                rows = csv.reader(table, delimiter=_delimiter(first))
                found = (
                    (
                        rows.line_num,
                        _images_of(_cell(row, url_at), [_cell(row, others_at)]),
                        _cell(row, name_at),
                        _cell(row, position),
                    )
                    for row in rows
                    if rows.line_num > header and any(cell.strip() for cell in row)
                )
                found = _each_image(found)
                yield from (entry[:3] + entry[4:] for entry in found) if position is None else _products(found)
            return
        for number, entry in itertools.chain([(header, first)] if first else [], entries):
            url, _, name = entry.partition("\t")
            yield number, url.strip(), name.strip(), False

    def _items(self) -> Iterator[tuple[int, str, str, bool]]:
        """An XML feed's items (RSS ``<item>``, Atom ``<entry>``: Google Merchant Center's feed),
        each its number, its ``g:image_link`` and its ``g:id``, and as many more entries as it has
        ``g:additional_image_link`` images (``ID_2``, ``ID_3``, as a table's: ``_images_of``), read
        as they come (each item let go once read: a feed of millions is not held); ``InputError``
        for XML that cannot be read."""
        import xml.etree.ElementTree as ET

        self.unit, self.url_field, self.name_fix = "item", "its g:image_link", "a g:id each"
        self.others_field = f"its g:{OTHERS_COLUMN}"
        number, path = 0, []
        try:
            for event, element in ET.iterparse(self.listing, events=("start", "end")):
                if event == "start":
                    path.append(element)
                    continue
                path.pop()
                if element.tag.rpartition("}")[2] in ("item", "entry"):
                    number += 1
                    urls = _images_of(_field(element, "image_link"), _fields(element, OTHERS_COLUMN))
                    item = iter([(number, urls, _field(element, "id"), "")])
                    yield from (entry[:3] + entry[4:] for entry in _each_image(item))
                    if path:
                        path[-1].remove(element)
        except ET.ParseError as exc:
            raise InputError(
                f"--urls-from {self.shown_as} is XML that cannot be read ({exc}): a feed is RSS or Atom "
                "(Google Merchant Center's), a product table (CSV, TSV), or a URL a line"
            ) from None

    def count(self, shard=None) -> int:
        return sum(1 for _ in self.lines(shard))

    def photos(self, out_dir: Path, fmt: str, shard=None) -> Iterator:
        """Each line of ``shard``'s share as a ``walk.Found``: its photo fetched, or the line's error
        (two lines for one output: the second's). Up to ``AHEAD_PER_FETCH * fetches`` are fetched
        ahead, and each is given once it is fetched: a slow server holds up its own photos, not
        the feed's; while none is, None every ``WAITING_S`` (the job writes the photos it has,
        and hears Ctrl-C)."""
        fetches = Fetches(self.fetches)
        try:
            yield from self._photos(fetches, out_dir, fmt, shard)
        finally:
            fetches.close()  # (a job stopped: the URLs waiting for a silent server fail, their threads end)

    def _photos(self, fetches: Fetches, out_dir: Path, fmt: str, shard=None) -> Iterator:
        fetching, ahead = {}, AHEAD_PER_FETCH * self.fetches
        claimed: dict[str, int] = {}  # output -> its line (numbers, not URLs: a feed's million are held)
        for index, line in enumerate(self.lines(shard)):
            if line.error is None and line.rel in claimed:
                output = out_dir / f"{line.rel}.{fmt}"
                twice = f"{self.unit} {line.number} and {self.unit} {claimed[line.rel]} of {self.shown_as} would both "
                twice += f"be written to {output}: give each its output's name ({self.name_fix})"
                line = FeedLine(line.number, line.text, line.rel, twice)
            elif line.error is None:
                claimed[line.rel] = line.number
            folder = self.folder / str(index)  # (a line of several images: a folder each)
            if line.error is not None:
                yield self._found(line, folder)
                continue
            folder.mkdir()
            since = self.since(out_dir / f"{line.rel}.{fmt}") if self.since is not None else None
            fetching[fetches.submit(line.text, folder, since)] = line, folder
            while len(fetching) >= ahead + min(fetches.set_aside(), SET_ASIDE_MOST):  # (no file yet: not counted)
                yield from self._fetched(fetching)
        while fetching:
            yield from self._fetched(fetching)

    def jobs(self, out_dir: Path, fmt: str, masks=None, save_masks=None, shard=None) -> Iterator:
        """``photos`` as the folder job's jobs (``runtime.jobs.job_of``: ``masks``, a ``MaskIndex``,
        matched by output name), a None passed on (none fetched yet: ``pipeline.run_extraction``)."""
        from ..runtime.jobs import job_of

        for photo in self.photos(out_dir, fmt, shard):
            yield None if photo is None else job_of(photo, out_dir, fmt, masks, save_masks)

    def ask_since(self, generator, segmenter, options) -> None:
        """A rerun with these sessions and ``ExtractOptions`` asks the server whether each image
        changed since its garment was made (``since``): one that has not is not fetched again."""
        from ..runtime.options import make_plan
        from ..runtime.resume import recorded_time

        plan = make_plan(generator, segmenter, options)
        self.since = lambda output: recorded_time(plan, output)

    def _fetched(self, fetching: dict[Future, tuple[FeedLine, Path]]) -> Iterator:
        """The photos of ``fetching`` whose fetch has ended, taken out of it; None where none has
        within ``WAITING_S`` (the job moves on what it has: ``pipeline.run_extraction``)."""
        done = wait(fetching, timeout=WAITING_S, return_when=FIRST_COMPLETED).done
        if not done:
            yield None
        for fetched in done:
            yield self._found(*fetching.pop(fetched), fetched)

    def _found(self, line: FeedLine, folder: Path, fetched: Future | None = None):
        from ..runtime.walk import Found

        error, path = line.error, folder / "unfetched"
        if fetched is not None:
            try:  # (None: not changed since its garment was made; no file: its job finds it done)
                path = fetched.result() or folder / "unchanged"
            except InputError as exc:
                error = str(exc)
        self.given[path] = shown(line.text) if is_url(line.text) else line.text
        return Found(path, line.rel, error=error)

    def release(self, photo: str | Path) -> None:
        """The fetched photo of a finished job removed (with its folder), and forgotten."""
        path = Path(photo)
        if self.given.pop(path, None) is not None and path.parent.parent == self.folder:
            shutil.rmtree(path.parent, ignore_errors=True)


def _in_utf8(listing: Path, copy: Path) -> Path:
    """A UTF-16 list (with its byte-order mark: what Excel saves as Unicode Text) copied as UTF-8,
    a piece at a time (a feed of millions of lines is not held)."""
    with open(listing, encoding="utf-16", errors="replace", newline="") as text:
        with open(copy, "w", encoding="utf-8", newline="") as out:
            shutil.copyfileobj(text, out)
    return copy


def _field(item, name: str) -> str:
    """The text of an XML feed item's ``g:NAME`` (Google's namespace), else its ``NAME``."""
    found = item.find(f"{{{GOOGLE}}}{name}")
    found = item.find(name) if found is None else found
    return (found.text or "").strip() if found is not None else ""


def _fields(item, name: str) -> list[str]:
    """The texts of each of an XML feed item's ``g:NAME`` (and ``NAME``) elements."""
    return [(found.text or "").strip() for found in (*item.findall(f"{{{GOOGLE}}}{name}"), *item.findall(name))]


def _images_of(cell: str, others: list[str]) -> list[tuple[str, bool]]:
    """A product's image URLs for ``_each_image``, each with whether it is one of its other images:
    its URL cell's (one, or several between commas: WooCommerce's Images; the first named by the
    product, the others ``NAME_2``, ``NAME_3``; an empty cell still an entry, so that a product
    without its main image has that said, by its name), then those of its other images
    (``OTHERS_COLUMN``'s cells or elements, each a URL or several between commas) not listed before."""
    urls = [one.strip() for one in (SEVERAL_URLS.split(cell) if "," in cell else [cell])]
    images = [(url, False) for url in urls]
    for other in others:
        for one in SEVERAL_URLS.split(other):
            if one.strip() and one.strip() not in urls:
                urls.append(one.strip())
                images.append((one.strip(), True))
    return images


def _delimiter(header: str) -> str:
    """What a table's ``header`` line separates its cells with: a tab (TSV), a comma (CSV), or a
    semicolon (a spreadsheet's CSV where a comma is the decimal point); "" for none of them."""
    return next((mark for mark in ("\t", ",", ";") if mark in header), "")


def _cell(row: list[str], at: int | None) -> str:
    return row[at].strip() if at is not None and at < len(row) else ""


def _each_image(
    rows: Iterator[tuple[int, list[tuple[str, bool]], str, str]],
) -> Iterator[tuple[int, str, str, str, bool]]:
    """A table's rows (or a feed's items), one with several images (``_images_of``) an entry each:
    its first named by the row's name, the others by the name and their place (``SKU_2``)."""
    for number, images, name, position in rows:
        for place, (url, other) in enumerate(images, 1):
            yield number, url, name if place == 1 or not name else f"{name}_{place}", position, other


def _products(rows: Iterator[tuple[int, str, str, str, bool]]) -> Iterator[tuple[int, str, str, bool]]:
    """The entries of a table that lists a product's images a row each, by ``POSITION_COLUMN``
    (Shopify's export: a product's rows one after the other): a product's first image is named
    by the product (``shirt``), its others by the product and their position (``shirt_2``: a
    Shopify handle holds no ``_``); a row of a product without an image (a variant's) is left
    out, and a product none of whose rows has one is its first row, which says so."""
    images: dict[str, int] = {}  # a product's name -> its images so far
    bare = None  # the first row of the product of the rows before, while none of them has an image
    for number, url, name, position, other in rows:
        if bare is not None and name != bare[2]:
            if not images[bare[2]]:
                yield bare
            bare = None
        if name and url:
            images[name] = images.get(name, 0) + 1
            at = int(position) if position.isdigit() and int(position) > 0 else images[name]
            yield number, url, name if at == 1 else f"{name}_{at}", other
        elif not name:
            yield number, url, name, other
        elif name not in images:
            images[name], bare = 0, (number, url, name, other)
    if bare is not None and not images[bare[2]]:
        yield bare


def _columns(
    header: str, number: int, shown_as: str
) -> tuple[tuple[int, int | None, int | None], tuple[str, str], int | None]:
    """The places of the image URL's column, the output name's and the other images' in a table's
    ``header`` line (the first of ``URL_COLUMNS``, of ``NAME_COLUMNS`` it names, ``OTHERS_COLUMN``;
    in any case, spaces as ``_``), the names of the first and the last as given, and the place of its
    ``POSITION_COLUMN`` (or None); ``InputError`` where it names no image column."""
    import csv

    cells = next(csv.reader([header], delimiter=_delimiter(header)))
    names = [cell.strip().lower().replace(" ", "_") for cell in cells]
    found = [next((names.index(c) for c in columns if c in names), None) for columns in (URL_COLUMNS, NAME_COLUMNS)]
    if found[0] is None:
        raise InputError(
            f"--urls-from {shown_as}: line {number} is a table's header ({', '.join(cells[:6])}) with no column "
            f"of image URLs: name it {' or '.join(URL_COLUMNS)} (and its names' column {' or '.join(NAME_COLUMNS)}), "
            f"or give a URL a line"
        )
    position = names.index(POSITION_COLUMN) if POSITION_COLUMN in names else None
    others = names.index(OTHERS_COLUMN) if OTHERS_COLUMN in names else None
    named = (cells[found[0]].strip(), cells[others].strip() if others is not None else OTHERS_COLUMN)
    return (found[0], found[1], others), named, position


def output_name(name: str) -> tuple[str, str | None]:
    """A feed line's output name (its own, or its URL's file name) as a path under ``-o`` without
    its suffix (an image suffix given is left out: ``SKU1.jpg`` writes ``SKU1.png``), with why it
    cannot be one (it leads outside ``-o``), or None."""
    from ..runtime.images import IMAGE_SUFFIXES

    stem, suffix = posixpath.splitext(name)
    rel = posixpath.normpath(stem if suffix.lower() in IMAGE_SUFFIXES else name)
    if rel.startswith(("/", "../")) or rel in ("..", ".", "") or "\0" in rel:
        return name, f"the output name {name!r} is not a name inside -o: give one such as SKU123 or tops/SKU123"
    return rel, None
