"""``extract --urls-from LIST``: a product feed's image URLs, fetched as the job goes, each
photo's garment named by its line (or its URL's file name); every line that cannot be a
photo is reported with its line, and the job goes on.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from clothes_extractor import extract_urls
from clothes_extractor.api.feed import AHEAD_PER_FETCH
from clothes_extractor.api.web import URL_FETCHES
from clothes_extractor.errors import InputError
from clothes_extractor.runtime.session import ModelSession
from conftest import answer, cli_env, cut_out, person_photo, run_cli, serving

MODEL = ("--alpha-mask", "--no-segmenter")


class _Files(http.server.SimpleHTTPRequestHandler):
    """Serves a folder (with Last-Modified, and 304 Not Modified to If-Modified-Since, as a CDN
    does); each answer's path and status kept in ``answers``."""

    answers: list[tuple[str, int]] = []

    def log_request(self, code="-", size="-"):
        self.answers.append((self.path, int(code)))


@pytest.fixture
def site(tmp_path):
    """A web server on loopback serving ``tmp_path/site``; yields (its folder, its address, its answers)."""
    folder = tmp_path / "site"
    folder.mkdir()
    handler = type("Files", (_Files,), {"answers": []})
    with serving(functools.partial(handler, directory=str(folder))) as url:
        yield folder, url, handler.answers


def _photos(folder: Path, *names: str) -> None:
    """A photo of another person under each of ``names`` in ``folder`` (a site's), its garment its alpha."""
    for index, name in enumerate(names):
        cut_out(index).save(folder / name)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _files_under(folder: Path) -> int:
    """How many files ``folder`` holds, in any subfolder (one removed meanwhile: not counted)."""
    return sum(len(files) for _, _, files in os.walk(folder))


def _report(path: Path) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        found.setdefault(record["input"], []).append(record)
    return found


def test_a_feed_writes_each_photo_under_its_lines_name_and_reports_every_line_that_cannot_be_one(
    tiny_model_path, tmp_path, site, monkeypatch
):
    folder, url, answers = site
    for rel, index in (("a/image.png", 0), ("b/image.png", 1), ("c.png", 2)):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        cut_out(index).save(folder / rel)
    person_photo(3)[0].save(folder / "plain.jpg")  # no alpha: its mask is --masks plain.png, by the line's name
    masks = tmp_path / "masks"
    masks.mkdir()
    person_photo(3)[1].save(masks / "plain.png")
    feed = tmp_path / "feed.txt"
    feed.write_text(
        "# the shop's feed: URL, tab, SKU\n"
        f"{url}/a/image.png\tSKU-A.jpg\n"  # (an image suffix in the name is left out)
        f"{url}/b/image.png\n"  # no name: the URL's file name
        "\n"
        f"{url}/a/image.png\n"  # line 5: the same output as line 3's
        "a/image.png\n"  # line 6: not a URL
        f"{url}/gone.png\tgone\n"
        f"{url}/c.png\ttops/c\n"  # a subfolder of -o
        f"{url}/c.png\t../c\n"  # line 9: outside -o
        f"{url}/plain.jpg\tplain\n"
    )
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # (the job's scratch folder: empty at the end)
    (tmp_path / "tmp").mkdir()
    out, report = tmp_path / "out", tmp_path / "r.jsonl"
    args = ("--model", tiny_model_path, *MODEL, "--masks", masks, "--report", report)
    done = run_cli("extract", "--urls-from", feed, "-o", out, *args)
    assert done.returncode == 1, done.stderr
    written = sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())
    assert written == ["SKU-A.png", "image.png", "plain.png", "tops/c.png"]
    assert f"line 5 and line 3 of {feed} would both be written to {out / 'image.png'}: give each" in done.stderr
    assert f"line 6 of {feed} is not an http(s) URL: 'a/image.png'" in done.stderr
    assert f"error: cannot fetch {url}/gone.png: File not found" in done.stderr
    assert f"line 9 of {feed}: the output name '../c' is not a name inside -o" in done.stderr
    assert "extracting 8 photo(s)" in done.stderr and "4 extracted" in done.stderr and "4 failed" in done.stderr
    found = _report(report)
    assert sorted(r["output"] for r in found[f"{url}/a/image.png"] if r["output"]) == [str(out / "SKU-A.png")]
    assert [r["status"] for r in found[f"line 6 of {feed}"]] == ["error"]
    assert [r["mask"] for r in found[f"{url}/plain.jpg"]] == [f"file:{masks / 'plain.png'}"]
    assert list((tmp_path / "tmp").glob("clothes-extractor-*")) == []

    answers.clear()
    again = run_cli("extract", "--urls-from", feed, "-o", out, *args)  # fetched again: the same bytes, all done
    assert "0 extracted" in again.stderr and "4 skipped (already done)" in again.stderr, again.stderr
    assert {code for _, code in answers} == {200, 404}  # (--masks: a mask file may come since: downloaded)
    answers.clear()
    done_ones = f"{url}/a/image.png\tSKU-A\n{url}/b/image.png\n{url}/c.png\ttops/c\n".encode()
    asked = run_cli("extract", "--urls-from", "-", "-o", out, "--model", tiny_model_path, *MODEL, stdin=done_ones)
    assert asked.returncode == 0 and b"3 skipped (already done)" in asked.stderr, asked.stderr
    assert sorted(answers) == [("/a/image.png", 304), ("/b/image.png", 304), ("/c.png", 304)]  # not downloaded
    answers.clear()
    shutil.copy(folder / "c.png", folder / "b" / "image.png")  # the shop's photo taken again
    one = f"{url}/b/image.png\n{url}/c.png\ttops/c\n".encode()
    changed = run_cli("extract", "--urls-from", "-", "-o", out, "--model", tiny_model_path, *MODEL, stdin=one)
    assert changed.returncode == 0 and b"1 extracted" in changed.stderr and b"1 skipped" in changed.stderr
    assert np.array_equal(_pixels(out / "image.png"), _pixels(out / "tops" / "c.png"))  # (now c's photo)
    assert sorted(answers) == [("/b/image.png", 200), ("/c.png", 304)]
    assert list((tmp_path / "tmp").glob("clothes-extractor-*")) == []


