"""``serve`` as users meet it: a real server on a loopback port, real requests, a real browser."""

import base64
import http.client
import io
import json
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clothes_extractor.data.synth import synth_sample
from clothes_extractor.models import model_for
from clothes_extractor.runtime.images import SIGNATURE_KEY
from clothes_extractor.runtime.session import contract_of
from conftest import ROOT, TINY_SIZE, cli_env, person_photo, run_cli

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")

pytestmark = pytest.mark.xdist_group("serve")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(*args, context=None) -> tuple[subprocess.Popen, str]:
    """``serve`` with ``args`` on a free port, once it answers /health; ``context``: an SSL
    context that trusts its certificate (it serves HTTPS)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "clothes_extractor", "serve", "--port", str(port), *map(str, args)],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"{'https' if context else 'http'}://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read())
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1, context=context) as answer:
                if json.load(answer) == {"status": "ok"}:
                    return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the server did not come up")


def stop(process: subprocess.Popen) -> str:
    process.terminate()
    try:
        _, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return stderr


def multipart(fields: dict[str, tuple[str, bytes] | str]) -> tuple[bytes, str]:
    """A multipart body of files (name: (file name, bytes)) and text fields (name: text)."""
    boundary = "ce-test-boundary"
    body = b""
    for name, value in fields.items():
        if isinstance(value, str):  # a text field, as curl -F name=value sends it
            body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            continue
        filename, data = value
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(
    url: str,
    fields: "dict[str, tuple[str, bytes]] | bytes",
    query: str = "",
    raw_type: str = "image/jpeg",
    route: str = "/extract",
):
    """POST ``route``: ``fields`` as a multipart form, or bytes as the whole body (``raw_type``)."""
    body, content_type = (fields, raw_type) if isinstance(fields, bytes) else multipart(fields)
    request = urllib.request.Request(f"{url}{route}{query}", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def encoded(image: Image.Image, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tiny_flow_path):
    process, url = start(
        "--model", tiny_flow_path, "--no-segmenter", "--max-upload-mb", "2", "--max-wait-ms", "30",
        "--allow-origin", "http://shop.example", "--allow-origin", "https://app.example:8443/",
    )  # fmt: skip
    yield url
    stop(process)


def test_extract_returns_the_garment_and_json_with_the_mask(server):
    photo, mask = person_photo(1)
    status, body, headers = post(server, {"photo": ("p.jpg", encoded(photo)), "mask": ("m.png", encoded(mask, "PNG"))})
    assert status == 200 and headers["content-type"] == "image/png" and headers["x-mask-source"] == "file"
    assert Image.open(io.BytesIO(body)).size == (TINY_SIZE[1], TINY_SIZE[0])
    with urllib.request.urlopen(f"{server}/info") as answer:
        info = json.load(answer)
    assert info["generator_sessions"][0] == ["garment"]  # white: no silhouette computed
    assert info["generator"]["path"] == "flow.onnx" and tempfile.gettempdir() not in json.dumps(info)  # no paths
    status, body, _ = post(
        server,
        {"photo": ("p.jpg", encoded(photo)), "mask": ("m.png", encoded(mask, "PNG"))},
        "?response=json&format=webp&background=transparent&output_size=128",  # a height: the model's aspect
    )
    assert status == 200, body
    with urllib.request.urlopen(f"{server}/info") as answer:
        assert json.load(answer)["generator_sessions"] == [["garment"], ["garment", "alpha"]]
    data = json.loads(body)
    assert data["mask"] == "file" and data["size"] == [128, 96] and data["timings_ms"]["total_ms"] > 0
    assert data["resized_from"] is None  # a warping generator applies its flow at the size asked for
    garment = Image.open(io.BytesIO(base64.b64decode(data["garment"].split(",", 1)[1])))
    assert garment.format == "WEBP" and garment.mode == "RGBA" and garment.size == (96, 128)
    assert data["mask_image"].startswith("data:image/png;base64,")
    status, body, _ = post(  # another aspect: a page, the garment centred on it (the page's square option)
        server,
        {"photo": ("p.jpg", encoded(photo)), "mask": ("m.png", encoded(mask, "PNG"))},
        "?response=json&format=webp&background=transparent&output_size=128x128",
    )
    assert status == 200 and json.loads(body)["size"] == [128, 128], body
    page = np.asarray(Image.open(io.BytesIO(base64.b64decode(json.loads(body)["garment"].split(",", 1)[1]))))
    assert page.shape == (128, 128, 4) and (page[:, :16, 3] == 0).all() and (page[:, 112:, 3] == 0).all()
    assert np.abs(page[:, 16:112].astype(int) - np.asarray(garment)).mean() < 1.0  # (WebP: lossy, alike)
    status, body, _ = post(  # the garment's box brought to a share of the page (fill): its silhouette read
        server,
        {"photo": ("p.jpg", encoded(photo)), "mask": ("m.png", encoded(mask, "PNG"))},
        "?output_size=128x128&fill=60%25",
    )
    assert status == 200 and Image.open(io.BytesIO(body)).size == (128, 128), body
    with urllib.request.urlopen(f"{server}/info") as answer:  # (on white: the session with the silhouette)
        assert json.load(answer)["generator_sessions"] == [["garment"], ["garment", "alpha"]]


def test_a_garment_the_server_answered_is_refused_as_a_photo(server):
    # the page's download dropped back on it: signed as extract signs its files, so it is a
    # 400 that says what it is, not a garment made of a garment
    photo, mask = person_photo(1)
    fields = {"photo": ("p.jpg", encoded(photo)), "mask": ("m.png", encoded(mask, "PNG"))}
    for fmt in ("png", "jpg", "webp"):
        status, garment, _ = post(server, fields, f"?format={fmt}")
        assert status == 200
        status, body, _ = post(server, {"photo": (f"g.{fmt}", garment), "mask": ("m.png", encoded(mask, "PNG"))})
        assert status == 400, body
        assert json.loads(body)["error"].startswith("photo is a garment image that extract wrote, not a photo")


def test_pages_of_the_allowed_origins_may_call_it_from_a_browser(server):
    photo, mask = person_photo(5)
    body, content_type = multipart({"photo": ("p.jpg", encoded(photo)), "mask": ("m.png", encoded(mask, "PNG"))})
    for origin, allowed in (("http://shop.example", True), ("https://app.example:8443", True), ("http://evil", False)):
        preflight = urllib.request.Request(
            f"{server}/extract",
            method="OPTIONS",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )
        try:
            with urllib.request.urlopen(preflight) as answer:
                status, headers = answer.status, answer.headers
        except urllib.error.HTTPError as error:
            status, headers = error.code, error.headers
        assert (status, headers.get("access-control-allow-origin")) == ((200, origin) if allowed else (400, None))
        request = urllib.request.Request(
            f"{server}/extract", data=body, headers={"Content-Type": content_type, "Origin": origin}
        )
        with urllib.request.urlopen(request) as answer:  # (a browser, not the server, enforces it)
            assert answer.status == 200
            assert answer.headers.get("access-control-allow-origin") == (origin if allowed else None)
            if allowed:  # a page's script may read where the mask came from
                assert "x-mask-source" in answer.headers["access-control-expose-headers"].lower()
    done = run_cli("serve", "--port", 0, "--allow-origin", "shop.example/app")
    assert done.returncode == 2 and "--allow-origin 'shop.example/app' is not an origin" in done.stderr


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("fields", "query", "status", "message"),
    [
        ({"photo": ("big.jpg", b"\xff" * (50 * 2**20))}, "", 413, "larger than"),
        ({"photo": ("bomb.png", png_header_only(30000, 30000))}, "", 400, "photo is too large to decode"),
        ({"photo": ("notes.txt", b"hello, I am text")}, "", 400, "photo is not an image"),
        ({"photo": ("p.jpg", encoded(person_photo(1)[0])), "mask": ("m.txt", b"text")}, "", 400, "mask is not an"),
        ({"photo": ("empty.jpg", b"")}, "", 400, "empty"),
        ({}, "", 400, "no photo in the request"),
        ({"photo": ("p.jpg", b"x")}, "?format=gif", 400, "format must be"),
        ({"photo": ("p.jpg", b"x")}, "?background=pinkish", 400, "#RRGGBB, #RGB, a CSS name"),
        ({"photo": ("p.jpg", b"x")}, "?response=xml", 400, "response must be image or json, got 'xml'"),
        ({"photo": ("p.jpg", b"x")}, "?output_size=100000", 400, "output_size 100000x75000: each side must be 1 to"),
        ({"photo": ("p.jpg", b"x")}, "?fill=85", 400, "fill is the garment's share of the page, 10% to 100%"),
        ({"photo": ("p.jpg", b"x")}, "?backround=transparent", 400, "unknown query parameter 'backround': this route"),
        ({"photo": ("p.jpg", b"x")}, "?format=png&format=jpg", 400, "the query parameter 'format' is given 2 times"),
        ({"photo": ("p.jpg", b"x"), "maks": ("m.png", b"x")}, "", 400, "a field 'maks' this route does not read"),
        (  # an option sent as a form field (curl -F background=transparent): where it goes
            {"photo": ("p.jpg", b"x"), "background": "#ff0000", "format": "webp"},
            "",
            400,
            "the form has fields 'background', 'format' this route does not read: it reads 'photo', 'mask'; "
            "'background', 'format' are query parameters: put them in the URL, "
            "POST /extract?background=%23ff0000&format=webp",
        ),
        (b"\xff" * (3 * 2**20), "", 413, "the photo is larger than 2 MB"),  # the photo as the body
        (b"", "", 400, "the photo is empty"),
        (encoded(person_photo(1)[0]), "", 400, "no mask given and the server runs without a segmenter"),
    ],
    ids=["50MB", "bomb", "text", "text-mask", "empty", "no-photo", "format", "background", "response", "gigapixel"]
    + ["fill"]
    + ["misspelt-option", "option-twice", "misspelt-field", "option-as-field"]
    + ["body-3MB", "body-empty", "body-no-mask"],
)
def test_bad_requests_get_a_4xx_and_the_server_keeps_serving(server, fields, query, status, message):
    got, body, _ = post(server, fields, query)
    assert got == status, body
    error = json.loads(body)["error"]
    assert message in error and tempfile.gettempdir() not in error  # the upload's temporary file is not named
    photo, mask = person_photo(2)
    ok, _, _ = post(server, {"photo": ("p.jpg", encoded(photo)), "mask": ("m.png", encoded(mask, "PNG"))})
    assert ok == 200


def test_a_photo_sent_twice_in_one_request_is_a_400_not_one_of_them(server):
    """Two 'photo' parts (two files given to ``curl -F photo=@...``) would get one garment back,
    of one of them; the client is told to send a request for each."""
    photo, mask = person_photo(2)
    body, content_type = multipart({"photo": ("a.jpg", encoded(photo)), "mask": ("m.png", encoded(mask, "PNG"))})
    part = body[: body.index(b"--ce-test-boundary", 1)]  # the photo's part, sent again
    status, answer, _ = post(server, part + body, raw_type=content_type)
    assert status == 400, answer
    assert json.loads(answer)["error"] == (
        "the field 'photo' is given 2 times: a request takes one of each (send a request for each photo)"
    )
    ok, _, _ = post(server, body, raw_type=content_type)
    assert ok == 200


FILES = "".join(
    f'--b\r\nContent-Disposition: form-data; name="f{i}"; filename="f{i}"\r\n\r\n1\r\n' for i in range(1100)
)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"garbage", "multipart/form-data", "the multipart form cannot be read (Missing boundary in multipart.)"),
        (b"garbage", "multipart/form-data; boundary=b", "the multipart form cannot be read (Invalid multipart data"),
        ((FILES + "--b--\r\n").encode(), "multipart/form-data; boundary=b", "(Too many files. Maximum number"),
    ],
    ids=["no-boundary", "garbage", "1100-files"],
)
def test_a_body_that_is_no_multipart_form_is_a_400_not_a_server_error(server, body, content_type, message):
    status, answer, _ = post(server, body, raw_type=content_type)
    assert status == 400 and message in json.loads(answer)["error"], answer


@pytest.mark.parametrize(
    ("method", "route", "status", "reason"),
    [("GET", "/extract", 405, "Method Not Allowed"), ("POST", "/nothing-here", 404, "Not Found")],
)
def test_no_such_route_or_method_answers_in_the_api_shape(server, method, route, status, reason):
    request = urllib.request.Request(f"{server}{route}", method=method, data=b"" if method == "POST" else None)
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)
    assert answer.value.code == status and json.loads(answer.value.read()) == {"error": reason}
    if status == 405:
        assert answer.value.headers["Allow"] == "POST"  # (Starlette's headers kept)


def test_concurrent_requests_are_batched_and_none_is_lost(server):
    photo, mask = person_photo(3)
    fields = {"photo": ("p.jpg", encoded(photo)), "mask": ("m.png", encoded(mask, "PNG"))}
    with urllib.request.urlopen(f"{server}/info") as answer:
        before = json.load(answer)["batches"]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: post(server, fields), range(32)))
    assert [status for status, _, _ in answers] == [200] * 32
    bodies = {body for _, body, _ in answers}
    assert len(bodies) == 1  # the same photo, the same garment, whatever batch it ran in
    with urllib.request.urlopen(f"{server}/info") as answer:
        after = json.load(answer)["batches"]
    runs, requests = after["generator"] - before["generator"], after["requests"] - before["requests"]
    assert requests == 32 and runs < 32  # several requests shared a model run


def test_no_garment_is_a_422_with_the_bundled_segmenter(tiny_model_path):
    process, url = start("--model", tiny_model_path)
    try:
        status, body, _ = post(url, {"photo": ("grey.png", encoded(Image.new("RGB", (192, 256), (128,) * 3), "PNG"))})
        error = json.loads(body)["error"]
        assert status == 422 and "no garment found" in error and "multipart field 'mask'" in error
        figure = (ROOT / "examples" / "photos" / "figure-1.jpg").read_bytes()
        status, body, headers = post(url, {"photo": ("figure.jpg", figure)})
        assert status == 200 and headers["x-mask-source"].startswith("segmenter")
        raw_status, raw_body, raw_headers = post(url, figure)  # the photo as the whole body: the same garment
        assert (raw_status, raw_body, raw_headers["x-mask-source"]) == (200, body, headers["x-mask-source"])
        status, jpeg, headers = post(url, figure, "?format=JPEG", raw_type="application/octet-stream")
        assert status == 200 and headers["content-type"] == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
        catalog = encoded(synth_sample(0, seed=3)[2], "PNG")  # a garment alone: cut out, as extract does
        status, body, headers = post(url, {"photo": ("catalog.png", catalog)})
        assert status == 200 and headers["x-mask-source"] == "segmenter+alone"
        photo = Path(tempfile.mkdtemp()) / "catalog.png"
        photo.write_bytes(catalog)
        done = run_cli("extract", photo, "-o", photo.with_name("out.png"), "--model", tiny_model_path)
        assert done.returncode == 0, done.stderr
        assert np.array_equal(
            np.asarray(Image.open(io.BytesIO(body))), np.asarray(Image.open(photo.with_name("out.png")))
        )
        status, body, _ = post(url, {"photo": ("figure.jpg", figure)}, "?output_size=128&response=json")
        assert status == 200 and json.loads(body)["size"] == [128, 96]
        assert json.loads(body)["resized_from"] == [64, 48]  # drawn at 64x48, resized; and it says so
        garment = json.loads(body)["garment"].split(",", 1)[1]  # (a data: URL)
        assert Image.open(io.BytesIO(base64.b64decode(garment))).size == (96, 128)
        status, body, _ = post(url, {"photo": ("figure.jpg", figure)}, "?background=transparent")
        error = json.loads(body)["error"]
        assert status == 400 and error.startswith(f"{Path(tiny_model_path).name} has no silhouette")  # not its path
        assert "use background=white" in error
    finally:
        stop(process)


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("no headless browser here (apt install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (dev extra) is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1200,900",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_the_page_in_a_real_browser(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()  # (first: where there is none, the test skips before a server starts, not leaving it)
    process, url = start()  # the bundled models, as a user starts it
    try:
        browser.get(url)
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "tryon").is_displayed())  # (the info came)
        assert not browser.find_element(By.ID, "key-row").is_displayed()  # a server without keys asks for none
        sizes = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#size option")]
        assert sizes == ["auto", "model", "1024x768", "1000x1000"]  # photo's own: garments shown alone; a square page
        browser.find_element(By.CSS_SELECTOR, "#size option[value='1024x768']").click()  # one size for every garment
        fills = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#fill option")]
        assert fills == ["", "85%"]
        browser.find_element(By.CSS_SELECTOR, "#fill option[value='85%']").click()  # a marketplace's framing
        upload = browser.find_element(By.ID, "file")
        upload.send_keys(str(ROOT / "examples" / "photos" / "figure-3.jpg"))
        garment = WebDriverWait(browser, 120).until(
            expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".result[data-status=ok] img.garment"))
        )
        WebDriverWait(browser, 30).until(lambda b: b.execute_script("return arguments[0].naturalWidth", garment) > 0)
        assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", garment) == [
            768,
            1024,
        ]
        shown = Image.open(io.BytesIO(base64.b64decode(garment.get_attribute("src").split(",", 1)[1])))
        assert " fill=85% " in shown.text[SIGNATURE_KEY]  # (what the server was asked for, in the file it wrote)
        caption = browser.find_element(By.CSS_SELECTOR, ".result .name").text
        generator = contract_of(model_for("generator", gpu=False))
        drawn = f"1024×768 (drawn at {generator.height}×{generator.width}, resized)"
        assert (drawn in caption) != generator.catalog_resolution, caption  # the page says what was done
        links = browser.find_elements(By.CSS_SELECTOR, ".result a.download")
        assert len(links) == 2 and links[1].get_attribute("download") == "figure-3-garment.png"
        backgrounds = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#background option")]
        has_alpha = contract_of(model_for("generator", gpu=False)).alpha
        assert (backgrounds == ["white"]) != has_alpha  # the page offers only what the model can do
        screenshot = tmp_path / "serve-page.png"
        browser.save_screenshot(str(screenshot))
        shot = np.asarray(Image.open(screenshot).convert("RGB"))
        assert shot.shape[0] > 400 and shot.std() > 10  # a page with content, not a blank one
        # stage two: the garment on another person (the bundled try-on model)
        browser.find_element(By.CSS_SELECTOR, ".result input.tryon-person").send_keys(
            str(ROOT / "examples" / "photos" / "figure-2.jpg")
        )
        dressed = WebDriverWait(browser, 120).until(
            expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".result[data-status=ok] img.dressed"))
        )
        WebDriverWait(browser, 30).until(lambda b: b.execute_script("return arguments[0].naturalWidth", dressed) > 0)
        person = Image.open(ROOT / "examples" / "photos" / "figure-2.jpg")
        assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", dressed) == [
            person.width,
            person.height,
        ]
        newest = browser.find_elements(By.CSS_SELECTOR, ".result")[0]  # (rows come in on top)
        links = newest.find_elements(By.CSS_SELECTOR, "a.download")
        assert [link.get_attribute("download") for link in links] == ["figure-2-dressed.png"]
        # a catalog image of the user's own, on another person
        catalog = tmp_path / "shirt.png"
        synth_sample(0, seed=5, size=(256, 192))[2].save(catalog)
        browser.find_element(By.ID, "catalog-person").send_keys(str(ROOT / "examples" / "photos" / "figure-6.jpg"))
        browser.find_element(By.ID, "catalog-garment").send_keys(str(catalog))
        browser.find_element(By.ID, "catalog-dress").click()
        WebDriverWait(browser, 120).until(
            lambda b: len(b.find_elements(By.CSS_SELECTOR, ".result[data-status=ok] img.dressed")) == 2
        )
        newest = browser.find_elements(By.CSS_SELECTOR, ".result")[0]
        assert newest.find_element(By.CSS_SELECTOR, ".name").text.startswith("figure-6.jpg in the garment of shirt.png")
        # the same photo again once the server has gone: a row that says so (the input was
        # not cleared, so choosing the same file again did nothing; a failed fetch said
        # only "Failed to fetch")
        stop(process)
        upload.send_keys(str(ROOT / "examples" / "photos" / "figure-3.jpg"))
        failed = WebDriverWait(browser, 30).until(
            expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".result[data-status=error] .error"))
        )
        assert failed.text == "no answer from the server: is clothes-extractor serve still running?"
        assert len(browser.find_elements(By.CSS_SELECTOR, ".result")) == 4
    finally:
        browser.quit()
        stop(process)


def test_the_page_takes_a_dropped_folder_and_an_image_dragged_from_another_page(tmp_path):
    """A folder dropped on the page: its photos, its subfolders' too, extracted, its other files
    passed over, a folder with none said so (a folder was "no answer from the server"); an image
    dragged from another page (the page gets its address): fetched where its site allows,
    else a row that says what to do; a drop that holds no file says so (it did nothing)."""
    import http.server
    import threading

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photos = ROOT / "examples" / "photos"
    shop, notes, site = tmp_path / "shop", tmp_path / "notes", tmp_path / "site"
    for folder in (shop / "tops", notes, site / "open", site / "closed"):
        folder.mkdir(parents=True)
    shutil.copy(photos / "figure-2.jpg", shop)
    shutil.copy(photos / "figure-3.jpg", shop / "tops")
    shutil.copy(photos / "figure-5.jpg", shop / "._figure-5.jpg")  # (macOS's resource file: hidden)
    (shop / "prices.csv").write_text("sku,price\n")
    (notes / "todo.txt").write_text("shoot the new tops\n")
    shutil.copy(photos / "figure-6.jpg", site / "open" / "blue shirt.jpg")
    shutil.copy(photos / "figure-6.jpg", site / "closed" / "figure-6.jpg")
    (site / "open" / "product.html").write_text("<html><body>a shop's page</body></html>")

    class Site(http.server.SimpleHTTPRequestHandler):  # /open/ lets pages of other sites read it (CORS)
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(site), **kwargs)

        def end_headers(self):
            if self.path.startswith("/open/"):
                self.send_header("Access-Control-Allow-Origin", "*")
            super().end_headers()

        def log_message(self, *_args):
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    elsewhere = f"http://127.0.0.1:{other.server_address[1]}"  # (another origin: another port)
    browser = _browser()
    process, url = start()

    def dropped(count: int, **data) -> dict[str, str]:
        """What the page shows once ``count`` rows are done after a drop of ``data``: each
        row's name -> its error ("" where its garment came)."""
        box = browser.find_element(By.ID, "drop").rect
        at = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
        drag = {"items": [], "dragOperationsMask": 1, **data}
        for kind in ("dragEnter", "dragOver", "drop"):
            browser.execute_cdp_cmd("Input.dispatchDragEvent", {"type": kind, **at, "data": drag})
        done = ".result[data-status]"
        WebDriverWait(browser, 120).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, done)) == count)
        rows = browser.find_elements(By.CSS_SELECTOR, ".result")
        assert len(rows) == count  # (none still waiting for its answer)
        shown = {}
        for row in rows:
            name = row.find_element(By.CSS_SELECTOR, ".name").text.split(": ")[0]
            errors = row.find_elements(By.CSS_SELECTOR, ".error")
            shown[name] = errors[0].text if errors else ""
            assert (row.get_attribute("data-status") == "error") == bool(errors)
        return shown

    def address(link: str) -> dict:
        return {"items": [{"mimeType": "text/uri-list", "data": link}]}

    try:
        browser.get(url)
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "tryon").is_displayed())  # (the info came)
        shown = dropped(3, files=[str(shop), str(notes)])
        none = "no photos in this folder (JPEG, PNG, WebP, AVIF, BMP, TIFF, GIF, HEIC files)"
        assert shown == {"figure-2.jpg": "", "figure-3.jpg": "", "notes": none}
        shown = dropped(4, **address(f"{elsewhere}/open/blue%20shirt.jpg"))
        assert shown["blue shirt.jpg"] == ""  # (its name decoded)
        closed = f"{elsewhere}/closed/figure-6.jpg"
        assert dropped(5, **address(closed))[closed] == (
            "this page was given the image's address, not the image, and its site does not let other pages "
            "download it: save the image, then drop or choose the file"
        )
        page = f"{elsewhere}/open/product.html"
        assert dropped(6, **address(page))[page] == (
            "that address is no image (text/html): drag the image itself, or save it and drop the file"
        )
        gone = f"{elsewhere}/open/gone.jpg"
        assert dropped(7, **address(gone))[gone] == "its site answers 404 File not found"
        png = io.BytesIO()
        Image.open(photos / "figure-5.jpg").save(png, "PNG")
        drawn = f"data:image/png;base64,{base64.b64encode(png.getvalue()).decode()}"  # (an image a page drew)
        assert dropped(8, **address(drawn))["photo"] == ""
        shown = dropped(9, items=[{"mimeType": "text/plain", "data": "a blue shirt"}])
        assert shown["nothing to extract"] == (
            "what was dropped holds no file: drop photos, a folder of them, or an image from another page"
        )
        # pasted (Ctrl+V): an image copied elsewhere, an image's address; the API key's field keeps its paste
        paste = """const [where, photo, text] = arguments;
            const clipboard = new DataTransfer();
            if (photo) clipboard.items.add(new File([Uint8Array.from(atob(photo), (c) => c.charCodeAt(0))],
                                                    "image.png", {type: "image/png"}));
            if (text) clipboard.setData("text/plain", text);
            document.querySelector(where).dispatchEvent(
              new ClipboardEvent("paste", {clipboardData: clipboard, bubbles: true, cancelable: true}));"""
        browser.execute_script(paste, "body", base64.b64encode(png.getvalue()).decode(), None)
        browser.execute_script(paste, "#api-key", None, f"{elsewhere}/open/blue%20shirt.jpg")
        browser.execute_script(paste, "body", None, f" {elsewhere}/open/blue%20shirt.jpg\n")
        WebDriverWait(browser, 120).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".result[data-status]")) == 11)
        rows = browser.find_elements(By.CSS_SELECTOR, ".result")
        newest = {row.find_element(By.CSS_SELECTOR, ".name").text.split(": ")[0]: row.get_attribute("data-status")
                  for row in rows[:2]}  # fmt: skip
        assert newest == {"image.png": "ok", "blue shirt.jpg": "ok"} and len(rows) == 11
        # a folder of thousands is the command line's: the page takes 100 (a tab held them all, ~9 MB a row)
        bulk = tmp_path / "bulk"
        bulk.mkdir()
        for i in range(103):
            (bulk / f"{i:03d}.jpg").write_bytes(b"not really a photo")  # (refused fast: the count is the test)
        shown = dropped(11 + 101, files=[str(bulk)])
        assert shown["3 more photos not extracted"].startswith("this page takes 100 photos at a time: for a folder, ")
        assert sum(name.endswith(".jpg") and name[:3].isdigit() for name in shown) == 100
    finally:
        browser.quit()
        stop(process)
        other.shutdown()


