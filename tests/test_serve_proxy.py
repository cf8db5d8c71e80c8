"""``serve`` behind a reverse proxy that publishes it under a path (``https://shop.example/garments/``):
a real proxy on loopback that strips the prefix, as nginx's ``location /garments/ { proxy_pass
http://127.0.0.1:8000/; }`` does, in front of a real server and a real browser."""

import http.client
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_serve import _browser, post, start, stop

from conftest import ROOT, run_cli

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")

pytestmark = pytest.mark.xdist_group("serve")

PREFIX = "/garments"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}


class PrefixProxy(ThreadingHTTPServer):
    """Forwards ``PREFIX/...`` to ``upstream`` as ``/...``; anything else is the proxy's own 404."""

    daemon_threads = True

    def __init__(self, upstream: str):
        self.upstream = upstream.removeprefix("http://")
        self.seen: list[str] = []  # the paths browsers asked the proxy for
        super().__init__(("127.0.0.1", 0), _Forward)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _forward(self):
        self.server.seen.append(self.path)
        if not (self.path == PREFIX or self.path.startswith(PREFIX + "/")):
            body = b"not found on this proxy"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=120)
        upstream.request(self.command, self.path[len(PREFIX) :] or "/", body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP | {"content-length"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    do_GET = do_POST = _forward


@pytest.fixture
def proxied(request):
    """A server started with these options (``request.param``) and the proxy in front of it."""
    process, url = start(*request.param)
    proxy = PrefixProxy(url)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()
    stop(process)


@pytest.mark.parametrize("proxied", [()], indirect=True)  # (the page needs no --root-path)
def test_the_page_works_under_the_proxy_path(proxied):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    proxy = proxied
    browser = _browser()
    try:
        browser.get(f"{proxy.url}{PREFIX}/")
        browser.find_element(By.ID, "file").send_keys(str(ROOT / "examples" / "photos" / "figure-3.jpg"))
        row = WebDriverWait(browser, 120).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".result[data-status]"))
        )
        assert row.get_attribute("data-status") == "ok", row.text
        garment = row.find_element(By.CSS_SELECTOR, "img.garment")
        WebDriverWait(browser, 30).until(lambda b: b.execute_script("return arguments[0].naturalWidth", garment) > 0)
        WebDriverWait(browser, 30).until(lambda b: not b.find_element(By.ID, "tryon").get_attribute("hidden"))
    finally:
        browser.quit()
    asked = [path.split("?")[0] for path in proxy.seen if path != "/favicon.ico"]  # (the browser's own)
    assert f"{PREFIX}/info" in asked and f"{PREFIX}/extract" in asked  # the page's calls went through the proxy
    assert all(path.startswith(PREFIX) for path in asked), asked  # none to the proxy's own root


@pytest.mark.parametrize("proxied", [("--root-path", PREFIX)], indirect=True)
def test_the_api_description_names_the_proxy_path(proxied):
    proxy = proxied
    with urllib.request.urlopen(f"{proxy.url}{PREFIX}/openapi.json", timeout=30) as answer:
        described = json.load(answer)
    assert described["servers"] == [{"url": PREFIX}]  # what client generators prefix the routes with
    with urllib.request.urlopen(f"{proxy.url}{PREFIX}/docs", timeout=30) as answer:
        docs = answer.read().decode()
    assert f"'{PREFIX}/openapi.json'" in docs  # Swagger UI reads the description through the proxy
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{proxy.url}{PREFIX}/docs/swagger-ui.html", timeout=30)
    assert missing.value.code == 404 and json.load(missing.value) == {"error": "Not Found"}


@pytest.mark.parametrize("value", ["garments", "https://shop.example/garments", "/garments?x=1", "/my garments"])
def test_a_root_path_that_is_no_url_path_is_refused(value):
    done = run_cli("serve", "--port", "0", "--root-path", value, "--model", "/nowhere/generator.onnx")  # never opened
    assert done.returncode == 2 and f"--root-path {value!r} is not a URL path" in done.stderr
    assert "such as /garments" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("proxied", [("--root-path", PREFIX)], indirect=True)
def test_the_api_docs_render_with_no_internet(proxied):
    """/docs is Swagger UI served by the server itself (this machine reaches no CDN), through the proxy."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    try:
        browser.get(f"{proxied.url}{PREFIX}/docs")
        for operation in ("extract", "tryon"):  # Swagger UI's element for each operation id
            WebDriverWait(browser, 60).until(
                expected_conditions.visibility_of_element_located((By.ID, f"operations-default-{operation}"))
            )
        assert "POST" in browser.find_element(By.ID, "operations-default-tryon").text
    finally:
        browser.quit()
    assert any(path.startswith(f"{PREFIX}/docs/") and path.endswith(".js") for path in proxied.seen), proxied.seen


@pytest.mark.parametrize("proxied", [("--root-path", PREFIX)], indirect=True)
def test_requests_through_the_proxy_are_counted_by_route(proxied):
    from test_serve_metrics import scrape

    photo = (ROOT / "examples" / "photos" / "figure-3.jpg").read_bytes()
    assert post(f"{proxied.url}{PREFIX}", photo)[0] == 200  # the photo as the body; the segmenter finds the mask
    seen = scrape(f"{proxied.url}{PREFIX}")
    assert seen[("clothes_extractor_requests_total", (("route", "/extract"), ("status", "200")))] == 1
    assert seen[("clothes_extractor_model_runs_total", (("batcher", "segmenter"),))] == 1
    assert seen[("clothes_extractor_model_runs_total", (("batcher", "tryon"),))] == 0  # (served, not asked)