def test_a_shops_product_table_is_read_by_its_header_and_names_each_garment_by_its_id(tiny_model_path, tmp_path, site):
    folder, url, _ = site
    _photos(folder, "a.png", "b.png")
    table = tmp_path / "products.csv"
    table.write_text(
        "# exported 2026-12-05\n"
        "ID,Title,Image Link,Price\n"  # (any case; a space for _)
        f'SKU-1,"Blue shirt, cotton",{url}/a.png,10\n'
        f'SKU-2,"Two\nlines",{url}/b.png,12\n'  # a quoted cell over two lines: lines 4 and 5
        "SKU-3,no photo yet,,5\n"
    )
    model = ("--model", tiny_model_path, *MODEL)
    done = run_cli("extract", "--urls-from", table, "-o", tmp_path / "csv", *model)
    assert done.returncode == 1, done.stderr
    assert sorted(path.name for path in (tmp_path / "csv").iterdir()) == ["SKU-1.png", "SKU-2.png"]
    assert f"error: SKU-3: line 6 of {table} has no http(s) URL in its Image Link column" in done.stderr
    google = f"id\ttitle\tlink\timage_link\nG-7\tShirt\t{url}/shirt.html\t{url}/b.png\n"  # Merchant Center's TSV
    done = run_cli("extract", "--urls-from", "-", "-o", tmp_path / "tsv", *model, stdin=google.encode())
    assert done.returncode == 0 and [path.name for path in (tmp_path / "tsv").iterdir()] == ["G-7.png"], done.stderr
    excel = tmp_path / "unicode.txt"  # Excel's "Unicode Text": a TSV in UTF-16, byte-order mark first
    excel.write_text(f"SKU\tName\tImage URL\r\nU-1\tJäcke\t{url}/a.png\r\n", encoding="utf-16")
    done = run_cli("extract", "--urls-from", excel, "-o", tmp_path / "utf16", *model)
    assert done.returncode == 0 and [path.name for path in (tmp_path / "utf16").iterdir()] == ["U-1.png"], done.stderr
    europe = f"sku;name;price;url\nE-1;Hemd;9,90;{url}/a.png\n"  # (a spreadsheet's CSV where , is the decimal point)
    done = run_cli("extract", "--urls-from", "-", "-o", tmp_path / "semi", *model, stdin=europe.encode())
    assert done.returncode == 0 and [path.name for path in (tmp_path / "semi").iterdir()] == ["E-1.png"], done.stderr
    other = tmp_path / "other.csv"
    other.write_text(f"Handle,Title,Picture\nshirt,Shirt,{url}/a.png\n")
    done = run_cli("extract", "--urls-from", other, "-o", tmp_path / "none", *model)
    assert done.returncode == 1 and "line 1 is a table's header (Handle, Title, Picture) with no column of image " \
        "URLs: name it image_link or image_url or image_src or images or url" in done.stderr, done.stderr  # fmt: skip
    assert not (tmp_path / "none").exists()


def test_a_woocommerce_export_gives_each_image_of_a_row_its_own_garment(tiny_model_path, tmp_path, site):
    """WooCommerce's product export: a row's Images cell lists its images (``URL, URL``): the
    first named by the row's ID, the others by the ID and their place."""
    folder, url, _ = site
    _photos(folder, "front.png", "back.png")
    table = tmp_path / "wc-product-export.csv"
    table.write_text(
        "ID,Type,SKU,Name,Published,Images,Parent\n"
        f'101,variable,TEE,Tee,1,"{url}/front.png, {url}/back.png",\n'
        f"102,variation,TEE-S,Tee - S,1,{url}/front.png,id:101\n"
        "103,simple,CAP,Cap,1,,\n"
    )
    done = run_cli("extract", "--urls-from", table, "-o", tmp_path / "out", "--model", tiny_model_path, *MODEL)
    assert done.returncode == 1 and "3 extracted" in done.stderr, done.stderr
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["101.png", "101_2.png", "102.png"]
    assert _pixels(tmp_path / "out" / "101.png").tobytes() != _pixels(tmp_path / "out" / "101_2.png").tobytes()
    assert f"error: 103: line 4 of {table} has no http(s) URL in its Images column" in done.stderr


def test_a_google_merchant_xml_feed_is_read_by_its_items(tiny_model_path, tmp_path, site):
    """The XML feed a shop publishes for Google Merchant Center (RSS, or Atom): each item's
    ``g:image_link`` named by its ``g:id``; an item with no image is reported by its number;
    XML that cannot be read is refused before any work."""
    folder, url, _ = site
    _photos(folder, "a.png", "b.png")
    (folder / "feed.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss xmlns:g="http://base.google.com/ns/1.0" version="2.0">'
        "<channel><title>The shop</title><link>https://shop.example</link>\n"
        f"<item><title>Shirt</title><g:id>SKU-1</g:id><g:image_link>{url}/a.png</g:image_link></item>\n"
        "<item><title>Gift card</title><g:id>GC</g:id><g:price>10 EUR</g:price></item>\n"
        f"<item><g:id>SKU-3</g:id><g:image_link>\n  {url}/b.png\n</g:image_link></item>\n</channel></rss>\n"
    )
    (tmp_path / "atom.xml").write_text(
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:g="http://base.google.com/ns/1.0"><title>Shop</title>'
        f"<entry><id>tag:shop.example,2026:1</id><g:id>A-1</g:id><g:image_link>{url}/b.png</g:image_link></entry>"
        "</feed>"
    )
    (tmp_path / "broken.xml").write_text(f"<rss><channel><item><g:image_link>{url}/a.png</g:image_link>")
    # a feed from elsewhere that would blow up (entities of entities: ~3 GB of text) or read a local file
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    (tmp_path / "laughs.xml").write_text(
        f'<!DOCTYPE r [<!ENTITY l0 "lol">{laughs}]><rss><item><id>&l9;</id></item></rss>'
    )
    (tmp_path / "local.xml").write_text(
        '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/hostname">]><rss><item><id>&x;</id>'
        f"<image_link>{url}/a.png</image_link></item></rss>"
    )
    model = ("--model", tiny_model_path, *MODEL)
    done = run_cli("extract", "--urls-from", f"{url}/feed.xml", "-o", tmp_path / "rss", *model)
    assert done.returncode == 1 and "2 extracted" in done.stderr, done.stderr
    assert sorted(path.name for path in (tmp_path / "rss").iterdir()) == ["SKU-1.png", "SKU-3.png"]
    assert f"error: GC: item 2 of {url}/feed.xml has no http(s) URL in its g:image_link" in done.stderr
    atom = run_cli("extract", "--urls-from", tmp_path / "atom.xml", "-o", tmp_path / "atom", *model)
    assert atom.returncode == 0 and [path.name for path in (tmp_path / "atom").iterdir()] == ["A-1.png"], atom.stderr
    for name in ("broken.xml", "laughs.xml", "local.xml"):
        refused = run_cli("extract", "--urls-from", tmp_path / name, "-o", tmp_path / "never", *model)
        assert refused.returncode == 1 and f"{name} is XML that cannot be read (" in refused.stderr, refused.stderr
        assert not (tmp_path / "never").exists()


