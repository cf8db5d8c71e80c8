"""A generated garment's edge on a page that is not white (``matte.settled``, which
``apply_background`` runs for a transparent or coloured background): where the silhouette
reaches past the rendering, the white seen there is left out (no pale glow); where the
silhouette calls a pale pixel garment, the garment's colour is painted in; white garments,
striped ones and pale patches inside a garment stay as they are. Drawn garments first, then
the bundled generator on VITON validation pairs."""

import numpy as np
import pytest
from PIL import Image

from clothes_extractor.runtime import matte
from clothes_extractor.runtime.images import apply_background
from clothes_extractor.runtime.matte import settled
from clothes_extractor.runtime.silhouette import dilate
from conftest import VITON_VAL, cp_vton_subset

NAVY = (30, 40, 90)


def drawn(size=(192, 256), colour=NAVY, glow: int = 6, blend: int = 0):
    """A garment drawn on white as the generator draws one (uint8 [h, w, 3]) and a silhouette
    whose soft edge reaches ``glow`` pixels past it (uint8 [h, w]); ``blend``: the rendering's
    own edge, that many pixels of the garment's colour fading to white. Also the garment's box."""
    w, h = size
    box = (w // 5, h // 6, w - w // 5, h - h // 6)
    inside = np.zeros((h, w), bool)
    inside[box[1] : box[3], box[0] : box[2]] = True
    distance = np.zeros((h, w), np.float32)  # pixels outside the box, as a square grows
    grown = inside
    for step in range(1, glow + blend + 2):
        ring = dilate(grown, 1) & ~grown
        distance[ring] = step
        grown = grown | ring
    distance[~grown] = glow + blend + 2
    alpha = np.where(inside, 255, np.clip(255 * (1 - distance / (glow + 1)), 0, 255)).astype(np.uint8)
    cover = np.where(inside, 1.0, np.clip(1 - distance / (blend + 1), 0, 1))[..., None]
    garment = np.rint(cover * np.asarray(colour) + (1 - cover) * 255).astype(np.uint8)
    return garment, alpha, box


def unmixed(garment: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The colours a transparent output holds: ``garment`` un-composed from white."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    return (garment.astype(np.float32) - (1 - a) * 255) / np.maximum(a, 1 / 255)


def test_the_white_past_the_rendering_is_left_out():
    """Where the silhouette calls it background (alpha under half), the white it shows goes;
    where it calls it garment, its shape stays, in the garment's colour."""
    garment, alpha, (x0, y0, x1, y1) = drawn()
    glow = (alpha > 0) & (alpha < 255)  # all of it white in the rendering
    assert (garment[glow] == 255).all() and glow.sum() > 3000
    assert unmixed(garment, alpha)[glow & (alpha > 64)].min() > 250  # what was written: a pale glow
    new_garment, new_alpha = settled(garment, alpha)
    outside, edge = glow & (alpha < 128), glow & (alpha >= 128)
    assert (new_alpha[outside] == 0).all() and (new_alpha[edge] == alpha[edge]).all()
    assert np.abs(unmixed(new_garment, new_alpha)[edge] - NAVY).max() < 2
    assert (new_alpha[~glow] == alpha[~glow]).all() and (new_garment[~edge] == garment[~edge]).all()
    rgb, written = apply_background(garment, alpha, "transparent")
    assert (written[outside] == 0).all() and (rgb[y0:y1, x0:x1] == NAVY).all()
    assert np.abs(rgb[edge].astype(int) - NAVY).max() < 2


def test_the_rendering_s_own_soft_edge_keeps_the_garment_s_colour():
    """Where the rendering fades to white over 4 pixels, those pixels keep the garment's colour,
    not a pale one: at their alpha where the silhouette calls them garment, at about the share
    of the garment they show where it calls them background."""
    garment, alpha, _ = drawn(glow=5, blend=4)
    fading = (garment < 250).any(-1) & (garment > NAVY).any(-1)
    outside = fading & (alpha < 128)
    assert outside.sum() > 500 and (fading & ~outside).sum() > 500
    new_garment, new_alpha = settled(garment, alpha)
    navy = np.asarray(NAVY)
    share = (255 - garment[outside].astype(float)) @ (255 - navy) / np.sum((255 - navy) ** 2)
    assert np.abs(new_alpha[outside] / 255 - share).max() < 0.02
    assert (new_alpha[fading & ~outside] == alpha[fading & ~outside]).all()
    assert np.abs(unmixed(new_garment, new_alpha)[fading] - navy).max() < 8
    assert np.abs(unmixed(garment, alpha)[fading] - navy).max() > 60  # (as written before: paler)
    assert (new_alpha[(garment == 255).all(-1) & (alpha < 128)] == 0).all()


def test_a_pale_pixel_the_silhouette_calls_garment_is_painted():
    garment, alpha, (x0, y0, x1, y1) = drawn()
    notch = (slice(y0 + 1, y0 + 4), slice(x0 + 20, x0 + 30))  # the rendering misses a bit of the edge
    garment[notch], alpha[notch] = 255, 200
    alpha[y0, x0 + 20 : x0 + 30] = 100
    new_garment, new_alpha = settled(garment, alpha)
    assert (new_alpha[notch] == 200).all()  # the silhouette's shape stays
    assert np.abs(unmixed(new_garment, new_alpha)[notch] - NAVY).max() < 8


def test_a_veil_where_the_rendering_is_white_is_cleared():
    """The head's faint alpha over the page (1 to 60 where the rendering is white or nearly so,
    more than the settled band from the garment, or under ``FAINT`` in it) is a veil on a dark
    page: cleared. What the rendering draws there (a grey blob) keeps its alpha."""
    garment, alpha, (x0, y0, x1, y1) = drawn(glow=6, blend=2)
    rng = np.random.default_rng(0)
    far = np.ones(alpha.shape, bool)
    far[y0 - 12 : y1 + 12, x0 - 12 : x1 + 12] = False  # more than 8 px from the garment's half-way line
    alpha[far] = rng.integers(1, 61, far.sum())
    garment[far] = rng.integers(245, 256, (far.sum(), 3))  # white, and a few levels off it
    blob = (slice(2, 12), slice(2, 12))
    garment[blob], alpha[blob] = 120, 40
    faint = (slice(y0 + 20, y0 + 30), slice(x0 - 4, x0 - 2))  # in the band, white, alpha under FAINT
    alpha[faint] = 5
    drawn_faint = (slice(y0 + 40, y0 + 50), slice(x0 - 4, x0 - 2))  # in the band, drawn, faint
    garment[drawn_faint], alpha[drawn_faint] = 200, 5
    veil = far.copy()
    veil[blob] = False
    new_garment, new_alpha = settled(garment, alpha)
    assert (new_alpha[veil] == 0).all() and (new_alpha[faint] == 0).all()
    assert (new_alpha[blob] == 40).all() and (new_alpha[drawn_faint] == 5).all()
    assert (new_alpha[y0:y1, x0:x1] == 255).all() and np.array_equal(new_garment[far], garment[far])
    _, written = apply_background(garment, alpha, "transparent")
    assert (written[veil] == 0).all() and (written[blob] == 40).all()


@pytest.mark.parametrize("kind", ["white", "striped", "deep"])
def test_what_cannot_be_told_from_white_stays(kind):
    """A white garment's edge (white on white), a striped one's white stripes (its own), and a
    pale patch deep inside a garment the silhouette is unsure of (the rendering's, not its edge's)."""
    colour = (244, 244, 246) if kind == "white" else NAVY
    garment, alpha, (x0, y0, x1, y1) = drawn(colour=colour, glow=6, blend=2)
    if kind == "striped":
        stripes = ((np.arange(garment.shape[0]) // 3) % 2 == 0)[:, None] & np.ones(garment.shape[1], bool)
        garment[stripes & (alpha > 0)] = 255
        keep = stripes & (alpha > 0) & (alpha < 255)
    elif kind == "deep":
        patch = (slice(y0 + 40, y0 + 60), slice(x0 + 30, x0 + 50))  # 30 px in, the unsure soft edge around it
        garment[patch], alpha[y0:y1, x0 : x0 + 60] = 255, 240
        keep = np.zeros(alpha.shape, bool)
        keep[patch] = True
    else:
        keep = alpha > 0
    new_garment, new_alpha = settled(garment, alpha)
    assert (new_alpha[keep] == alpha[keep]).all() and (new_garment[keep] == garment[keep]).all()


def test_a_crisp_edge_is_left_as_it_is():
    """A garment cut out of a photo has a crisp alpha (a pixel of soft edge at most): whatever
    pale fringe it holds is the photo's, and nothing is settled; the same garment with the
    generator's wide soft edge is."""
    garment, alpha, _ = drawn(glow=1, blend=1)
    assert ((alpha > 0) & (alpha < 255)).any()
    new_garment, new_alpha = settled(garment, alpha)
    assert new_garment is garment and new_alpha is alpha
    garment, alpha, _ = drawn(glow=4, blend=1)
    assert (settled(garment, alpha)[1] != alpha).any()


def test_the_same_at_four_times_the_resolution():
    small = drawn(glow=6, blend=2)
    large = drawn(size=(768, 1024), glow=24, blend=8)
    for garment, alpha, _ in (small, large):
        new_garment, new_alpha = settled(garment, alpha)
        white = (garment == 255).all(-1) & (alpha < 128)
        assert (new_alpha[white] == 0).all() and (alpha[white] > 0).sum() > 0.01 * white.size


def test_a_coloured_page_is_the_transparent_garment_laid_on_it():
    """Where the rendering reaches past the silhouette (a dark pixel the silhouette calls
    background), neither output shows it; elsewhere the page is the transparent garment on it."""
    garment, alpha, (x0, y0, x1, y1) = drawn(glow=4, blend=2)
    garment[5:10, 5:10], alpha[5:10, 5:10] = 60, 0  # (drawn where there is no garment)
    page = (0, 128, 255)
    rgba, a = apply_background(garment, alpha, "transparent")
    on_page, none = apply_background(garment, alpha, page)
    laid = rgba * (a[..., None] / 255) + (1 - a[..., None] / 255) * np.asarray(page)
    assert none is None and np.abs(laid - on_page).max() <= 1
    assert (on_page[5:10, 5:10] == page).all()
    assert apply_background(garment, alpha, "white")[0] is garment


@pytest.mark.parametrize("page", [None, (30, 58, 138), (200, 200, 200), (0, 0, 0), (255, 255, 255)])
def test_the_tables_un_compose_every_value_at_every_alpha_as_the_arithmetic_does(page):
    """``uncomposed`` reads each channel from a table: for every (alpha, value) pair, on each page,
    the bytes of the float32 arithmetic done per pixel (as ``apply_background`` did it before)."""
    alpha = np.repeat(np.arange(256, dtype=np.uint8), 256).reshape(256, 256)  # each row one alpha
    value = np.tile(np.arange(256, dtype=np.uint8), 256).reshape(256, 256)  # each column one value
    garment = np.stack([value, np.flip(value, 1), np.roll(value, 7, 1)], -1)  # every value in every channel
    a = alpha.astype(np.float32).reshape(256, 256, 1) / 255.0
    colour = np.clip((garment.astype(np.float32) - (1.0 - a) * 255.0) / np.maximum(a, 1.0 / 255.0), 0.0, 255.0)
    if page is None:
        expected = np.rint(colour).astype(np.uint8)
    else:
        expected = np.clip(np.rint(a * colour + (1.0 - a) * np.asarray(page, np.float32)), 0, 255).astype(np.uint8)
    assert np.array_equal(matte.uncomposed(garment, alpha, page), expected)
    assert np.array_equal(matte.uncomposed(garment, alpha[..., None], page), expected)  # [H, W, 1] alike


def test_a_garment_drawn_small_is_settled_then_resized():
    """A size asked for that the generator does not draw at (``--output-size`` with a 256x192
    generator): settled at the size drawn, then the garment on white and its alpha resized alike,
    so the transparent garment keeps its colour and no glow comes back; on white, the garment
    resized."""
    garment, alpha, (x0, y0, x1, y1) = drawn(glow=6, blend=2)
    size = (1024, 768)
    rgba, a = apply_background(garment, alpha, "transparent", size)
    assert rgba.shape == (1024, 768, 3) and a.shape == (1024, 768)
    inside = np.zeros(size, bool)
    inside[4 * y0 + 8 : 4 * y1 - 8, 4 * x0 + 8 : 4 * x1 - 8] = True
    assert (np.abs(rgba[inside].astype(int) - NAVY).max(-1) <= 1).all()  # the garment's own colour
    settled_garment, settled_alpha = settled(garment, alpha)
    glow = (garment == 255).all(-1) & (alpha > 0) & (settled_alpha == 0)  # what the settling left out
    far = np.kron(glow & ~dilate(settled_alpha > 0, 2), np.ones((4, 4), bool))  # (beyond the resize's reach)
    assert far.sum() > 1000 and (a[far] == 0).all()  # stays left out
    on_white = apply_background(settled_garment, None, "white", size)[0]
    composed = rgba * (a[..., None] / 255) + (1 - a[..., None] / 255) * 255
    assert np.abs(composed - on_white).max() <= 2  # the garment on white and its alpha resized alike
    resized = Image.fromarray(garment).resize((768, 1024), Image.Resampling.BICUBIC)
    assert np.array_equal(apply_background(garment, alpha, "white", size)[0], np.asarray(resized))
    assert apply_background(garment, alpha, "white", garment.shape[:2])[0] is garment


@pytest.mark.skipif(not VITON_VAL.is_file(), reason=f"{VITON_VAL} is absent")
def test_the_bundled_generator_s_garments_lose_their_glow(tmp_path, monkeypatch):
    """The first 24 VITON validation pairs through the bundled generator, on a blue-grey page:
    outside the catalog silhouette (within 6 px of it, where the page shows) the output's colour
    error falls by a fifth (from about 25 levels), inside it does not grow, and the silhouette
    scored at 128 (``evaluate``'s alpha IoU) is the same. On a black page, the haze farther out
    (the head's faint alpha where the U-Net drew white) is a fifth fainter cleared than not."""
    from clothes_extractor.eval.datasets import load_fitted, load_samples
    from clothes_extractor.models import model_for
    from clothes_extractor.runtime.session import ModelSession

    model = ModelSession(model_for("generator", gpu=False), "cpu")
    samples = load_samples(cp_vton_subset(tmp_path, 24), "val")
    items = [load_fitted(s, model.contract) for s in samples]
    outputs = model.run(image=np.stack([i["image"] for i in items]), mask=np.stack([i["mask"] for i in items]))
    page = np.asarray((90, 110, 140), np.float32)
    errors = {"ring before": [], "ring now": [], "core before": [], "core now": [], "haze": [], "haze kept": []}
    for item, garment, alpha in zip(items, outputs["garment"], outputs["alpha"], strict=True):
        alpha = alpha.reshape(garment.shape[:2])
        silhouette = item["alpha"].reshape(alpha.shape) >= 128
        away = ~dilate(silhouette, 6)  # (the page: black there in the catalog image cut out)
        errors["haze"].append(apply_background(garment, alpha, (0, 0, 0))[0][away].mean())
        with monkeypatch.context() as patched:
            patched.setattr(matte, "CLEAR_LEVELS", -1)  # (nothing is white enough: nothing cleared)
            errors["haze kept"].append(apply_background(garment, alpha, (0, 0, 0))[0][away].mean())
        truth = np.where(silhouette[..., None], item["target"], page)
        before = garment + (1 - alpha[..., None] / 255) * (page - 255)  # (as it was composed)
        now = apply_background(garment, alpha, tuple(page.astype(int)))[0]
        ring, core = dilate(silhouette, 6) & ~silhouette, silhouette & ~dilate(~silhouette, 2)
        for name, image in (("before", before), ("now", now)):
            error = np.abs(image.astype(np.float32) - truth).mean(-1)
            errors[f"ring {name}"].append(error[ring].mean())
            errors[f"core {name}"].append(error[core].mean())
        assert ((settled(garment, alpha)[1] >= 128) == (alpha >= 128)).all()
    means = {name: float(np.mean(values)) for name, values in errors.items()}
    assert means["ring before"] > 20 and means["ring now"] < 0.8 * means["ring before"], means
    assert means["core now"] <= means["core before"] + 0.05, means
    assert means["haze kept"] > 4 and means["haze"] < 0.9 * means["haze kept"], means
