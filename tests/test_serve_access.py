"""``serve --api-key-file``: a real server that takes the API's requests with a key only."""

import json
import urllib.request

import pytest
from test_serve import _browser, encoded, multipart, start, stop

from conftest import ROOT, person_photo, run_cli

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
validator = pytest.importorskip("openapi_spec_validator", reason="the dev extra is not installed")

pytestmark = pytest.mark.xdist_group("serve")

KEYS = ("first-key-0123456789abcdef", "second-key-0123456789abcdef")


@pytest.fixture(scope="module")
def keyed(tiny_flow_path, tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text(f"# the shop's keys\n{KEYS[0]}\n\n{KEYS[1]}\n")
    process, url = start(
        "--model", tiny_flow_path, "--no-segmenter", "--api-key-file", keys, "--allow-origin", "http://shop.example"
    )
    yield url
    stop(process)


def call(url: str, route: str, headers: dict, body: bytes | None = None, content_type: str | None = None):
    if content_type:
        headers = {**headers, "Content-Type": content_type}
    request = urllib.request.Request(f"{url}{route}", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read(), answer.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def test_the_api_takes_requests_with_a_key_only(keyed):
    photo, mask = person_photo(1)
    body, content_type = multipart({"photo": ("p.jpg", encoded(photo)), "mask": ("m.png", encoded(mask, "PNG"))})
    status, answer, headers = call(keyed, "/extract", {"Origin": "http://shop.example"}, body, content_type)
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    assert json.loads(answer)["error"].startswith("this server needs an API key: send it as the header")
    assert headers["Access-Control-Allow-Origin"] == "http://shop.example"  # the shop's page can read why
    status, answer, _ = call(
        keyed, "/extract", {"Authorization": "Bearer not-a-key-of-this-server"}, body, content_type
    )
    assert status == 401 and json.loads(answer)["error"] == "the API key is not one this server takes"
    for headers in ({"Authorization": f"Bearer {KEYS[0]}"}, {"X-API-Key": KEYS[1]}):  # either header, either key
        status, answer, _ = call(keyed, "/extract", headers, body, content_type)
        assert status == 200 and answer.startswith(b"\x89PNG")
    status, answer, _ = call(keyed, "/extract", {}, b"\xff" * (3 * 2**20), "image/jpeg")  # still sending: answered
    assert status == 401
    for open_route in ("/health", "/info", "/openapi.json", "/"):
        assert call(keyed, open_route, {})[0] == 200
    info = call(keyed, "/info", {})[1].decode()
    assert json.loads(info)["api_key_required"] is True and not any(key in info for key in KEYS)
    assert call(keyed, "/metrics", {})[0] == 401
    described = json.loads(call(keyed, "/openapi.json", {})[1])
    validator.validate(described)
    assert set(described["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert [p for p, item in described["paths"].items() if "security" in item.get("post", {})] == ["/extract", "/tryon"]
    status, text, _ = call(keyed, "/metrics", {"X-API-Key": KEYS[0]})
    assert status == 200 and 'clothes_extractor_requests_total{route="/extract",status="401"} 3.0' in text.decode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("# no keys here\n\n", "it holds no key (one a line)"),
        (f"{KEYS[0]}\n\nshort\n", "the key on line 3 is shorter than 16 characters, or not printable ASCII"),
        (f"# keys\n{KEYS[0]} {KEYS[1]}\n", "the key on line 2 is shorter than 16 characters, or not printable"),
        ("schlüssel-0123456789abcdef\n", "the key on line 1 is shorter than 16 characters, or not printable ASCII"),
    ],
    ids=["empty", "short", "space", "not-ascii"],
)
def test_a_key_file_without_good_keys_is_refused_at_start(tmp_path, content, message):
    keys = tmp_path / "keys.txt"
    keys.write_text(content)
    done = run_cli("serve", "--port", "0", "--api-key-file", keys, "--model", "/nowhere/generator.onnx")  # never opened
    assert done.returncode == 1 and f"--api-key-file {keys}: {message}" in done.stderr


def test_the_page_asks_for_the_key(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    keys = tmp_path / "keys.txt"
    keys.write_text(KEYS[0])
    browser = _browser()  # (first: where there is none, the test skips before a server starts)
    process, url = start("--api-key-file", keys)  # the bundled models
    try:
        browser.get(url)
        field = WebDriverWait(browser, 30).until(expected_conditions.visibility_of_element_located((By.ID, "api-key")))
        field.send_keys(KEYS[0])
        browser.find_element(By.TAG_NAME, "h1").click()  # (the field's change event)
        browser.find_element(By.ID, "file").send_keys(str(ROOT / "examples" / "photos" / "figure-3.jpg"))
        row = WebDriverWait(browser, 120).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".result[data-status]"))
        )
        assert row.get_attribute("data-status") == "ok", row.text
    finally:
        browser.quit()
        stop(process)