def test_a_google_feeds_other_images_each_get_their_garment(tiny_model_path, tmp_path, site):
    """Google Merchant Center's ``additional_image_link`` (a TSV cell of URLs between commas, or an
    XML item's repeated element): each of a product's other images is extracted too, named by its
    id and place (``G-7_2``), once (one listed again, or as the main image, is not fetched twice);
    one that is no URL is said to be in the column (the element) it is in."""
    folder, url, answers = site
    _photos(folder, "a.png", "b.png", "c.png")
    tsv = (
        "id\ttitle\timage_link\tadditional_image_link\n"
        f"G-7\tShirt\t{url}/a.png\t{url}/b.png,{url}/c.png,{url}/a.png\n"
        f"G-8\tCap\t{url}/c.png\t\n"
        f"G-9\tScarf\t\t{url}/b.png\n"  # (no main image: said; its other image extracted)
        f"G-10\tBelt\t{url}/b.png\tphotos/belt-back.jpg\n"  # (a path where a URL should be)
    )
    (tmp_path / "feed.tsv").write_text(tsv)
    model = ("--model", tiny_model_path, *MODEL)
    done = run_cli("extract", "--urls-from", tmp_path / "feed.tsv", "-o", tmp_path / "tsv", *model)
    assert done.returncode == 1 and "6 extracted" in done.stderr, done.stderr
    written = sorted(path.name for path in (tmp_path / "tsv").iterdir())
    assert written == ["G-10.png", "G-7.png", "G-7_2.png", "G-7_3.png", "G-8.png", "G-9_2.png"], written
    assert f"error: G-9: line 4 of {tmp_path / 'feed.tsv'} has no http(s) URL in its image_link column" in done.stderr
    said = f"error: G-10_2: line 5 of {tmp_path / 'feed.tsv'} has no http(s) URL in its additional_image_link column"
    assert f"{said}: 'photos/belt-back.jpg'" in done.stderr, done.stderr
    assert [path for path, _ in answers].count("/a.png") == 1  # (listed again as an other image: once)
    assert _pixels(tmp_path / "tsv" / "G-7_3.png").tobytes() == _pixels(tmp_path / "tsv" / "G-8.png").tobytes()
    (folder / "feed.xml").write_text(
        '<?xml version="1.0"?>\n<rss xmlns:g="http://base.google.com/ns/1.0" version="2.0"><channel>\n'
        f"<item><g:id>X-1</g:id><g:image_link>{url}/a.png</g:image_link>"
        f"<g:additional_image_link>{url}/b.png</g:additional_image_link>"
        f"<g:additional_image_link> {url}/c.png </g:additional_image_link></item>\n"
        f"<item><g:image_link>{url}/b.png</g:image_link></item>\n"  # (no id: the URL's name)
        f"<item><g:id>X-3</g:id><g:image_link>{url}/c.png</g:image_link>"
        "<g:additional_image_link>belt-back.jpg</g:additional_image_link></item>\n</channel></rss>\n"
    )
    done = run_cli("extract", "--urls-from", f"{url}/feed.xml", "-o", tmp_path / "xml", *model)
    written = sorted(path.name for path in (tmp_path / "xml").iterdir())
    assert done.returncode == 1 and written == ["X-1.png", "X-1_2.png", "X-1_3.png", "X-3.png", "b.png"], done.stderr
    said = f"error: X-3_2: item 3 of {url}/feed.xml has no http(s) URL in its g:additional_image_link: 'belt-back.jpg'"
    assert said in done.stderr, done.stderr


def test_a_shopify_export_names_a_products_images_by_its_handle_and_leaves_out_its_variants_rows(
    tiny_model_path, tmp_path, site
):
    """Shopify's product export: a row for each variant and each image of a product, all under
    its Handle; the image of the first row is the product's main one (Image Position 1)."""
    folder, url, answers = site
    for index, name in enumerate(("tee-front", "tee-back", "dress", "tee-1", "coat")):
        cut_out(index).save(folder / f"{name}.png")
    table = tmp_path / "products_export_1.csv"
    header = "Handle,Title,Body (HTML),Option1 Name,Option1 Value,Variant SKU,Image Src,Image Position,Variant Image"
    table.write_text(
        f"{header}\n"
        f'tee,Tee,"<p>Soft, cotton</p>",Size,S,TEE-S,{url}/tee-front.png,1,\n'
        f"tee,,,,M,TEE-M,{url}/tee-back.png,2,{url}/tee-front.png\n"  # its second image (and a variant's)
        "tee,,,,L,TEE-L,,,\n"  # a variant: no image of its own
        f"dress,Dress,,Title,Default Title,DR-1,{url}/dress.png,1,\n"
        "gift-card,Gift card,,Title,Default Title,GC,,,\n"  # no image at all: reported, as a row with no URL is
        f"tee-1,Another tee,,Title,Default Title,T1,{url}/tee-1.png,,\n"  # (Shopify names a second Tee tee-1)
        "coat,Coat,,Size,S,C-S,,,\n"  # (its image on its second row: the first is not reported)
        f"coat,,,,M,C-M,{url}/coat.png,,\n"
    )
    out = tmp_path / "out"
    done = run_cli("extract", "--urls-from", table, "-o", out, "--model", tiny_model_path, *MODEL)
    assert done.returncode == 1, done.stderr
    assert sorted(path.name for path in out.iterdir()) == ["coat.png", "dress.png", "tee-1.png", "tee.png", "tee_2.png"]
    assert _pixels(out / "tee.png").tobytes() != _pixels(out / "tee_2.png").tobytes()  # front and back, not one twice
    assert f"error: gift-card: line 6 of {table} has no http(s) URL in its Image Src column" in done.stderr
    assert "5 extracted" in done.stderr and "1 failed" in done.stderr and "TEE-L" not in done.stderr, done.stderr
    assert sorted(path for path, _ in answers) == ["/coat.png", "/dress.png", "/tee-1.png", "/tee-back.png",
                                                   "/tee-front.png"]  # fmt: skip


