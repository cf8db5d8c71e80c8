import json

import pytest

from clothes_extractor.errors import ContractError
from clothes_extractor.runtime.contract import METADATA_KEY, FitSettings, ModelContract


def contract(**changes):
    return ModelContract(**{"task": "generator", "height": 64, "width": 48, **changes})


GOOD_INPUTS = [("image", "tensor(uint8)", ["batch", 64, 48, 3]), ("mask", "tensor(uint8)", ["batch", 64, 48, 1])]
GOOD_OUTPUTS = [("garment", "tensor(uint8)", ["batch", 64, 48, 3])]


def test_metadata_round_trip():
    original = contract(fit=FitSettings(margin=0.2, pad_rgb=(0, 0, 0)), training={"epochs": 3})
    assert ModelContract.from_metadata(original.to_metadata()) == original


def test_missing_contract_says_how_to_fix():
    with pytest.raises(ContractError, match="no clothes-extractor contract.*clothes-extractor export"):
        ModelContract.from_metadata({}, "m.onnx")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 99}, "contract format 99"),
        ({"max_output": [1024]}, "max_output"),
        ({"catalog_resolution": True, "task": "segmenter", "fit": {"method": "letterbox"}}, "generator and tryon"),
        ({"alpha": True, "task": "tryon", "fit": {"method": "letterbox"}}, "alpha is a generator feature"),
        ({"task": "segmentor"}, "unknown task 'segmentor'"),
        ({"height": 0}, "input height"),
        ({"precision": "int4"}, "precision"),
        ({"background_rgb": [255, 255]}, "background_rgb"),
        ({"colour": 1}, "unknown field 'colour'"),
        ({"heigth": 64}, "did you mean 'height'"),
        ({"fit": {"margin": -1}}, "margin"),
        ({"fit": {"method": "stretch"}}, "unknown fit method"),
        ({"fit": {"pad": "mirror"}}, "fit pad must be one of rgb, border"),
        ({"fit": {"pad": "border"}}, "'border' is a segmenter's letterbox; a generator pads with pad_rgb"),
    ],
)
def test_broken_contracts_are_refused_with_the_reason(change, message):
    data = json.loads(contract().to_metadata()[METADATA_KEY])
    data.update(change)
    with pytest.raises(ContractError, match=message):
        ModelContract.from_metadata({METADATA_KEY: json.dumps(data)}, "m.onnx")


def test_not_json_is_refused():
    with pytest.raises(ContractError, match="not valid JSON"):
        ModelContract.from_metadata({METADATA_KEY: "{nope"}, "m.onnx")


def test_graph_matching_the_contract_passes():
    contract().check_graph(GOOD_INPUTS, GOOD_OUTPUTS)


def test_graph_mismatches_are_all_listed():
    inputs = [("image", "tensor(float)", ["batch", 64, 48, 3]), ("mask", "tensor(uint8)", [1, 64, 48, 1])]
    outputs = [("garment", "tensor(uint8)", ["batch", 32, 48, 3])]
    with pytest.raises(ContractError) as error:
        contract().check_graph(inputs, outputs, "m.onnx")
    text = str(error.value)
    assert "'image' is tensor(float)" in text
    assert "fixed batch of 1" in text
    assert "'garment' has shape ['batch', 32, 48, 3]" in text


def test_graph_with_other_tensor_names_is_refused():
    with pytest.raises(ContractError, match=r"inputs are \['input'\]"):
        contract().check_graph([("input", "tensor(uint8)", ["n", 64, 48, 3])], GOOD_OUTPUTS)


def test_a_version_1_contract_still_reads():
    data = json.loads(contract().to_metadata()[METADATA_KEY])
    for key in ("catalog_resolution", "alpha", "max_output", "weights_sha256"):
        del data[key]
    data["format_version"] = 1
    old = ModelContract.from_metadata({METADATA_KEY: json.dumps(data)})
    assert old.format_version == 1 and not old.catalog_resolution and old.weights_sha256 == ""


def test_a_version_2_segmenter_pads_with_its_colour_and_a_new_one_with_the_photos_border():
    segmenter = contract(task="segmenter", fit=FitSettings(method="letterbox", pad="border"), labels=("a", "b"))
    assert ModelContract.from_metadata(segmenter.to_metadata()) == segmenter
    data = json.loads(segmenter.to_metadata()[METADATA_KEY])
    assert data["format_version"] == 3
    del data["fit"]["pad"]
    data["format_version"] = 2
    assert ModelContract.from_metadata({METADATA_KEY: json.dumps(data)}).fit.pad == "rgb"


def test_the_bundled_segmenter_letterboxes_with_the_photos_border():
    from clothes_extractor.models import bundled_model
    from clothes_extractor.runtime.session import contract_of

    for precision in ("fp32", "fp16"):
        assert contract_of(bundled_model("segmenter", precision)).fit.pad == "border"


def test_a_catalog_resolution_generator_takes_the_photo_at_any_size():
    warping = contract(catalog_resolution=True, alpha=True, max_output=(1024, 768))
    assert [s.name for s in warping.inputs] == ["image", "mask", "photo"]
    assert [(s.name, s.resolution) for s in warping.outputs] == [("garment", "photo"), ("alpha", "photo")]
    photo_in = ("photo", "tensor(uint8)", ["batch", "height", "width", 3])
    outputs = [("garment", "tensor(uint8)", ["batch", "h", "w", 3]), ("alpha", "tensor(uint8)", ["batch", "h", "w", 1])]
    warping.check_graph([*GOOD_INPUTS, photo_in], outputs)
    fixed = [("garment", "tensor(uint8)", ["batch", 64, 48, 3]), outputs[1]]
    with pytest.raises(ContractError, match="'garment' has a fixed size \\[64, 48\\]; it must take any size"):
        warping.check_graph([*GOOD_INPUTS, photo_in], fixed)
    with pytest.raises(ContractError, match=r"inputs are \['image', 'mask'\], the generator contract needs"):
        warping.check_graph(GOOD_INPUTS, outputs)
