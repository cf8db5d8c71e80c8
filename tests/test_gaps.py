"""The backdrop a garment shown alone encloses (between a long sleeve and the body its cuff
touches, inside a cami's straps) is no part of its cut-out (``backdrop.enclosed_backdrop``): a
print of the backdrop's colour that the parse holds is, and so is a white top's gap (nothing
rings it in another colour). Drawn tops and parses first, then ``extract`` with the bundled
parser on a drawn long-sleeved top on white and on a pale backdrop, and on VITON catalog images."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from clothes_extractor.runtime.backdrop import GAP_LEAST, backdrop_silhouette, enclosed_backdrop
from clothes_extractor.runtime.silhouette import labelled, pieces, reached_from_border
from conftest import VITON_VAL, extracted_masks, run_cli

NAVY, WHITE, PALE = (30, 40, 90), (255, 255, 255), (236, 226, 208)


def long_sleeved(size: tuple[int, int] = (384, 512)) -> tuple[np.ndarray, np.ndarray]:
    """A long-sleeved top whose sleeves hang beside the body, their cuffs touching it near the
    hem: its silhouette and the two gaps it encloses (bool [h, w] each)."""
    shape = Image.new("L", size, 0)
    draw = ImageDraw.Draw(shape)
    draw.polygon([(130, 60), (254, 60), (262, 470), (122, 470)], fill=255)  # the body
    draw.polygon([(130, 60), (86, 80), (60, 420), (126, 420), (96, 110)], fill=255)  # the sleeves, out and down
    draw.polygon([(254, 60), (298, 80), (324, 420), (258, 420), (288, 110)], fill=255)
    draw.ellipse((170, 40, 214, 76), fill=0)  # the neckline
    outline = np.asarray(shape) > 127
    gaps = ~outline & ~reached_from_border(~outline)  # (the backdrop between each sleeve and the body)
    return outline | gaps, gaps


def photographed(silhouette: np.ndarray, gaps: np.ndarray, garment, backdrop) -> np.ndarray:
    """The top in ``garment``'s colour on ``backdrop`` [h, w, 3] uint8, its gaps the backdrop's."""
    top = silhouette & ~gaps
    return np.where(top[..., None], np.asarray(garment, np.uint8), np.asarray(backdrop, np.uint8))


def test_the_backdrop_a_garment_encloses_is_left_out():
    """Both gaps go, on white and on a pale backdrop, where the parse holds none of them or under
    half (its loose edge); the garment itself is kept whole. A parse whose holes were filled (the
    parser's plane, ``parsed`` not given) holds them: kept, as before."""
    silhouette, gaps = long_sleeved()
    assert gaps.sum() > 20 * GAP_LEAST * silhouette.sum()  # (two gaps, each well over the least)
    top = silhouette & ~gaps
    loose = top | (gaps & (np.arange(gaps.shape[1]) < 120)[None, :] & (np.arange(gaps.shape[0]) < 200)[:, None])
    for backdrop in (WHITE, PALE):
        photo = photographed(silhouette, gaps, NAVY, backdrop)
        for parsed in (top, loose):
            found = backdrop_silhouette(photo, silhouette, parsed=parsed)
            assert found is not None and np.array_equal(found, top), backdrop
        assert np.array_equal(backdrop_silhouette(photo, silhouette), silhouette)


def test_the_gaps_are_no_part_of_the_garment_the_silhouette_must_hold():
    """The silhouette must hold ``COVERED`` of the parser's garment; a gap the parser's plane filled
    is none of it. A parse that found the top only down to its chest and filled the gaps (over a
    quarter of it): the silhouette less the gaps holds all the rest (it was None: an outfit's
    top or two of the benchmark's 500 generated, not cut out)."""
    silhouette, gaps = long_sleeved()
    top = silhouette & ~gaps
    plane = gaps | (top & (np.arange(silhouette.shape[0]) < 230)[:, None])
    assert gaps.sum() > 0.25 * plane.sum()
    found = backdrop_silhouette(photographed(silhouette, gaps, NAVY, WHITE), plane, parsed=plane & ~gaps)
    assert found is not None and np.array_equal(found, top)


def test_a_print_of_the_backdrops_colour_the_parse_holds_is_kept():
    """A white print on the navy top, as enclosed as a gap and as white: the parse holds it (the
    garment's), so it stays; where the parse misses it, it goes (a known limit: a flat white patch
    the parser takes for background is a hole to it)."""
    silhouette, gaps = long_sleeved()
    photo = photographed(silhouette, gaps, NAVY, WHITE)
    print_ = np.zeros_like(gaps)
    print_[180:230, 160:224] = True
    photo[print_] = WHITE
    top = silhouette & ~gaps
    assert np.array_equal(enclosed_backdrop(photo, silhouette, np.array(WHITE), top), gaps)
    assert np.array_equal(enclosed_backdrop(photo, silhouette, np.array(WHITE), top & ~print_), gaps | print_)


def test_a_white_tops_gaps_and_small_ones_stay():
    """A white top (246, its faint grey outline): the gap is ringed by the top's own near-white, not
    another colour, so nothing tells it from a white top's bright inside: kept. A gap under
    ``GAP_LEAST`` of the garment (a speck between two seams) is kept too."""
    silhouette, gaps = long_sleeved()
    top = silhouette & ~gaps
    photo = photographed(silhouette, gaps, (246, 246, 246), WHITE)
    edge = top & ~(np.asarray(Image.fromarray(top.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(3))) > 127)
    photo[edge] = 225
    assert not enclosed_backdrop(photo, silhouette, np.array(WHITE), top).any()
    speck = np.zeros_like(gaps)
    speck[300:303, 180:183] = True  # (9 pixels: under GAP_LEAST of some 95,000)
    photo = photographed(silhouette, gaps | speck, NAVY, WHITE)
    assert np.array_equal(enclosed_backdrop(photo, silhouette, np.array(WHITE), top & ~speck), gaps)


@pytest.mark.parametrize("backdrop", [WHITE, (210, 225, 240)])
def test_extract_leaves_a_drawn_tops_gaps_transparent(backdrop, tmp_path):
    """``extract --background transparent`` with the bundled parser on the long-sleeved top in
    three colours: cut out as a garment alone, its gaps transparent in the mask it used and in
    the output's alpha (both were garment: the whole gap kept), the top whole."""
    silhouette, gaps = long_sleeved()
    top = silhouette & ~gaps
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, colour in (("navy", NAVY), ("red", (180, 30, 40)), ("green", (40, 120, 60))):
        Image.fromarray(photographed(silhouette, gaps, colour, backdrop)).save(folder / f"{name}.png")
    report, out = tmp_path / "r.jsonl", tmp_path / "out"
    done = run_cli(
        "extract",
        folder,
        "-o",
        out,
        "--save-masks",
        tmp_path / "masks",
        "--report",
        report,
        "--background",
        "transparent",
    )
    assert done.returncode == 0, done.stderr
    for record in map(json.loads, open(report)):
        assert record["mask"] == "segmenter+alone", record
        mask = Image.open(record["saved_mask"]).convert("L").resize((384, 512), Image.Resampling.BILINEAR)
        mask = np.asarray(mask) >= 128
        assert (mask & gaps).sum() < 0.02 * gaps.sum() and (mask & top).sum() > 0.995 * top.sum(), record["input"]
        alpha = np.asarray(Image.open(record["output"]).getchannel("A"))
        bright = np.asarray(Image.open(record["output"]).convert("L")) > 200  # (the backdrop's colour, where kept)
        assert not (bright & (alpha == 255)).any(), record["input"]  # (nothing of the gaps left in the cut-out)


@pytest.mark.skipif(not VITON_VAL.is_file(), reason=f"{VITON_VAL} is absent")
def test_viton_gaps_go_and_white_prints_stay(tmp_path):
    """VITON catalog images on white: a long-sleeved top's gaps (009741, 003069) and a cami's
    straps' loops (005828) are left out of the mask ``extract`` cut them out with (over 3% of the
    catalog silhouette, the backdrop's colour: 99% within 20 levels of its border's; the backdrop's
    shade at a gap's edge goes with it, as a shadow on the backdrop), and so are 009741's at
    1024x768 (resized four times: its edges blurred over some 8 pixels); the white stripes of a
    striped top (016059) and a white logo (011190), as enclosed and as white, are kept (under 0.2%
    of the silhouette left out)."""
    import tarfile

    from clothes_extractor.runtime.fitting import border_colour
    from clothes_extractor.runtime.silhouette import garment_silhouette

    folder = tmp_path / "photos"
    folder.mkdir()
    gapped, printed = ("009741_1", "003069_1", "005828_1"), ("016059_1", "011190_1")
    with tarfile.open(VITON_VAL) as tar:
        for name in gapped + printed:
            Image.open(tar.extractfile(f"val/cloth/{name}.jpg")).convert("RGB").save(folder / f"{name}.png")
        large = Image.open(tar.extractfile("val/cloth/009741_1.jpg")).convert("RGB")
        large.resize((768, 1024), Image.Resampling.BICUBIC).save(folder / "009741_1-large.png")
    gapped += ("009741_1-large",)
    found = extracted_masks(folder, tmp_path)
    for name, (source, mask) in found.items():
        pixels = np.asarray(Image.open(folder / f"{name}.png"))
        silhouette = garment_silhouette(pixels)
        out = silhouette & ~mask
        assert source == "segmenter+alone" and not (mask & ~silhouette).any(), name
        if name in gapped:
            assert out.sum() > 0.03 * silhouette.sum(), name
            assert (np.abs(pixels[out].astype(int) - border_colour(pixels)).max(-1) <= 20).mean() > 0.99, name
        else:
            assert out.sum() < 0.002 * silhouette.sum(), name


def _plain_pieces(mask: np.ndarray) -> list[tuple[int, ...]]:
    """The reference: each 4-connected piece's flat indices, by a breadth-first fill from each
    pixel not yet taken, in row-major order."""
    h, w = mask.shape
    taken, found = np.zeros_like(mask), []
    for start in np.flatnonzero(mask):
        if taken.flat[start]:
            continue
        queue, piece = [divmod(int(start), w)], []
        taken.flat[start] = True
        while queue:
            y, x = queue.pop()
            piece.append(y * w + x)
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not taken[ny, nx]:
                    taken[ny, nx] = True
                    queue.append((ny, nx))
        found.append(tuple(sorted(piece)))
    return found


def test_labelled_and_pieces_give_the_plain_fills_pieces():
    """``silhouette.labelled`` (all pieces at once, numbered by their least flat index) and
    ``pieces`` (built on it: in order of their first pixel, those of ``least`` pixels, stopping
    where fewer are left) find what a plain breadth-first fill finds, on random masks of any
    density, one pixel wide or tall and empty too; a diagonal step joins nothing."""
    rng = np.random.default_rng(7)
    for _ in range(150):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        mask = rng.random((h, w)) < rng.uniform(0.0, 0.8)
        plain = _plain_pieces(mask)
        where, number = labelled(mask)
        assert np.array_equal(where, np.flatnonzero(mask))
        assert sorted(tuple(where[number == root]) for root in np.unique(number)) == sorted(plain)
        assert all(min(piece) == root for piece, root in zip(sorted(plain), sorted(np.unique(number)), strict=True))
        least = int(rng.integers(1, 6))
        wanted, left = [], int(mask.sum())
        for piece in plain:  # (in the order of their first pixels, as the fill started them)
            if left < least:
                break
            left -= len(piece)
            wanted += [piece] if len(piece) >= least else []
        assert [tuple(np.flatnonzero(p)) for p in pieces(mask, least)] == wanted
    where, number = labelled(np.eye(4, dtype=bool))
    assert len(np.unique(number)) == 4
