"""``extract --sheet``'s contact sheet: photo | mask | garment, a transparent garment on squares."""

import numpy as np
from PIL import Image

from clothes_extractor.eval.sheets import CHECKER_GREYS, CHECKER_PX, extraction_sheet
from clothes_extractor.runtime.images import encode_image
from clothes_extractor.runtime.stages import FileResult
from conftest import person_photo

SIZE = (64, 48)  # the sheet's tile (height, width)


def _garment_tile(sheet: Image.Image, row: int) -> np.ndarray:
    """The garment (second) tile of ``row`` on a sheet of photo | garment rows (4-px gaps)."""
    h, w = SIZE
    y, x = 4 + row * (h + 4), 4 + (w + 4)
    return np.asarray(sheet)[y : y + h, x : x + w]


def test_a_transparent_garment_is_shown_on_squares_and_an_opaque_one_as_it_is(tmp_path):
    photo, _ = person_photo(0)
    photo.save(tmp_path / "p.jpg")
    white_top = np.full((128, 96, 3), 255, np.uint8)  # a white garment: on a white sheet, nothing to see
    alpha = np.zeros((128, 96), np.uint8)
    alpha[32:96, 24:72] = 255
    (tmp_path / "cut.png").write_bytes(encode_image(white_top, "png", alpha=alpha))
    (tmp_path / "white.png").write_bytes(encode_image(white_top, "png"))
    results = [FileResult(str(tmp_path / "p.jpg"), "ok", str(tmp_path / name)) for name in ("cut.png", "white.png")]
    sheet = extraction_sheet(results, SIZE)
    cut, white = _garment_tile(sheet, 0), _garment_tile(sheet, 1)
    near = np.zeros(SIZE, bool)
    near[14:50, 10:38] = True  # (the alpha's box at the tile's scale, 16:48 x 12:36, and its resized edge)
    inner = np.zeros(SIZE, bool)
    inner[18:46, 14:34] = True  # (clear of the resized edge)
    assert (cut[inner] == 255).all()  # the garment: white
    ys, xs = np.nonzero(~near)
    squares = cut[ys, xs, 0]
    expected = np.where((ys // CHECKER_PX + xs // CHECKER_PX) % 2 == 0, *CHECKER_GREYS)
    assert np.array_equal(squares, expected)  # around it, the squares: the white garment's outline shows
    assert (white == 255).all()  # an opaque garment as it is: no squares


def test_a_page_of_another_aspect_is_shown_whole_not_stretched(tmp_path):
    """``--output-size 1000x1000``: the sheet's garment tile shows the square page whole,
    letterboxed into the 3:4 tile (it was stretched to it)."""
    photo, _ = person_photo(0)
    photo.save(tmp_path / "p.jpg")
    page = np.full((96, 96, 3), 255, np.uint8)
    page[:, 40:56] = 0  # a black stripe down its middle, a sixth of its width
    (tmp_path / "page.png").write_bytes(encode_image(page, "png"))
    tile = _garment_tile(
        extraction_sheet([FileResult(str(tmp_path / "p.jpg"), "ok", str(tmp_path / "page.png"))], SIZE), 0
    )
    dark = np.flatnonzero(tile[SIZE[0] // 2, :, 0] < 128)
    assert 7 <= dark.size <= 9 and abs((dark[0] + dark[-1]) / 2 - (SIZE[1] - 1) / 2) <= 1  # 16 of 96 at 48 wide
    assert (tile[:7, :, 0] == 255).all() and (tile[-7:, :, 0] == 255).all()  # the bands above and below: white
