import numpy as np
import pytest
from PIL import Image

from clothes_extractor.errors import InputError
from clothes_extractor.runtime.contract import FitSettings, ModelContract
from clothes_extractor.runtime.fitting import (
    check_mask_shape,
    decode_scale_for,
    fills_frame,
    fit_to_model,
    fit_window,
    letterbox,
    letterbox_for,
    letterbox_part,
    mask_box,
    output_size_for,
    photo_window,
)
from clothes_extractor.runtime.options import parse_background


def test_mask_box_uses_the_threshold():
    mask = np.zeros((10, 20), np.uint8)
    mask[2:5, 3:9] = 255
    mask[8, 15] = 100  # soft noise below the threshold
    assert mask_box(mask, 128) == (3, 2, 9, 5)
    assert mask_box(mask, 50) == (3, 2, 16, 9)
    assert mask_box(np.zeros((4, 4), np.uint8), 128) is None


def test_a_worn_garments_box_leaves_out_specks_far_from_it_not_its_own_parts_near_or_large():
    """``mask_box(detached=True)``: a full-length photo's mask, its top in rows 40-100 of 256 with a
    segmenter's specks on the shoes (rows 230-236, 1% of the pixels): the box is the top's (it
    was the whole person's, and the garment was fitted half its size). Parts near the top (a
    strap 12 rows above, a hem below crossed arms 8 rows below), a large one far below and
    anything above (a strap's top that a parse holds apart) stay."""
    mask = np.zeros((256, 192), np.uint8)
    mask[40:100, 50:140] = 255
    mask[230:236, 60:70] = mask[232:236, 120:128] = 255  # (specks on the shoes)
    assert mask_box(mask, 128) == (50, 40, 140, 236)
    assert mask_box(mask, 128, detached=True) == (50, 40, 140, 100)
    above = mask.copy()
    above[5:8, 90:94] = 255  # (a strap's top, 32 rows above)
    assert mask_box(above, 128, detached=True) == (50, 5, 140, 100)
    near = mask.copy()
    near[28:40, 60:64] = near[108:114, 50:140] = 255  # a strap above; a hem 8 rows below (crossed arms)
    assert mask_box(near, 128, detached=True) == (50, 28, 140, 114)
    large = mask.copy()
    large[150:190, 50:140] = 255  # (a large part far below: trousers the segmenter took, or the garment's)
    assert mask_box(large, 128, detached=True) == (50, 40, 140, 190)
    assert mask_box(np.zeros((4, 4), np.uint8), 128, detached=True) is None


def test_a_speck_far_from_the_garment_does_not_shrink_its_fitted_image():
    """``fit_to_model`` fits a worn garment by its box without specks apart: the same input as its
    mask without them (the fit's crop of the mask keeps the specks that fall in its window)."""
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 192, 3), np.uint8))
    clean = np.zeros((256, 192), np.uint8)
    clean[30:90, 50:140] = 255
    specked = clean.copy()
    specked[230:236, 60:70] = 255
    fit = FitSettings()
    a, b = (fit_to_model(photo, Image.fromarray(m), (256, 192), fit) for m in (clean, specked))
    assert a.box == b.box and np.array_equal(a.image, b.image)
    assert fit_to_model(photo, Image.fromarray(specked), (256, 192), fit, box=mask_box(specked, 128)).box != a.box


def test_specks_of_a_mask_on_the_shoes_change_nothing_of_the_extracted_garment():
    """``extract``'s fit (``stages.fit_photo``): a person photo's garment with its mask, and with the
    same mask holding specks on the shoes (a segmenter's, on a full-length photo) far below: the
    same garment (it was fitted half its size, the legs in its window, and drawn another)."""
    from clothes_extractor import extract_garment
    from clothes_extractor.models import model_for
    from conftest import person_photo

    photo, mask = person_photo(0)
    tall = Image.new("RGB", (photo.width, photo.height * 2), (240, 240, 240))
    tall.paste(photo, (0, 0))  # (the figure's top in the upper half; its legs would go below)
    clean = Image.new("L", tall.size, 0)
    clean.paste(mask, (0, 0))
    specked = np.asarray(clean).copy()
    specked[-12:-6, 20:30] = specked[-10:-6, -30:-22] = 255
    assert mask_box(specked, 128) != mask_box(specked, 128, detached=True)  # (far enough below to be left out)
    generator = model_for("generator", gpu=False)
    if generator is None:
        pytest.skip("this install bundles no generator")
    a, b = (
        extract_garment(tall, m, generator=generator, output_size="model") for m in (clean, Image.fromarray(specked))
    )
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_fit_window_adds_margin_then_matches_the_model_aspect():
    # A 40x40 box, 10% margin -> 48x48, then widened to 3:4 (w:h) -> 48 wide, 64 high.
    x0, y0, x1, y1 = fit_window((10, 10, 50, 50), (64, 48), 0.1)
    assert (x1 - x0, y1 - y0) == pytest.approx((48, 64))
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((30, 30))
    # A tall box gets wider instead.
    x0, y0, x1, y1 = fit_window((0, 0, 10, 100), (64, 48), 0.0)
    assert (x1 - x0, y1 - y0) == pytest.approx((75, 100))