def test_a_feed_is_fetched_as_the_job_goes_never_all_first(tiny_model_path, tmp_path, monkeypatch):
    """A feed of 120 URLs: the scratch folder never holds more than the photos fetched ahead
    (``AHEAD_PER_FETCH`` for each download at once) and those in flight (fetched all first, it
    held 79 at the last request)."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    bodies = []
    for index in range(3):
        cut_out(index).save(tmp_path / f"{index}.png")
        bodies.append((tmp_path / f"{index}.png").read_bytes())
    held: list[int] = []

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            held.append(_files_under(scratch))
            body = bodies[int(self.path.rsplit("/", 1)[1].removesuffix(".png")) % 3]
            answer(self, 200, body, Content_Type="image/png")

        def log_message(self, *args):
            pass

    with serving(Site) as url:
        feed = "".join(f"{url}/p/{i}.png\n" for i in range(120)).encode()
        out = tmp_path / "out"
        done = run_cli("extract", "--urls-from", "-", "-o", out, "--model", tiny_model_path, *MODEL,
                       "--batch-size", "2", "--workers", "2", stdin=feed)  # fmt: skip
    assert done.returncode == 0 and b"120 extracted" in done.stderr, done.stderr
    assert len(list(out.iterdir())) == 120 and len(held) == 120
    ahead = AHEAD_PER_FETCH * URL_FETCHES
    assert max(held) <= ahead + 2 * 2 + 2 + 8, max(held)  # fetched ahead + in flight (+ the fetches under way)
    assert list(scratch.glob("clothes-extractor-*")) == []


def test_a_slow_server_holds_up_its_own_photo_not_the_feed(tiny_model_path, tmp_path):
    """The first URL of 61 answers only once the eleventh photo's garment is written (or after
    30 s): the others are fetched and extracted meanwhile, each as its fetch ends (taken in the
    list's order, all waited for the first)."""
    out, body = tmp_path / "out", io.BytesIO()
    cut_out(0).save(body, "PNG")
    seen: list[bool] = []

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path == "/slow.png":
                waited = time.monotonic() + 30
                while not (out / "p10.png").exists() and time.monotonic() < waited:
                    time.sleep(0.05)
                seen.append((out / "p10.png").exists())
            answer(self, 200, body.getvalue(), Content_Type="image/png")

        def log_message(self, *args):
            pass

    with serving(Site) as url:
        feed = f"{url}/slow.png\n" + "".join(f"{url}/p{i}.png\n" for i in range(60))
        done = run_cli("extract", "--urls-from", "-", "-o", out, "--model", tiny_model_path, *MODEL,
                       "--batch-size", "2", stdin=feed.encode())  # fmt: skip
    assert done.returncode == 0 and b"61 extracted" in done.stderr, done.stderr
    assert seen == [True]


def test_fetches_sets_how_many_downloads_run_at_once(tiny_model_path, tmp_path):
    """A feed of 30 URLs, each answered after 0.3 s: with ``--fetches 2`` two are asked at once
    at most, with ``--fetches 12`` more than the default's eight; the URL inputs too."""
    body, lock, asked = io.BytesIO(), threading.Lock(), []
    cut_out(0).save(body, "PNG")
    at_once = 0

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            nonlocal at_once
            with lock:
                at_once += 1
                asked.append(at_once)
            time.sleep(0.3)
            with lock:
                at_once -= 1
            answer(self, 200, body.getvalue(), Content_Type="image/png")

        def log_message(self, *args):
            pass

    with serving(Site) as url:
        feed = "".join(f"{url}/p{i}.png\n" for i in range(30)).encode()
        most = {}
        for fetches in (2, 12):
            asked.clear()
            done = run_cli("extract", "--urls-from", "-", "-o", tmp_path / f"feed-{fetches}", "--fetches", fetches,
                           "--model", tiny_model_path, *MODEL, stdin=feed)  # fmt: skip
            assert done.returncode == 0 and b"30 extracted" in done.stderr, done.stderr
            assert f", {fetches} downloads at once) -> ".encode() in done.stderr, done.stderr  # (said as it starts)
            most[fetches] = max(asked)
        asked.clear()
        urls = [f"{url}/u{i}.png" for i in range(6)]
        done = run_cli("extract", *urls, "-o", tmp_path / "urls", "--fetches", 3, "--model", tiny_model_path, *MODEL)
        assert done.returncode == 0 and "6 extracted" in done.stderr, done.stderr
        most["urls"] = max(asked)
    assert most[2] == 2 and most[12] > URL_FETCHES and most["urls"] == 3, most


@contextlib.contextmanager
def _servers() -> Iterator[tuple[str, str, threading.Event, list]]:
    """Two servers on loopback serving a photo at every path, yielded as their addresses, ``down``
    and ``asked``: the first, while ``down`` is set (it is at first), takes each request and never
    answers in time (2 s: beyond the tests' ``TIMEOUT_S``), ``asked`` keeping each request's path
    and whether it was down then; the second answers."""
    body, asked, down = io.BytesIO(), [], threading.Event()
    cut_out(0).save(body, "PNG")
    down.set()

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            asked.append((self.path, down.is_set()))
            if down.is_set():
                time.sleep(2)
            try:
                answer(self, 200, body.getvalue(), Content_Type="image/png")
            except OSError:  # (the client gave up)
                pass

        def log_message(self, *args):
            pass

    class Answers(Flaky):
        def do_GET(self):  # noqa: N802 - http.server's name
            answer(self, 200, body.getvalue(), Content_Type="image/png")

    with serving(Flaky) as silent, serving(Answers) as up:
        yield silent, up, down, asked


@pytest.fixture
def quick_fetches(monkeypatch):
    """``api.fetches``' ``Fetches`` and ``SILENT_AFTER``, its fetches timing out after 0.3 s and tried
    again at once (``api.web``), and ``waits(OUTAGE_S, PROBE_EVERY_S)``, which sets how a silent
    server is waited for."""
    from clothes_extractor.api import fetches, web

    monkeypatch.setattr(web, "TIMEOUT_S", 0.3)
    monkeypatch.setattr(web, "RETRY_WAITS_S", (0.01, 0.01))

    def waits(outage_s: float, probe_s: float) -> None:
        monkeypatch.setattr(fetches, "OUTAGE_S", outage_s)
        monkeypatch.setattr(fetches, "PROBE_EVERY_S", probe_s)

    return types.SimpleNamespace(Fetches=fetches.Fetches, SILENT_AFTER=fetches.SILENT_AFTER, waits=waits)


def _submitted(fetches, urls: list[str], folder: Path) -> list:
    futures = []
    for url in urls:
        (folder / str(len(list(folder.iterdir())))).mkdir()
        futures.append(fetches.submit(url, sorted(folder.iterdir(), key=lambda f: int(f.name))[-1]))
    return futures


def _outcomes(futures: list, timeout: float = 60) -> list:
    return [future.exception(timeout=timeout) or future.result() for future in futures]


def test_a_server_that_does_not_answer_costs_a_few_timeouts_not_three_for_each_of_its_urls(tmp_path, quick_fetches):
    """Twelve URLs of a server that takes each request and never answers in time, three of one
    that answers, two downloads at once, a server waited for no longer than it takes to find it
    silent (``OUTAGE_S`` 0): once ``SILENT_AFTER`` fetches in a row from the first have timed out
    (three tries each), its other URLs are not tried, each said so; the other server's are
    fetched. (Each URL was tried three times: 3 x 30 s each, hours for a feed.)"""
    fetching = quick_fetches
    fetching.waits(0.0, 60.0)

    with _servers() as (silent, up, down, asked):
        urls = [f"{silent}/d{i}.png" for i in range(12)] + [f"{up}/u{i}.png" for i in range(3)]
        outcomes = _outcomes(_submitted(fetching.Fetches(2), urls, tmp_path))
    timed_out = [str(o) for o in outcomes[:12] if "timed out; tried 3 times: try again later" in str(o)]
    not_tried = [str(o) for o in outcomes[:12] if ": not tried: 127.0.0.1:" in str(o)]
    assert (
        fetching.SILENT_AFTER <= len(timed_out) <= fetching.SILENT_AFTER + 1 and len(timed_out) + len(not_tried) == 12
    )
    said = r"not tried: 127\.0\.0\.1:\d+ did not answer [34] fetches in a row \(each timed out 3 times\), and was "
    said += "waited for 0 s; run the same command again once it answers"
    assert all(re.search(said, line) for line in not_tried), not_tried
    assert len(asked) <= 3 * len(timed_out), asked  # (no request for a URL not tried)
    assert all(isinstance(o, Path) and o.is_file() for o in outcomes[12:]), outcomes[12:]


def test_a_server_that_stops_answering_for_a_while_is_waited_for_its_urls_fetched_once_it_answers(
    tmp_path, quick_fetches, caplog
):
    """A CDN's outage in the middle of a feed: twelve URLs of a server that stops answering from
    the first, two downloads at once. Once ``SILENT_AFTER`` fetches in a row have timed out, its
    other URLs wait (none is failed), one tried every ``PROBE_EVERY_S``; the server answers again
    and every one of them is fetched. The log says both. (Until the 67th stop, 2026-12-05, they
    all failed "not tried", for a rerun.)"""
    fetching = quick_fetches
    fetching.waits(30.0, 0.2)
    with caplog.at_level("WARNING", logger="clothes_extractor.api.fetches"):
        with _servers() as (server, _, down, asked):
            futures = _submitted(fetching.Fetches(2), [f"{server}/p{i}.png" for i in range(12)], tmp_path)
            deadline = time.monotonic() + 30
            while "did not answer" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)  # (a URL or two tried meanwhile, and not answered)
            tried_while_down = len(asked)
            down.clear()
            outcomes = _outcomes(futures)
    timed_out = [o for o in outcomes if "timed out; tried 3 times: try again later" in str(o)]
    fetched = [o for o in outcomes if isinstance(o, Path) and o.is_file()]
    assert len(timed_out) + len(fetched) == 12 and len(fetched) >= 12 - fetching.SILENT_AFTER - 3, outcomes
    assert "did not answer 3 fetches in a row (each timed out 3 times): its URLs wait for it, one tried every 0 s, " \
        "for 30 s" in caplog.text, caplog.text  # fmt: skip
    assert re.search(r"127\.0\.0\.1:\d+ answers again \(waited for \d+ s\): its URLs are fetched", caplog.text)
    # while it was down, only the first fetches and a URL at a time were tried (3 tries each)
    assert tried_while_down <= 3 * (fetching.SILENT_AFTER + 1) + 3 * 2 * (1.0 / 0.2 + 1), tried_while_down


