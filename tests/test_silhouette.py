"""The garment's silhouette in a catalog image (``runtime.silhouette``): the alpha target a
generator is trained on and scored against, and try-on's garment mask."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from clothes_extractor.runtime.silhouette import (
    _reached_with_gaps_closed,
    dilate,
    garment_silhouette,
    pieces,
    reached_from_border,
)

SIZE = (192, 256)  # width, height
SHIRT = [(50, 40), (80, 30), (112, 30), (142, 40), (175, 90), (150, 105), (140, 90), (140, 220), (52, 220),
         (52, 90), (42, 105), (17, 90)]  # fmt: skip


def catalog(
    fill, background=(255, 255, 255), outline=None, quality=None, print_rgb=None
) -> tuple[np.ndarray, np.ndarray]:
    """A shirt drawn on a background (optionally through a JPEG round trip): (image, truth)."""
    image = Image.new("RGB", SIZE, background)
    draw = ImageDraw.Draw(image)
    draw.polygon(SHIRT, fill=fill)
    if outline is not None:  # a faint shadow line with gaps, as catalog photos of white garments have
        for (x0, y0), (x1, y1) in zip(SHIRT[::2], SHIRT[1::2], strict=True):
            draw.line([(x0, y0), ((x0 + x1) / 2, (y0 + y1) / 2)], fill=outline, width=1)
    if print_rgb is not None:
        draw.ellipse((80, 100, 112, 132), fill=print_rgb)
    truth = Image.new("L", SIZE, 0)
    ImageDraw.Draw(truth).polygon(SHIRT, fill=255)
    if quality is not None:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return np.asarray(image), np.asarray(truth) > 127


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize(("quality", "at_least"), [(None, 0.999), (90, 0.98), (75, 0.93)])
def test_a_dark_garment_without_its_jpeg_halo_or_specks(quality, at_least):
    image, truth = catalog((30, 40, 90), quality=quality, print_rgb=(255, 255, 255))
    found = garment_silhouette(image)
    assert iou(found, truth) > at_least
    assert found[110:122, 90:102].all()  # a white print inside the garment is garment
    assert not (found & ~dilate(truth, 6)).any()  # no speck of ringing away from the garment


@pytest.mark.parametrize("quality", [None, 90])
def test_a_white_garment_on_white_is_found_whole(quality):
    """Its inside sits a few levels off white and its outline has gaps: a fill with the loose
    tolerance alone runs into it (this one came out as scraps before)."""
    image, truth = catalog((247, 247, 245), outline=(225, 225, 225), quality=quality)
    found = garment_silhouette(image)
    assert iou(found, truth) > 0.92  # within HALO_PX of its edge, a garment this pale is lost
    loose_only = ~reached_from_border(np.all(np.abs(image.astype(int) - 255) <= 12, axis=-1))
    assert iou(loose_only, truth) < 0.1  # what the loose fill alone makes of it


@pytest.mark.parametrize("quality", [None, 90])
def test_a_garment_of_the_background_colour_is_held_by_its_outline(quality):
    """A white T-shirt on a studio's 246 grey is 244-246 inside (a VITON-HD catalog image):
    only its faint outline holds it, and the fill ran in through every gap (IoU 0.18 there)."""
    image = Image.new("RGB", SIZE, (246, 246, 246))
    draw = ImageDraw.Draw(image)
    draw.polygon(SHIRT, fill=(245, 246, 246), outline=(228, 228, 228))
    for x, y in SHIRT[::3]:  # gaps of 4 px in the outline
        draw.rectangle((x - 2, y - 2, x + 1, y + 1), fill=(246, 246, 246))
    if quality is not None:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    truth = Image.new("L", SIZE, 0)
    ImageDraw.Draw(truth).polygon(SHIRT, fill=255)
    assert iou(garment_silhouette(np.asarray(image)), np.asarray(truth) > 127) > 0.9


def test_closing_an_outline_leaves_the_gap_under_a_sleeve_open():
    """A dark long-sleeved top whose sleeve hangs 4 px from its body: that channel is
    background (closing it would add a few percent of the area, not the garment's body)."""
    image = Image.new("RGB", SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((60, 40, 132, 220), fill=(40, 40, 60))  # the body
    draw.rectangle((40, 40, 60, 60), fill=(40, 40, 60))  # a shoulder, then the sleeve down the side
    draw.rectangle((40, 60, 55, 215), fill=(40, 40, 60))
    found = garment_silhouette(np.asarray(image))
    assert not found[80:200, 57:58].any()  # the channel's middle column, 57 (56-59 are free)
    assert found[100, 45] and found[100, 100]


@pytest.mark.parametrize(("gap", "sealed"), [(4, True), (5, False)])
def test_gaps_up_to_twice_the_radius_are_closed_and_not_passed(gap, sealed):
    free = np.ones((30, 30), bool)
    free[8, 8:25] = free[24, 8:25] = free[8:25, 8] = free[8:25, 24] = False  # a box...
    free[8, 12 : 12 + gap] = True  # ...with one gap in its top
    reached = _reached_with_gaps_closed(free, 2)
    assert reached[:8].all() and reached[25:].all()  # outside, up to the walls
    if sealed:  # nothing inside
        assert not reached[9:24, 9:24].any()
    else:
        assert np.array_equal(reached, reached_from_border(free))
    assert np.array_equal(_reached_with_gaps_closed(free, 0), reached_from_border(free))


def test_a_studio_grey_background_is_the_background():
    image, truth = catalog((200, 60, 60), background=(244, 244, 246))
    assert iou(garment_silhouette(image), truth) > 0.98
    # a fill from pure white alone (strict 3 levels) would have called the whole frame garment
    assert garment_silhouette(image).mean() < 0.6


@pytest.mark.parametrize("backdrop", [(230, 230, 230), (242, 239, 233), (200, 210, 220), (176, 176, 170)])
@pytest.mark.parametrize("quality", [None, 90])
def test_a_backdrop_of_its_own_colour_is_the_background(backdrop, quality):
    """Catalog images shot on a grey or beige studio backdrop, or put on a shop's own colour
    (the page's coloured-background garments dressed on someone): the border's colour."""
    image, truth = catalog((200, 60, 60), background=backdrop, quality=quality)
    # (JPEG rings 1-2 px around the drawn outline, more than on white, where it clips at 255;
    # before the backdrop's own colour was read, the whole frame was garment: IoU 0.5-0.6)
    at_least = 0.97 if quality is None else 0.93
    assert iou(garment_silhouette(image), truth) > at_least
    # a few whitish garment pixels on the border (a white collar at the edge) do not make the
    # backdrop white
    image = image.copy()
    image[0, 90:100] = 255
    assert iou(garment_silhouette(image), truth) > at_least


def test_a_garment_that_fills_the_frame_is_all_garment():
    """A close-up whose border is the garment's own dark or saturated colour: no backdrop."""
    for colour in ((25, 35, 80), (200, 30, 40)):
        image = np.full((256, 192, 3), colour, np.uint8)
        image[100:140, 60:130] = (240, 240, 240)  # a pale print inside
        assert garment_silhouette(image).all()


def test_nothing_but_background_is_no_garment():
    assert not garment_silhouette(np.full((64, 48, 3), 255, np.uint8)).any()


def _flood_from_border(free: np.ndarray) -> np.ndarray:
    """The reference: a breadth-first fill from every free border pixel, 4-neighbours."""
    h, w = free.shape
    reached = np.zeros_like(free)
    queue = [(y, x) for y in range(h) for x in range(w) if (y in (0, h - 1) or x in (0, w - 1)) and free[y, x]]
    for y, x in queue:
        reached[y, x] = True
    while queue:
        y, x = queue.pop()
        for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            if 0 <= ny < h and 0 <= nx < w and free[ny, nx] and not reached[ny, nx]:
                reached[ny, nx] = True
                queue.append((ny, nx))
    return reached


@pytest.mark.parametrize("seed", range(6))
def test_the_fill_and_the_halo_match_their_plain_definitions(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
    free = rng.random(shape) < rng.uniform(0.3, 0.8)  # mazes, islands, spirals of runs
    assert np.array_equal(reached_from_border(free), _flood_from_border(free))
    padded = np.pad(free, 2)
    square = np.zeros_like(free)
    for dy in range(5):
        for dx in range(5):
            square |= padded[dy : dy + shape[0], dx : dx + shape[1]]
    assert np.array_equal(dilate(free, 2), square)


def _maze(h: int, w: int) -> np.ndarray:
    """Free pixels between nested walls, each wall open on alternate sides: one channel that turns
    round and round to the middle (a fill that floods a turn at a time needs a round for each)."""
    free = np.ones((h, w), bool)
    for k in range(2, min(h, w) // 2 - 2, 3):
        free[k, k : w - k] = free[h - 1 - k, k : w - k] = False
        free[k : h - k, k] = free[k : h - k, w - 1 - k] = False
        free[k if (k // 3) % 2 else h - 1 - k, w // 2 + (k % 5) - 2] = True  # its door, top or bottom
    return free


@pytest.mark.parametrize("shape", [(64, 48), (47, 90)])
def test_the_fill_reaches_every_turn_of_a_maze(shape):
    """The fill joins row runs (each in rounds that hook pieces to the least they touch); a maze's
    channel, its runs joined only one after another, is reached to its middle, as the plain
    breadth-first fill reaches it, and a wall closed shuts out what lies behind it."""
    free = _maze(*shape)
    reached = reached_from_border(free)
    assert np.array_equal(reached, _flood_from_border(free)) and reached[shape[0] // 2, shape[1] // 2]
    shut = free.copy()
    shut[5, 2:-2] = shut[shape[0] - 6, 2:-2] = False  # the second wall's door closed, wherever it was
    inside = reached_from_border(shut)
    assert np.array_equal(inside, _flood_from_border(shut)) and not inside[shape[0] // 2, shape[1] // 2]


def test_pieces_are_the_mask_s_4_connected_parts_of_a_size():
    """``pieces``: each 4-connected part once, top to bottom; a diagonal step parts two; those
    under ``least`` pixels are left out."""
    mask = np.zeros((20, 20), bool)
    mask[2:6, 2:6] = True  # 16 pixels
    mask[6, 6] = True  # touches the square by a corner only: its own piece
    mask[10:18, 3:5] = True  # 16 pixels
    found = list(pieces(mask))
    assert [int(p.sum()) for p in found] == [16, 1, 16]
    assert np.array_equal(np.sum(found, axis=0) > 0, mask)
    assert [int(p.sum()) for p in pieces(mask, least=2)] == [16, 16]
    assert list(pieces(np.zeros((4, 4), bool))) == []
