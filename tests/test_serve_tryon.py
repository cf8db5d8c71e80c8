"""``serve``'s POST /tryon as app developers call it: a real server on a loopback port with
the bundled parser and try-on model, real requests, the same pixels as ``api.dress``."""

import base64
import io
import json
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image
from test_serve import _browser, encoded, post, start, stop

from clothes_extractor import dress, extract_garment, new_session
from clothes_extractor.data.synth import synth_sample
from clothes_extractor.models import model_for
from clothes_extractor.runtime.session import contract_of
from conftest import ROOT, person_photo, run_cli

pytestmark = pytest.mark.xdist_group("serve")

PERSON = ROOT / "examples" / "photos" / "figure-2.jpg"  # a figure on which the parser finds the top
WEARER = ROOT / "examples" / "photos" / "figure-3.jpg"


@pytest.fixture(scope="module")
def tryon_server(tiny_flow_path):
    """The generator a tiny warping one; the parser and the try-on model the bundled ones."""
    if model_for("tryon", gpu=False) is None or not contract_of(model_for("segmenter", gpu=False)).labels:
        pytest.skip("this install bundles no try-on model and parser")
    process, url = start("--model", tiny_flow_path, "--max-wait-ms", "50")
    yield url
    stop(process)


def catalog(index: int = 0) -> bytes:
    return encoded(synth_sample(index, seed=5, size=(256, 192))[2], "PNG")