def test_a_silent_servers_urls_wait_aside_the_other_servers_are_fetched_meanwhile(tmp_path, quick_fetches):
    """A feed of two servers' photos, two downloads at once: while the first, found silent,
    is waited for, its URLs are set aside and the second's are fetched (they are not held up
    behind it); once it answers, its own are fetched too."""
    fetching = quick_fetches
    fetching.waits(30.0, 0.3)

    with _servers() as (silent, up, down, asked):
        fetches = fetching.Fetches(2)
        waiting = _submitted(fetches, [f"{silent}/d{i}.png" for i in range(10)], tmp_path)
        others = _submitted(fetches, [f"{up}/u{i}.png" for i in range(6)], tmp_path)
        fetched = _outcomes(others, timeout=20)
        still_down = down.is_set() and sum(future.done() for future in waiting)
        down.clear()
        first = _outcomes(waiting)
    assert all(isinstance(o, Path) and o.is_file() for o in fetched), fetched
    assert still_down <= fetching.SILENT_AFTER + 1  # (the other server's, fetched while these waited)
    assert sum(isinstance(o, Path) for o in first) >= 10 - fetching.SILENT_AFTER - 3, first


def test_a_feed_goes_on_with_its_other_servers_photos_while_one_server_is_waited_for(
    tmp_path, quick_fetches, tiny_model_path, segmenter_path
):
    """``extract_urls`` over a feed whose lines alternate between two servers, two downloads at
    once: the first stops answering; its URLs wait (not counted among the photos fetched ahead,
    which would fill with them) and every photo of the second is extracted meanwhile; once the
    first answers again, its photos are extracted too, but for those that timed out."""
    fetching = quick_fetches
    fetching.waits(60.0, 3.0)

    out, seen_while_down = tmp_path / "out", []
    models = {"generator": ModelSession(tiny_model_path, "cpu"), "segmenter": ModelSession(segmenter_path, "cpu")}

    def answer_once_the_others_are_done() -> None:
        deadline = time.monotonic() + 20
        while len(list(out.glob("u*.png"))) < 16 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen_while_down.append(len(list(out.glob("u*.png"))))
        down.clear()

    with _servers() as (silent, up, down, asked):
        lines = [(f"{silent}/d{i}.png", f"{up}/u{i}.png") for i in range(16)]
        threading.Thread(target=answer_once_the_others_are_done, daemon=True).start()
        summary = extract_urls([u for line in lines for u in line], out, **models, alpha_mask=True, fetches=2)
    assert seen_while_down == [16], seen_while_down  # (all of them while the first server did not answer)
    assert summary.ok + summary.failed == 32 and summary.failed <= fetching.SILENT_AFTER + 1, summary
    assert len(list(out.glob("d*.png"))) == summary.ok - 16


