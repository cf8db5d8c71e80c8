"""The segmenter's two looks at a photo (``runtime.stages.segment``): a garment small in the
frame gets a second, zoomed look, and what that look sees decides. Driven by a real ONNX
segmenter made here whose answer is known: it sees a garment only in purple pixels in the
top quarter of its frame, so a purple patch high in a photo is found at the first look and
is not there any more in the zoomed look, which centres it."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from clothes_extractor.errors import NoGarmentError
from clothes_extractor.models import model_for
from clothes_extractor.runtime.jobs import ExtractJob
from clothes_extractor.runtime.session import ModelSession
from clothes_extractor.runtime.stages import for_segmenter, segment
from clothes_extractor.runtime.walk import MaskSource
from conftest import run_cli

TOP_ROWS = 64  # of the segmenter's 256: where it can see a garment


def purple_segmenter(path: Path) -> Path:
    """The bundled segmenter's contract on a graph that answers 255 where a pixel is purple
    (R and B in 90..170, G under 60) in the frame's top ``TOP_ROWS`` rows, else 0."""
    template = onnx.load(str(model_for("segmenter", gpu=False)), load_external_data=False)
    shape = ["batch", 256, 192]
    x = helper.make_tensor_value_info("image", TensorProto.UINT8, [*shape, 3])
    outputs = [helper.make_tensor_value_info(name, TensorProto.UINT8, [*shape, 1]) for name in ("mask", "labels")]
    top = (np.arange(256) < TOP_ROWS).repeat(192).astype(np.float32)
    constants = [
        helper.make_tensor("lo", TensorProto.FLOAT, [3], [90, -1, 90]),
        helper.make_tensor("hi", TensorProto.FLOAT, [3], [170, 60, 170]),
        helper.make_tensor("axis", TensorProto.INT64, [1], [3]),
        helper.make_tensor("top", TensorProto.FLOAT, [1, 256, 192, 1], top),
        helper.make_tensor("k255", TensorProto.FLOAT, [], [255.0]),
        helper.make_tensor("k3", TensorProto.FLOAT, [], [3.0]),  # the parser's upper-clothes label
    ]
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Greater", ["f", "lo"], ["above"]),
        helper.make_node("Less", ["f", "hi"], ["below"]),
        helper.make_node("And", ["above", "below"], ["inside"]),
        helper.make_node("Cast", ["inside"], ["fi"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMin", ["fi", "axis"], ["purple"], keepdims=1),
        helper.make_node("Mul", ["purple", "top"], ["m"]),
        helper.make_node("Mul", ["m", "k255"], ["m255"]),
        helper.make_node("Cast", ["m255"], ["mask"], to=TensorProto.UINT8),
        helper.make_node("Mul", ["m", "k3"], ["l3"]),
        helper.make_node("Cast", ["l3"], ["labels"], to=TensorProto.UINT8),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "purple", [x], outputs, constants), opset_imports=[helper.make_opsetid("", 18)]
    )
    model.ir_version = template.ir_version
    for entry in template.metadata_props:
        value = entry.value
        if entry.key == "clothes_extractor.contract":  # another graph: no checksum of the bundled one's, no head
            value = json.dumps({**json.loads(value), "weights_sha256": "", "alone": False})
        added = model.metadata_props.add()
        added.key, added.value = entry.key, value
    onnx.save(model, str(path))
    return path


def patch_photo(path: Path, rows: slice) -> Path:
    photo = np.full((1024, 768, 3), 255, np.uint8)
    photo[rows, 320:440] = (128, 0, 128)
    Image.fromarray(photo).save(path)
    return path


@pytest.fixture(scope="module")
def purple(tmp_path_factory):
    return ModelSession(purple_segmenter(tmp_path_factory.mktemp("seg") / "purple.onnx"), "cpu")