def test_a_drop_anywhere_on_the_page_is_taken_and_one_on_try_it_on_dresses_the_person_dropped(tmp_path):
    """A photo dropped beside the drop zone is extracted as one dropped on it (the browser opened the
    file in place of the page: every result lost); a person photo dropped on a garment's "Try it on"
    is dressed in that garment (only the file field itself took a drop)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photos = ROOT / "examples" / "photos"
    browser = _browser()
    process, url = start()

    def drop_on(element, x: float, **data) -> None:
        """``data`` dropped on ``element`` (scrolled into view), ``x`` of the way across it, half way down."""
        box = browser.execute_script(
            "arguments[0].scrollIntoView({block: 'center'}); return arguments[0].getBoundingClientRect();", element
        )  # (where it is in the window: the drag's coordinates)
        at = {"x": box["x"] + box["width"] * x, "y": box["y"] + box["height"] / 2}
        drag = {"items": [], "dragOperationsMask": 1, **data}
        for kind in ("dragEnter", "dragOver", "drop"):
            browser.execute_cdp_cmd("Input.dispatchDragEvent", {"type": kind, **at, "data": drag})

    def rows(count: int) -> list:
        done = ".result[data-status]"
        WebDriverWait(browser, 120).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, done)) == count)
        return browser.find_elements(By.CSS_SELECTOR, ".result")

    try:
        browser.get(url)
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "tryon").is_displayed())  # (the info came)
        page = browser.current_url
        drop_on(browser.find_element(By.CSS_SELECTOR, "#tryon p"), 0.5, files=[str(photos / "figure-3.jpg")])
        (row,) = rows(1)
        assert browser.current_url == page and row.get_attribute("data-status") == "ok"
        assert row.find_element(By.CSS_SELECTOR, ".name").text.startswith("figure-3.jpg")
        label = row.find_element(By.CSS_SELECTOR, "label.tryon")  # "Try it on: " and its file field
        drop_on(label, 0.02, files=[str(photos / "figure-2.jpg")])  # (on its words, not on the field)
        newest = rows(2)[0]
        assert newest.find_element(By.CSS_SELECTOR, ".name").text.startswith("figure-2.jpg in the garment of figure-3")
        assert newest.get_attribute("data-status") == "ok" and newest.find_elements(By.CSS_SELECTOR, "img.dressed")
        drop_on(label, 0.02, items=[{"mimeType": "text/plain", "data": "a person"}])
        assert rows(3)[0].find_element(By.CSS_SELECTOR, ".error").text.startswith("drop the photo of the person")
        assert browser.current_url == page
    finally:
        browser.quit()
        stop(process)


def test_https_with_a_certificate_and_its_key(tiny_flow_path, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("no openssl here to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(cafile=str(cert))  # this certificate, verified
    process, url = start("--model", tiny_flow_path, "--no-segmenter", "--ssl-certfile", cert, "--ssl-keyfile", key,
                         context=context)  # fmt: skip
    try:
        photo, mask = person_photo(1)
        body, content_type = multipart({"photo": ("p.jpg", encoded(photo)), "mask": ("m.png", encoded(mask, "PNG"))})
        request = urllib.request.Request(f"{url}/extract", data=body, headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=60, context=context) as answer:
            assert answer.status == 200 and Image.open(io.BytesIO(answer.read())).format == "PNG"
        with pytest.raises((OSError, http.client.HTTPException)):  # plain HTTP on that port gets no answer
            urllib.request.urlopen(f"{url.replace('https', 'http')}/health", timeout=10)
    finally:
        log = stop(process)
    assert f"at {url}/ (batches" in log
    done = run_cli("serve", "--port", "0", "--ssl-certfile", key, "--ssl-keyfile", key, "--model", "/nowhere.onnx")
    assert done.returncode == 1 and f"--ssl-certfile {key} holds no PEM certificate" in done.stderr


def test_a_port_in_use_is_refused_before_the_models_load():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("serve", "--port", port, "--model", "/nowhere/generator.onnx")  # never opened
    assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "choose another --port" in done.stderr and "Traceback" not in done.stderr