def test_a_server_down_longer_than_it_is_waited_for_is_tried_now_and_then_and_fetched_once_it_answers(
    tmp_path, quick_fetches
):
    """Half-open: a server still down after ``OUTAGE_S``: its URLs waiting then are not tried,
    each said so; later ones too, but for one tried every ``PROBE_EVERY_S``; once the server
    answers again, that one is fetched and the others after it too. (Until the 67th stop, a
    server once found silent was never tried again in the job: hours of a feed's photos failed.)"""
    fetching = quick_fetches
    fetching.waits(1.0, 0.3)
    with _servers() as (server, _, down, asked):
        fetches = fetching.Fetches(2)
        first = _outcomes(_submitted(fetches, [f"{server}/a{i}.png" for i in range(10)], tmp_path))
        down.clear()
        time.sleep(0.5)  # (past the next try's time)
        later = _outcomes(_submitted(fetches, [f"{server}/b0.png"], tmp_path))  # (tried: the others fail meanwhile)
        later += _outcomes(_submitted(fetches, [f"{server}/b{i}.png" for i in range(1, 4)], tmp_path))
    not_tried = [str(o) for o in first if "did not answer" in str(o)]
    assert not_tried and all(", and was waited for 1 s; run the same command again" in o for o in not_tried)
    assert all("not tried" in o or "timed out; tried 3 times" in o for o in map(str, first)), first
    assert all(isinstance(o, Path) and o.is_file() for o in later), later


def _found_silent(fetching, at_once: int, server: str, folder: Path) -> tuple:
    """A ``Fetches`` of ``at_once`` downloads given 8 URLs of the silent ``server``, returned once
    it has found it silent (``SILENT_AFTER`` of them timed out): (it, their futures)."""
    fetches = fetching.Fetches(at_once)
    futures = _submitted(fetches, [f"{server}/p{i}.png" for i in range(8)], folder)
    deadline = time.monotonic() + 30
    while sum(f.done() for f in futures) < fetching.SILENT_AFTER and time.monotonic() < deadline:
        time.sleep(0.05)
    return fetches, futures


def test_a_waiting_url_its_caller_cancels_is_no_try_the_next_is_tried_in_its_place(tmp_path, quick_fetches):
    """``Future.cancel`` on URLs waiting for a silent server: each is dropped when its turn to be
    tried comes, and the next one is tried then (a cancelled one had held the turn: the server was
    not tried again until ``OUTAGE_S``)."""
    fetching = quick_fetches
    fetching.waits(30.0, 0.2)
    with _servers() as (server, _, down, asked):
        _, futures = _found_silent(fetching, 1, server, tmp_path)
        cancelled = [f.cancel() for f in futures[fetching.SILENT_AFTER : -1]]
        down.clear()
        last = futures[-1].exception(timeout=10) or futures[-1].result()
    assert all(cancelled) and isinstance(last, Path) and last.is_file(), (cancelled, last)


def test_a_stopped_job_does_not_wait_for_a_silent_server(tmp_path, quick_fetches):
    """``Fetches.close`` (a job stopped: Ctrl-C, an API cancel): the URLs waiting for a silent
    server fail at once (``the job stopped``), not after ``OUTAGE_S``."""
    fetching = quick_fetches
    fetching.waits(60.0, 60.0)
    with _servers() as (server, _, down, asked):
        fetches, futures = _found_silent(fetching, 2, server, tmp_path)
        time.sleep(0.5)
        assert sum(f.done() for f in futures) <= fetching.SILENT_AFTER + 1  # (the others wait)
        fetches.close()
        outcomes = _outcomes(futures, timeout=5)
    stopped = [str(o) for o in outcomes if str(o).endswith(": not tried: the job stopped")]
    assert len(stopped) >= 8 - fetching.SILENT_AFTER - 1, outcomes