def test_fit_crops_the_garment_and_pads_outside_the_photo():
    photo = np.zeros((100, 100, 3), np.uint8)
    photo[:, :] = (10, 20, 30)
    mask = np.zeros((100, 100), np.uint8)
    mask[0:40, 30:60] = 255  # touches the top edge: the window reaches above the photo
    photo[0:40, 30:60] = (200, 0, 0)
    fitted = fit_to_model(Image.fromarray(photo), Image.fromarray(mask), (64, 48), FitSettings(margin=0.1))
    assert fitted.image.shape == (64, 48, 3) and fitted.image.dtype == np.uint8
    assert fitted.mask.shape == (64, 48, 1)
    # Above the photo: pad colour (white) and mask 0. Centre: the garment.
    assert tuple(fitted.image[0, 24]) == (255, 255, 255)
    assert fitted.mask[0, 24, 0] == 0
    assert tuple(fitted.image[32, 24]) == (200, 0, 0)
    assert fitted.mask[32, 24, 0] == 255
    # Garment columns 30..60 (30 px) in a 3:4 window 40x53.3 wide: it fills 3/4 of the width.
    covered = (fitted.mask[32, :, 0] > 127).sum()
    assert covered == pytest.approx(48 * 30 / (40 * 1.2 * 0.75), abs=2)


def test_fit_keeps_the_photo_where_it_has_pixels():
    photo = np.full((200, 200, 3), 90, np.uint8)
    mask = np.zeros((200, 200), np.uint8)
    mask[80:120, 90:110] = 255
    fitted = fit_to_model(Image.fromarray(photo), Image.fromarray(mask), (64, 48), FitSettings())
    assert (fitted.image == 90).all()  # the window lies inside the photo: no padding


def test_empty_mask_is_an_input_error():
    photo = Image.new("RGB", (50, 50))
    with pytest.raises(InputError, match="mask is empty"):
        fit_to_model(photo, Image.new("L", (50, 50), 127), (64, 48), FitSettings())


def test_decode_scale_keeps_enough_pixels_for_the_model():
    # Garment box 100x100 of a 1000x1000 mask, photo 4000x4000: the window is 480 px of
    # the photo across (1.2 x 400), 48 model pixels: a tenth suffices.
    window = photo_window((450, 450, 550, 550), (1000, 1000), (4000, 4000), (64, 48), FitSettings())
    assert decode_scale_for(window, (64, 48)) == pytest.approx(48 / 480)
    assert decode_scale_for(window, (256, 192)) == pytest.approx(192 / 480)  # a larger output needs more
    # A small photo is never enlarged.
    small = photo_window((0, 0, 10, 10), (10, 10), (10, 10), (64, 48), FitSettings())
    assert decode_scale_for(small, (64, 48)) == 1.0


def test_mask_at_another_resolution_covers_the_same_scene():
    photo = np.full((60, 80, 3), 30, np.uint8)
    photo[20:40, 30:50] = (250, 10, 10)
    small = np.zeros((60, 80), np.uint8)
    small[20:40, 30:50] = 255
    large = np.kron(small, np.ones((4, 4), np.uint8))  # the same mask at 4x the resolution
    a = fit_to_model(Image.fromarray(photo), Image.fromarray(small), (64, 48), FitSettings())
    b = fit_to_model(Image.fromarray(photo), Image.fromarray(large), (64, 48), FitSettings())
    assert a.box == pytest.approx(b.box)
    assert np.array_equal(a.image, b.image)
    assert np.abs(a.mask.astype(int) - b.mask.astype(int)).max() <= 64  # only edge pixels differ
    assert ((a.mask > 127) == (b.mask > 127)).mean() > 0.98


def test_output_size_follows_the_crop_up_to_the_cap_on_a_grid():
    warping = ModelContract(task="generator", height=256, width=192, catalog_resolution=True, alpha=True)
    assert output_size_for(700.0, warping) == (640, 480)  # the crop's own resolution, down to 64-row steps
    assert output_size_for(3000.0, warping) == (1024, 768)  # never above the cap
    assert output_size_for(100.0, warping) == (256, 192)  # never below the model size
    assert output_size_for(700.0, warping, "model") == (256, 192)
    assert output_size_for(700.0, warping, (512, 384)) == (512, 384)
    capped = ModelContract(task="generator", height=256, width=192, catalog_resolution=True, max_output=(512, 384))
    assert output_size_for(3000.0, capped) == (512, 384)
    unet = ModelContract(task="generator", height=256, width=192)
    assert output_size_for(3000.0, unet, "auto") == (256, 192)  # a U-Net answers at its size


def test_the_photo_crop_at_output_size_is_the_same_window():
    photo = np.zeros((400, 300, 3), np.uint8)
    photo[100:300, 75:225] = (200, 30, 30)
    mask = np.zeros((400, 300), np.uint8)
    mask[100:300, 75:225] = 255
    fitted = fit_to_model(
        Image.fromarray(photo), Image.fromarray(mask), (64, 48), FitSettings(), output_size=(256, 192)
    )
    assert fitted.photo.shape == (256, 192, 3) and fitted.image.shape == (64, 48, 3)
    small = np.asarray(Image.fromarray(fitted.photo).resize((48, 64), Image.Resampling.BILINEAR)).astype(int)
    assert np.abs(small - fitted.image.astype(int)).mean() < 8  # the same window, at two sizes