def post_pair(url: str, fields: dict, query: str = ""):
    return post(url, fields, query, route="/tryon")


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def info(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/info") as answer:
        return json.load(answer)


def test_the_person_is_dressed_as_the_python_function_dresses_them(tryon_server, tiny_flow_path):
    person, garment = PERSON.read_bytes(), catalog()
    status, body, headers = post_pair(tryon_server, {"person": ("p.jpg", person), "garment": ("g.png", garment)})
    assert status == 200 and headers["content-type"] == "image/png", body
    served = decoded(body)
    photo = np.asarray(Image.open(PERSON).convert("RGB"))
    assert served.shape == photo.shape  # the person photo's own size
    assert np.array_equal(served, np.asarray(dress(person, garment)))  # the same pixels as the API
    changed = np.any(served != photo, axis=2).mean()
    assert 0.02 < changed < 0.6  # the top dressed anew, the rest the photo's own pixels

    # the garment taken from a photo of someone wearing it (stage one on the server's generator)
    status, body, _ = post_pair(
        tryon_server, {"person": ("p.jpg", person), "garment_photo": ("w.jpg", WEARER.read_bytes())}, "?response=json"
    )
    assert status == 200, body
    data = json.loads(body)
    assert data["size"] == list(photo.shape[:2]) and data["timings_ms"]["total_ms"] > 0
    made = decoded(base64.b64decode(data["garment"].split(",", 1)[1]))
    with new_session(tiny_flow_path, "cpu", outputs=["garment"]) as generator:
        expected_garment = extract_garment(WEARER, generator=generator)  # at extract's own size, "auto"
        expected = dress(person, WEARER, garment_from_photo=True, generator=generator)
    # (the tiny warping generator has catalog resolution: at the dresser's photo resolution, twice its 64x48 here)
    assert made.shape == (128, 96, 3) and np.array_equal(made, np.asarray(expected_garment))
    assert np.array_equal(decoded(base64.b64decode(data["image"].split(",", 1)[1])), np.asarray(expected))
    assert info(tryon_server)["tryon"]["path"] == "tryon-fp32.onnx"  # its file's name, not where it is kept

    # with the garment photo's own mask: the segmenter is not asked, the mask decides the garment
    wearer, mask = person_photo(4)
    fields = {"person": ("p.jpg", person), "garment_photo": ("w.png", encoded(wearer, "PNG"))}
    fields["garment_mask"] = ("m.png", encoded(mask, "PNG"))
    status, body, _ = post_pair(tryon_server, fields, "?response=json")
    assert status == 200, body
    with new_session(tiny_flow_path, "cpu", outputs=["garment"]) as generator:
        expected_garment = extract_garment(wearer, mask=mask, generator=generator)
    assert np.array_equal(decoded(base64.b64decode(json.loads(body)["garment"].split(",", 1)[1])), expected_garment)


def test_the_openapi_description_is_valid_and_says_what_the_routes_take(tryon_server):
    validator = pytest.importorskip("openapi_spec_validator", reason="openapi-spec-validator (dev extra) is missing")
    with urllib.request.urlopen(f"{tryon_server}/openapi.json") as answer:
        spec = json.load(answer)
    validator.validate(spec)
    assert set(spec["paths"]) == {"/extract", "/tryon", "/health", "/info"}  # the page is no API
    wearer, mask = person_photo(6)
    files = {
        "photo": encoded(wearer, "PNG"),
        "mask": encoded(mask, "PNG"),
        "person": PERSON.read_bytes(),
        "garment": catalog(),
    }
    for route, operation in (("/extract", "extract"), ("/tryon", "tryon")):
        post_spec = spec["paths"][route]["post"]
        assert post_spec["operationId"] == operation
        form = post_spec["requestBody"]["content"]["multipart/form-data"]["schema"]
        fields = {name: (name, files[name]) for name in form["properties"] if name in files}
        assert set(form["required"]) <= set(fields)
        parameters = {p["name"]: p["schema"] for p in post_spec["parameters"]}
        for fmt in parameters["format"]["enum"]:  # every format it names is one it answers in
            status, body, headers = post(tryon_server, fields, f"?format={fmt}", route=route)
            assert status == 200 and headers["content-type"] in post_spec["responses"]["200"]["content"], body
        status, body, _ = post(tryon_server, fields, "?response=json", route=route)
        documented = set(post_spec["responses"]["200"]["content"]["application/json"]["schema"]["properties"])
        assert status == 200 and set(json.loads(body)) <= documented
        assert {"400", "413", "422", "503", "504"} <= set(post_spec["responses"])
    tryon_form = spec["paths"]["/tryon"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(tryon_form["properties"]) == {"person", "garment", "garment_photo", "garment_mask"}


def blank(color) -> bytes:
    return encoded(Image.new("RGB", (192, 256), color), "PNG")


@pytest.mark.parametrize(
    ("fields", "query", "status", "message"),
    [
        ({"garment": ("g.png", catalog())}, "", 400, "no person photo in the request"),
        ({"person": ("p.jpg", PERSON.read_bytes())}, "", 400, "no garment in the request"),
        (
            {"person": ("p.jpg", PERSON.read_bytes()), "garment": ("g.png", catalog()), "garment_photo": ("w", b"x")},
            "",
            400,
            "send the garment once",
        ),
        (PERSON.read_bytes(), "", 400, "send a multipart form"),
        (
            {"person": ("p.jpg", PERSON.read_bytes()), "garment": ("g.png", catalog()), "garment_mask": ("m", b"x")},
            "",
            400,
            "'garment_mask' is the mask of a 'garment_photo'",
        ),
        ({"person": ("p.txt", b"hello"), "garment": ("g.png", catalog())}, "", 400, "person photo is not an image"),
        ({"person": ("p.jpg", PERSON.read_bytes()), "garment": ("g.png", b"")}, "", 400, "the garment is empty"),
        ({"person": ("p.jpg", PERSON.read_bytes()), "garment": ("g.png", catalog())}, "?format=gif", 400, "format"),
        ({"person": ("grey.png", blank((128,) * 3)), "garment": ("g.png", catalog())}, "", 422, "no upper-body"),
        (
            {"person": ("p.jpg", PERSON.read_bytes()), "garment": ("white.png", blank("white"))},
            "",
            422,
            "found no garment in the garment image (0.0% of it is not background): it must be a catalog image, "
            "the garment on white, transparent or a plain backdrop (for a photo of someone wearing it: the "
            "multipart field 'garment_photo')",
        ),
        (
            {"person": ("p.jpg", PERSON.read_bytes()), "garment": ("worn.jpg", PERSON.read_bytes())},
            "",
            422,
            "looks like a photo of someone wearing the garment",
        ),
        (
            {"person": ("c.png", catalog(1)), "garment": ("g.png", catalog())},
            "",
            422,
            "the person photo shows a garment alone, no one wearing it",
        ),
        (
            {"person": ("p.jpg", PERSON.read_bytes()), "garment_photo": ("grey.png", blank((128,) * 3))},
            "",
            422,
            "garment_photo: no garment found in this photo (the segmenter sees none); if there is one, send its "
            "mask as the field 'garment_mask', or the garment's catalog image as 'garment'",
        ),
        (
            {"person": ("p.jpg", PERSON.read_bytes()), "garment_photo": ("w.jpg", WEARER.read_bytes()[:3000])},
            "",
            400,
            "garment_photo: photo cannot be decoded",
        ),
        (  # /extract's option, which try-on does not read: not answered on white in silence
            {"person": ("p.jpg", PERSON.read_bytes()), "garment": ("g.png", catalog())},
            "?background=transparent",
            400,
            "unknown query parameter 'background': this route takes format, response",
        ),
        (
            {"person": ("p.jpg", PERSON.read_bytes()), "garmnet": ("g.png", catalog())},
            "",
            400,
            "the form has a field 'garmnet' this route does not read: it reads 'person', 'garment', 'garment_photo', "
            "'garment_mask'",
        ),
        (
            {"person": ("p.jpg", PERSON.read_bytes()), "garment": ("g.png", catalog()), "format": "jpg"},
            "",
            400,
            "'format' is a query parameter: put it in the URL, POST /tryon?format=jpg",
        ),
    ],
    ids=["no-person", "no-garment", "both-garments", "body", "mask-without-photo", "text-person", "empty-garment"]
    + ["format"]
    + ["nobody", "white-garment", "person-as-garment", "garment-as-person", "photo-without-garment"]
    + ["truncated-photo", "extract-option", "misspelt-field", "option-as-field"],
)
def test_bad_pairs_get_a_4xx_and_the_server_keeps_serving(tryon_server, fields, query, status, message):
    got, body, _ = post_pair(tryon_server, fields, query)
    assert got == status, body
    error = json.loads(body)["error"]
    assert message in error and tempfile.gettempdir() not in error  # no server paths
    ok, _, _ = post_pair(tryon_server, {"person": ("p.jpg", PERSON.read_bytes()), "garment": ("g.png", catalog(1))})
    assert ok == 200


def test_a_body_that_is_no_multipart_form_is_a_400(tryon_server):
    status, body, _ = post(tryon_server, b"garbage", raw_type="multipart/form-data; boundary=b", route="/tryon")
    assert status == 400 and "the multipart form cannot be read (Invalid multipart data" in json.loads(body)["error"]


def test_concurrent_pairs_are_dressed_together_and_none_is_lost(tryon_server):
    fields = {"person": ("p.jpg", PERSON.read_bytes()), "garment": ("g.png", catalog(2))}
    before = info(tryon_server)["tryon_batches"]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post_pair(tryon_server, fields), range(12)))
    assert [status for status, _, _ in answers] == [200] * 12
    assert len({body for _, body, _ in answers}) == 1  # the same pair, the same pixels, whatever the batch
    after = info(tryon_server)["tryon_batches"]
    assert after["requests"] - before["requests"] == 12 and after["tryon"] - before["tryon"] < 12