def test_a_cancelled_feed_waiting_for_a_silent_server_ends_at_once_its_fetches_too(
    tmp_path, quick_fetches, caplog, tiny_model_path, segmenter_path
):
    """``extract_urls`` cancelled while its URLs wait for a server that stopped answering: it
    returns within a second or two, and no fetch thread is left waiting (its feed closes its
    ``Fetches``): a desktop app's cancel button leaves nothing behind for ``OUTAGE_S``."""
    fetching = quick_fetches
    fetching.waits(60.0, 60.0)
    cancel = threading.Event()
    models = {"generator": ModelSession(tiny_model_path, "cpu"), "segmenter": ModelSession(segmenter_path, "cpu")}

    def cancel_once_waiting() -> None:
        deadline = time.monotonic() + 30
        while "its URLs wait for it" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        cancelled_at.append(time.monotonic())
        cancel.set()

    cancelled_at: list[float] = []
    with caplog.at_level("WARNING", logger="clothes_extractor.api.fetches"):
        with _servers() as (server, _, down, asked):
            threading.Thread(target=cancel_once_waiting, daemon=True).start()
            urls = [f"{server}/p{i}.png" for i in range(12)]
            summary = extract_urls(urls, tmp_path / "out", **models, alpha_mask=True, fetches=2, cancel=cancel)
            stopped_in = time.monotonic()
            while any(t.name == "fetch" for t in threading.enumerate()) and time.monotonic() < stopped_in + 10:
                time.sleep(0.05)
            left = [t for t in threading.enumerate() if t.name == "fetch"]
    assert summary.stopped == "cancelled" and summary.ok == 0 and stopped_in - cancelled_at[0] < 2, summary
    assert time.monotonic() - stopped_in < 3 and not left, left  # (the fetches in flight end by their timeout)


class _HeldBack(http.server.BaseHTTPRequestHandler):
    """Serves ``body`` at every path; ``/slow.png`` only once ``until()`` holds (or after 30 s):
    whether it held then is kept in ``seen``, and ``arrived`` is set when its request comes."""

    body, seen, arrived = b"", [], None
    until = staticmethod(lambda: False)

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == "/slow.png":
            self.arrived.set()
            waited = time.monotonic() + 30
            while not self.until() and time.monotonic() < waited:
                time.sleep(0.05)
            self.seen.append(self.until())
        try:
            answer(self, 200, self.body, Content_Type="image/png")
        except OSError:  # (the job was stopped: nobody listens)
            pass

    def log_message(self, *args):
        pass


def _held_back(until) -> type:
    body = io.BytesIO()
    cut_out(0).save(body, "PNG")
    return type("Site", (_HeldBack,), {"body": body.getvalue(), "seen": [], "arrived": threading.Event(),
                                       "until": staticmethod(until)})  # fmt: skip


def test_the_photos_fetched_are_written_while_the_last_fetch_waits(tiny_model_path, tmp_path):
    """A feed's last URL answers only once the three photos before it are written (or after 30 s):
    the partial batch they make runs while the feed waits (it waited for the last photo's fetch,
    and the user saw nothing written until then)."""
    out = tmp_path / "out"
    site = _held_back(lambda: all((out / f"p{i}.png").exists() for i in range(3)))
    with serving(site) as url:
        feed = "".join(f"{url}/p{i}.png\n" for i in range(3)) + f"{url}/slow.png\n"
        done = run_cli("extract", "--urls-from", "-", "-o", out, "--model", tiny_model_path, *MODEL,
                       "--batch-size", "8", stdin=feed.encode())  # fmt: skip
    assert done.returncode == 0 and b"4 extracted" in done.stderr, done.stderr
    assert site.seen == [True]


def test_ctrl_c_while_a_fetch_hangs_stops_the_job_at_once_and_leaves_no_scratch(tiny_model_path, tmp_path):
    """Ctrl-C while the feed waits for a server that does not answer stops the job then (it was
    heard once the fetch ended: after three 30 s timeouts), with whole outputs only and the
    scratch folder gone."""
    scratch, out, stopped = tmp_path / "tmp", tmp_path / "out", threading.Event()
    scratch.mkdir()
    site = _held_back(stopped.is_set)
    with serving(site) as url:
        (tmp_path / "feed.txt").write_text(f"{url}/p0.png\n{url}/p1.png\n{url}/slow.png\n")
        command = [sys.executable, "-m", "clothes_extractor", "extract", "--urls-from", str(tmp_path / "feed.txt"),
                   "-o", str(out), "--model", str(tiny_model_path), *MODEL]  # fmt: skip
        with subprocess.Popen(command, stderr=subprocess.PIPE, env={**cli_env(), "TMPDIR": str(scratch)}) as job:
            assert site.arrived.wait(60)  # (asked from inside the job's loop: the feed is fetched as it goes)
            time.sleep(1)  # p0 and p1 taken by the job meanwhile: it waits for the third
            job.send_signal(signal.SIGINT)
            try:
                said = job.communicate(timeout=60)[1].decode()
            finally:
                answered_first = bool(site.seen)
                stopped.set()
    assert job.returncode != 0 and "run the same command again to resume" in said, said
    assert not answered_first  # stopped while the server held its answer back
    for path in out.iterdir() if out.exists() else ():
        with Image.open(path) as image:
            image.load()  # whole files only
    assert list(scratch.glob("clothes-extractor-*")) == []