def test_output_sizes_are_parsed_in_one_place():
    from clothes_extractor.runtime.options import parse_output_size

    assert parse_output_size(" Auto ") == "auto" and parse_output_size("model") == "model"
    assert parse_output_size("512x384") == (512, 384) and parse_output_size("512X384") == (512, 384)
    assert parse_output_size("512") == 512
    for bad in ("", "big", "512x", "0", "512x0", "-5", "1x2x3", "12.5"):
        with pytest.raises(ValueError, match="auto, model, HEIGHTxWIDTH or HEIGHT"):
            parse_output_size(bad)


def test_a_mask_has_its_photos_shape_at_any_resolution():
    for mask in ((768, 1024), (96, 128), (97, 129), (10, 13), (11, 13), (1536, 2048)):  # rounding is fine
        check_mask_shape(mask, (768, 1024))
    for mask in ((12, 13), (768, 1000), (800, 1024), (1024, 1024)):
        with pytest.raises(InputError, match="a mask must cover the whole photo"):
            check_mask_shape(mask, (768, 1024))
    with pytest.raises(InputError, match="this one is turned"):
        check_mask_shape((1024, 768), (768, 1024))


def test_a_segmenters_letterbox_goes_on_in_the_photos_border_colour():
    # A landscape photo: green at its edges, a red square inside. The model frame is portrait,
    # so bars above and below: white by the colour, green (the photo's backdrop) by the border.
    photo = np.zeros((60, 120, 3), np.uint8)
    photo[:] = (30, 120, 40)
    photo[20:40, 50:70] = (200, 0, 0)
    image = Image.fromarray(photo)
    plain, window, fill = letterbox_for(image, (64, 48), FitSettings(method="letterbox"))
    assert fill == (255, 255, 255)
    assert np.array_equal(plain, letterbox(image, (64, 48), (255, 255, 255))[0])
    bordered, same, fill = letterbox_for(image, (64, 48), FitSettings(method="letterbox", pad="border"))
    assert same == window and fill == (30, 120, 40)
    assert (plain[0] == 255).all() and (bordered[0] == (30, 120, 40)).all() and (bordered[-1] == (30, 120, 40)).all()
    rows = np.flatnonzero((plain != 255).any(axis=(1, 2)))  # where the photo lands: the same pixels in both
    assert np.array_equal(bordered[rows], plain[rows]) and 0 < rows[0] and rows[-1] < 63
    assert not fills_frame(window, image.size, (64, 48))
    portrait = Image.new("RGB", (96, 128), (10, 20, 30))
    whole, window, _ = letterbox_for(portrait, (64, 48), FitSettings(method="letterbox", pad="border"))
    assert fills_frame(window, portrait.size, (64, 48)) and (whole == (10, 20, 30)).all()


@pytest.mark.parametrize("photo_size", [(768, 1024), (1024, 768), (300, 257), (1536, 2048), (2400, 3200)])
def test_a_part_of_a_letterbox_is_that_part_of_the_whole_one(photo_size):
    """What a segmenter's closer look cuts is made alone (``letterbox_part``): Pillow resamples a
    box at a fractional offset with weights a hair apart, so a pixel may be a level or two off,
    never more; a photo shrunk 3x or more is letterboxed whole, to the pixel."""
    rng = np.random.default_rng(sum(photo_size))
    photo = Image.fromarray(rng.integers(0, 256, (photo_size[1], photo_size[0], 3), dtype=np.uint8))
    size, fill = (768, 576), (12, 34, 56)
    whole = letterbox(photo, size, fill)[0].astype(int)
    for part in [(0, 0, 576, 768), (100, 200, 300, 500), (1, 1, 575, 767), (0, 0, 40, 30), (500, 700, 576, 768)]:
        x0, y0, x1, y1 = part
        cut = letterbox_part(photo, size, fill, part).astype(int)
        assert cut.shape == (y1 - y0, x1 - x0, 3)
        off = np.abs(cut - whole[y0:y1, x0:x1])
        assert off.max() <= (0 if max(photo_size) >= 3 * max(size) else 2) and off.mean() < 0.2, (part, off.max())


def test_a_background_is_white_transparent_or_a_colour_as_css_writes_it():
    assert parse_background(" White ") == "white" and parse_background("transparent") == "transparent"
    assert parse_background("#1E3A8A") == parse_background("rgb(30, 58, 138)") == (30, 58, 138)
    assert parse_background("#fff") == (255, 255, 255) and parse_background("navy") == (0, 0, 128)
    with pytest.raises(ValueError, match="a CSS name such as navy\\), got 'pinkish'"):
        parse_background("pinkish")
    with pytest.raises(ValueError, match="has an alpha: a page colour is opaque; for a cut-out, use transparent"):
        parse_background("#ff000080")