def test_a_server_without_a_parser_says_why_it_cannot_dress(tiny_flow_path):
    process, url = start("--model", tiny_flow_path, "--no-segmenter")
    try:
        status, body, _ = post_pair(url, {"person": ("p.jpg", PERSON.read_bytes()), "garment": ("g.png", catalog())})
        assert status == 501 and "it needs the segmenter, and runs without one (--no-segmenter)" in body.decode()
        assert info(url)["tryon"] is None
        browser = _browser()  # the page offers no try-on either
        try:
            from selenium.webdriver.support.ui import WebDriverWait

            browser.get(url)
            WebDriverWait(browser, 30).until(lambda b: b.execute_script("return tryonServed === false && infoRead"))
            assert browser.execute_script("return document.getElementById('tryon').hidden") is True
        finally:
            browser.quit()
    finally:
        stderr = stop(process)
    assert "POST /tryon answers 501: this server runs without try-on" in stderr


def test_a_try_on_model_asked_for_that_cannot_serve_is_refused_at_start(tiny_flow_path, tmp_path):
    done = run_cli("serve", "--port", 0, "--model", tiny_flow_path, "--no-segmenter", "--tryon", "tryon")
    assert done.returncode == 2 and "--tryon needs the segmenter as its parser" in done.stderr
    done = run_cli("serve", "--port", 0, "--model", tiny_flow_path, "--tryon", tiny_flow_path)  # a generator
    assert done.returncode == 1 and "Traceback" not in done.stderr and "tryon" in done.stderr


def test_a_server_dresses_at_the_resolution_it_was_started_with(tiny_flow_path):
    """``serve --tryon-resolution model``: POST /tryon dresses a large photo as ``dress(...,
    resolution="model")`` does, not as the default (the person's own resolution) does, and
    makes a ``garment_photo``'s garment at the generator's model size, which is all it uses."""
    person = Image.open(WEARER).convert("RGB").resize((768, 1024), Image.Resampling.NEAREST)
    sent = encoded(person, "PNG")
    garment = Image.open(io.BytesIO(catalog())).convert("RGB").resize((768, 1024), Image.Resampling.NEAREST)
    garment_sent = encoded(garment, "PNG")
    process, url = start("--model", tiny_flow_path, "--tryon-resolution", "model")
    try:
        status, body, _ = post_pair(url, {"person": ("p.png", sent), "garment": ("g.png", garment_sent)})
        worn = {"person": ("p.png", sent), "garment_photo": ("w.jpg", WEARER.read_bytes())}
        worn_status, worn_body, _ = post_pair(url, worn, "?response=json")
    finally:
        stop(process)
    assert status == 200, body
    served = decoded(body)
    assert np.array_equal(served, np.asarray(dress(person, garment, resolution="model")))
    assert not np.array_equal(served, np.asarray(dress(person, garment)))
    assert worn_status == 200, worn_body
    made = decoded(base64.b64decode(json.loads(worn_body)["garment"].split(",", 1)[1]))
    with new_session(tiny_flow_path, "cpu", outputs=["garment"]) as generator:
        expected = extract_garment(WEARER, generator=generator, output_size="model")
    assert made.shape == (64, 48, 3) and np.array_equal(made, np.asarray(expected))