def looks(segmenter, photo: Path):
    item = for_segmenter(ExtractJob(photo, photo, MaskSource("auto")), segmenter.contract)
    first = segmenter.run(image=item.image[None])["mask"][0, ..., 0]
    return first, segment([item], segmenter)[0]


def test_a_zoomed_look_that_sees_no_garment_means_none_is_there(purple, tmp_path):
    first, found = looks(purple, patch_photo(tmp_path / "high.png", slice(120, 220)))
    assert (first > 127).sum() > 0.004 * first.size  # the first look saw a small garment ...
    assert isinstance(found, NoGarmentError)  # ... the closer look none: never an empty mask to fit
    # A patch the zoomed look still sees (its whole frame's top rows are purple) keeps its mask.
    photo = np.asarray(Image.open(tmp_path / "high.png")).copy()
    photo[: 1024 // 4] = (128, 0, 128)
    photo[: 1024 // 4, :300] = 255  # (not the whole width: a box under half the frame, zoomed)
    photo[: 1024 // 4, 400:] = 255
    Image.fromarray(photo).save(tmp_path / "band.png")
    _, found = looks(purple, tmp_path / "band.png")
    assert found.zoomed and (found.plane > 127).any()


def test_extract_reports_no_garment_where_the_zoomed_look_sees_none(purple, tiny_model_path, tmp_path):
    """Not the message for an empty mask FILE (whose advice is to mend the file): the user
    gave none."""
    photo = patch_photo(tmp_path / "high.png", slice(120, 220))
    done = run_cli("extract", photo, "-o", tmp_path / "out", "--model", tiny_model_path, "--segmenter", purple.path)
    assert done.returncode == 1
    assert f"error: {photo}: no garment found in this photo (the segmenter sees none)" in done.stderr
    assert "Masks must be white" not in done.stderr and not list((tmp_path / "out").glob("*"))


def test_a_workers_look_decides_as_the_first_look_does_and_then_fits_or_crops(purple, tiny_model_path, tmp_path):
    """``look_then``, a worker's part of the folder job's first look: what ``first_look`` decides
    of a photo (made out in the calling process before), then the fit the calling process would
    have sent a worker next, or the closer look's crop."""
    from clothes_extractor.runtime.options import ExtractOptions, make_plan
    from clothes_extractor.runtime.stages import PhotoLook, Prepared, finish, first_look, look_then, parse

    plan = make_plan(ModelSession(tiny_model_path, "cpu"), purple, ExtractOptions())
    wide = np.full((1024, 768, 3), 255, np.uint8)
    wide[40:200] = (128, 0, 128)  # the whole width: no closer look
    Image.fromarray(wide).save(tmp_path / "wide.png")
    Image.fromarray(np.full((1024, 768, 3), 255, np.uint8)).save(tmp_path / "blank.png")
    photos = [tmp_path / "wide.png", patch_photo(tmp_path / "high.png", slice(120, 220)), tmp_path / "blank.png"]
    items = [
        for_segmenter(ExtractJob(p, tmp_path / "out" / p.name, MaskSource("auto")), purple.contract) for p in photos
    ]
    before = first_look(items, purple)
    then = [
        look_then(item, *planes, purple.contract, plan)
        for item, planes in zip(items, parse(items, purple), strict=True)
    ]
    (none, fitted), (look, crop), (nothing, error) = then
    assert none is None and isinstance(fitted, Prepared)
    made = finish(items[0], before.results[0], plan)
    assert fitted.mask_source == made.mask_source == "segmenter"
    assert all(np.array_equal(fitted.inputs[k], made.inputs[k]) for k in made.inputs)
    assert isinstance(look, PhotoLook) and before.zooms == [(1, look.zoom)]  # the same closer look, its crop made
    assert crop.shape == (*purple.contract.size, 3) and np.array_equal(
        crop, items[1].zoomed(look.zoom, purple.contract)
    )
    assert nothing is None and isinstance(error, NoGarmentError) and isinstance(before.results[2], NoGarmentError)