def test_a_feed_given_by_its_url_is_fetched_whole_first_or_refused_with_why(tiny_model_path, tmp_path, site):
    """``--urls-from URL``: a shop's feed where it is published (as Merchant Center fetches it),
    fetched whole before the job (a pipe from curl that breaks gives the job part of a list);
    one that cannot be fetched, or is a web page, ends the command with why, before any work."""
    folder, url, answers = site
    _photos(folder, "a.png", "b.png")
    (folder / "feed.tsv").write_text(f"id\timage_link\nSKU-A\t{url}/a.png\nSKU-B\t{url}/b.png\n")
    (folder / "shop.html").write_text("<html>the shop</html>")
    out, model = tmp_path / "out", ("--model", tiny_model_path, *MODEL)
    done = run_cli("extract", "--urls-from", f"{url}/feed.tsv", "-o", out, *model)
    assert done.returncode == 0 and "2 extracted" in done.stderr, done.stderr
    assert sorted(path.name for path in out.iterdir()) == ["SKU-A.png", "SKU-B.png"]
    assert answers[0] == ("/feed.tsv", 200)
    for given, said in (
        ("gone.tsv", f"Error: cannot fetch {url}/gone.tsv: File not found"),
        ("shop.html", f"Error: cannot fetch {url}/shop.html: the server answers a web page (text/html), not a list; "
                      "give the address of the list file itself (text, CSV or TSV)"),
    ):  # fmt: skip
        refused = run_cli("extract", "--urls-from", f"{url}/{given}", "-o", tmp_path / "never", *model)
        assert refused.returncode == 1 and said in refused.stderr, refused.stderr
        assert not (tmp_path / "never").exists()


def test_extract_urls_from_python_names_each_result_by_its_url_and_a_rerun_asks_if_each_changed(
    tiny_model_path, segmenter_path, tmp_path, site, monkeypatch
):
    """``extract_urls``: the feed from Python, its URLs in hand (a URL, or a URL and its output's
    name) or a list's file: each result's input is its URL (a line that is none: the line), no
    download is left, a rerun asks whether each image changed (304: skipped), and settings or
    URLs that cannot work are refused before any fetch."""
    folder, url, answers = site
    _photos(folder, "a.png", "b.png")
    scratch, out, started, seen = tmp_path / "tmp", tmp_path / "out", [], []
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # (TMPDIR read again)
    urls = [f"{url}/a.png", (f"{url}/b.png", "tops/SKU-B"), "not a url", f"{url}/gone.png"]
    models = {"generator": ModelSession(tiny_model_path, "cpu"), "segmenter": ModelSession(segmenter_path, "cpu")}
    summary = extract_urls(urls, out, **models, alpha_mask=True, on_start=started.append, on_result=seen.append)
    assert (summary.ok, summary.failed, started) == (2, 2, [4])
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a.png", "tops/SKU-B.png"]
    results = {result.input: result for result in seen}
    assert results[f"{url}/a.png"].status == "ok" and results[f"{url}/b.png"].output == str(out / "tops/SKU-B.png")
    assert "line 3 of urls is not an http(s) URL: 'not a url'" in results["line 3 of urls"].error
    assert results[f"{url}/gone.png"].error.startswith(f"cannot fetch {url}/gone.png: File not found")
    assert list(scratch.glob("clothes-extractor-*")) == []
    (tmp_path / "feed.txt").write_text(f"{url}/a.png\n{url}/b.png\ttops/SKU-B\n")
    answers.clear()
    again = extract_urls(tmp_path / "feed.txt", out, **models, alpha_mask=True)
    assert (again.ok, again.skipped, again.failed) == (0, 2, 0)
    assert sorted(answers) == [("/a.png", 304), ("/b.png", 304)]  # (asked whether each changed: not fetched)
    for given, error, said in (
        ([(f"{url}/a.png", "a\tb")], ValueError, r"urls\[0\]: a URL or name holds a tab or a line break"),
        ([(f"{url}/a.png",)], ValueError, r"urls\[0\]: a URL or a \(url, name\) pair"),
        (f"{url}/gone.tsv", InputError, "cannot fetch .*/gone.tsv: File not found"),
    ):
        with pytest.raises(error, match=said):
            extract_urls(given, tmp_path / "never", **models, alpha_mask=True)
    for fetches in (0, 2.5):
        with pytest.raises(ValueError, match="fetches is a whole number from 1 to 256"):
            extract_urls(urls, tmp_path / "never", **models, fetches=fetches)
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ((), "give the photos: files, folders or http(s) URLs"),
        (("photos",), "--urls-from takes its photos from its list: give photos in another run"),
        (("--ray",), "--urls-from fetches on this machine: leave out --ray"),
        (("--dry-run",), "--dry-run looks at photo files and folders: --urls-from's photos are fetched"),
        (("-o", "garment.png"), "a --urls-from list makes a folder job: -o must be a folder"),
        (("-o", "-"), "-o - (standard output) takes exactly one photo"),
    ],
)
def test_a_feed_is_refused_clearly_where_it_cannot_be_taken(tmp_path, args, said):
    feed = tmp_path / "feed.txt"
    feed.write_text("https://shop.example/a.jpg\n")
    given = ("--urls-from", feed) if args != () else ()
    output = () if "-o" in args else ("-o", tmp_path / "out")
    done = run_cli("extract", *args, *given, *output)
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_a_feed_split_into_shards_and_lists_that_name_no_url_or_cannot_be_read(tmp_path, tiny_model_path, site):
    folder, url, _ = site
    for index in range(6):
        cut_out(index).save(folder / f"p{index}.png")
    feed = tmp_path / "feed.txt"
    feed.write_text("".join(f"{url}/p{index}.png\n" for index in range(6)))
    outs = []
    for shard in ("1/2", "2/2"):
        done = run_cli("extract", "--urls-from", feed, "-o", tmp_path / "out", "--shard", shard,
                       "--model", tiny_model_path, *MODEL)  # fmt: skip
        assert done.returncode == 0, done.stderr
        outs.append({path.name for path in (tmp_path / "out").iterdir()} - set().union(*outs))
    assert outs[0] and outs[1] and outs[0] | outs[1] == {f"p{index}.png" for index in range(6)}
    for listing, said in ((tmp_path, "Is a directory"), (tmp_path / "no.txt", "No such file"),
                          (folder / "p0.png", "is no list of URLs: it holds binary data (an image?)")):  # fmt: skip
        done = run_cli("extract", "--urls-from", listing, "-o", tmp_path / "out")
        assert done.returncode == 1 and said in done.stderr, done.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n\n")
    done = run_cli("extract", "--urls-from", empty, "-o", tmp_path / "out")
    assert done.returncode == 1 and f"--urls-from {empty} names no URL" in done.stderr
