"""``clothes-extractor serve``: the HTTP API and its page (the [serve] extra)."""

from __future__ import annotations

import re
import socket
from urllib.parse import urlsplit

import click
from click.core import ParameterSource

from ..errors import ModelError
from ..runtime.providers import PROVIDER_CHOICES
from .common import LocalPath, reports_errors, tryon_resolution_option, verbose_option


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: all).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--model", default="generator", show_default=True, help="Generator: a model file or the bundled one.")
@click.option("--segmenter", default="segmenter", show_default=True, help="Segmenter for photos without a mask.")
@click.option("--no-segmenter", is_flag=True, help="Every request must bring its mask (and POST /tryon is off).")
@click.option(
    "--tryon",
    "tryon_model",
    default="tryon",
    show_default=True,
    help="Try-on model for POST /tryon: a model file or the bundled one (its parser is the segmenter).",
)
@click.option("--no-tryon", is_flag=True, help="Serve no POST /tryon (it answers 501).")
@tryon_resolution_option("--tryon-resolution", "tryon_resolution", "POST /tryon")
@click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default="auto", show_default=True)
@click.option(
    "--max-batch",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Concurrent requests batched into one model run, at most this many (1: no batching).",
)
@click.option(
    "--max-wait-ms",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="How long a batch waits for more requests.",
)
@click.option(
    "--idle-trim-s",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="After this many seconds without a request, give back the CPU memory the models' last batches "
    "grew (0: keep it for the next burst).",
)
@click.option("--max-upload-mb", type=click.FloatRange(min=0.01), default=20.0, show_default=True)
@click.option("--timeout-s", type=click.FloatRange(min=0.1), default=60.0, show_default=True, help="Per request.")
@click.option(
    "--allow-origin",
    "allow_origins",
    multiple=True,
    metavar="ORIGIN",
    help="A web page origin (https://shop.example, or * for any) allowed to call the API from a browser "
    "(CORS); repeat for more. Default: none, only the page served here.",
)
@click.option(
    "--root-path",
    default="",
    metavar="PATH",
    help="The path a reverse proxy publishes this server under (/garments for https://shop.example/garments/, "
    "the proxy passing /extract on): /openapi.json and /docs then name it. The page works under any path.",
)
@click.option(
    "--ssl-certfile",
    type=LocalPath(exists=True, dir_okay=False),
    help="Serve HTTPS with this certificate (PEM; the chain, if any, after it); needs --ssl-keyfile.",
)
@click.option("--ssl-keyfile", type=LocalPath(exists=True, dir_okay=False), help="The certificate's private key (PEM).")
@click.option(
    "--api-key-file",
    type=LocalPath(exists=True, dir_okay=False),
    help="Require an API key on POST /extract, POST /tryon and GET /metrics: one of this file's keys "
    "(one a line), sent as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'.",
)
@click.option(
    "--access-log",
    is_flag=True,
    help="A line per request on standard error: time (UTC), client, request, status, bytes sent, milliseconds.",
)
@verbose_option
@reports_errors
def serve(
    host: str,
    port: int,
    model: str,
    segmenter: str,
    no_segmenter: bool,
    tryon_model: str,
    no_tryon: bool,
    tryon_resolution: str,
    provider: str,
    max_batch: int,
    max_wait_ms: float,
    idle_trim_s: float,
    max_upload_mb: float,
    timeout_s: float,
    allow_origins: tuple[str, ...],
    root_path: str,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    api_key_file: str | None,
    access_log: bool,
) -> None:
    """Serve POST /extract (multipart photo, optional mask), POST /tryon (multipart person and
    garment or garment_photo), a page at / to try photos in a browser, GET /health, GET /info,
    GET /metrics (Prometheus) and the API's description (/openapi.json, /docs). Concurrent
    requests are batched into one model run."""
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise click.ClickException(
            f"serve needs FastAPI, uvicorn and prometheus-client ({exc.name} is missing): "
            'pip install "clothes-extractor[serve]"'
        ) from None
    from ..api import new_session
    from ..runtime.options import generator_outputs
    from ..serve.app import create_app
    from ..serve.settings import ServeSettings

    origins = tuple(_origin(value) for value in allow_origins)
    root_path = _root_path(root_path)
    _check_certificate(ssl_certfile, ssl_keyfile)  # before the models load, as the port
    api_keys = _api_keys(api_key_file)
    sock = _listen(host, port)  # before the models load: a port in use fails at once
    port = sock.getsockname()[1]  # --port 0: the one the system chose

    # cut to its garment: requests on white (the default) skip the silhouette; the app opens
    # the whole model at the first request on another background
    generator = new_session(model, provider, outputs=generator_outputs("white")).require_task("generator")
    seg = None if no_segmenter else new_session(segmenter, provider).require_task("segmenter")
    settings = ServeSettings(
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        idle_trim_s=idle_trim_s,
        max_upload_mb=max_upload_mb,
        timeout_s=timeout_s,
        allow_origins=origins,
    )
    explicit = click.get_current_context().get_parameter_source("tryon_model") != ParameterSource.DEFAULT
    dresser, tryon_off = _dresser(tryon_model, explicit, no_tryon, seg, provider, tryon_resolution)
    app = create_app(generator, seg, settings, dresser=dresser, tryon_off=tryon_off, api_keys=api_keys)
    models = [generator, seg, dresser.tryon if dresser else None]
    using = " + ".join(session.path.name for session in models if session is not None)
    published = f", published under {root_path}/" if root_path else ""
    scheme = "https" if ssl_certfile else "http"
    at = f"{scheme}://{host}:{port}/{published}"
    keyed = f"; API key required ({len(api_keys)} key(s))" if api_keys else ""
    click.echo(f"serving {using} on {generator.provider} at {at} (batches of up to {max_batch}{keyed})", err=True)
    if tryon_off and not no_tryon:
        click.echo(f"POST /tryon answers 501: {tryon_off}", err=True)
    if access_log:
        _log_requests()
    config = uvicorn.Config(
        app, log_level="warning", root_path=root_path, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile
    )
    uvicorn.Server(config).run(sockets=[sock])


def _log_requests() -> None:
    """The access log's lines (``serve/metrics.py``) on standard error, as they are."""
    import logging
    import sys

    from ..serve.metrics import ACCESS

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    ACCESS.addHandler(handler)
    ACCESS.setLevel(logging.INFO)
    ACCESS.propagate = False


def _dresser(model: str, explicit: bool, off: bool, parser, provider: str, resolution: str = "photo"):
    """The try-on model and its parser for POST /tryon, or None and why not. A try-on model
    asked for by name that cannot serve is an error; the bundled one that cannot (no
    bundled try-on model, a segmenter without the parser's classes) leaves try-on off."""
    from ..api import new_session
    from ..runtime.dressing import Dresser

    if off:
        return None, "this server runs without try-on (serve --no-tryon)"
    if parser is None:
        if explicit:
            raise click.UsageError("--tryon needs the segmenter as its parser: leave out --no-segmenter")
        return None, "this server runs without try-on: it needs the segmenter, and runs without one (--no-segmenter)"
    session = None
    try:
        session = new_session(model, provider)
        return Dresser(session, parser, from_photo="the multipart field 'garment_photo'", resolution=resolution), None
    except ModelError as exc:
        if session is not None:
            session.close()
        if explicit:
            raise
        return None, f"this server runs without try-on: {exc}"


def _origin(value: str) -> str:
    """An origin as browsers send it (scheme://host[:port], no path), or "*"; ``UsageError`` else."""
    if value == "*":
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise click.UsageError(
            f"--allow-origin {value!r} is not an origin: give scheme://host[:port] (https://shop.example, "
            "http://localhost:3000), no path, or * for any"
        )
    return value.rstrip("/")


def _api_keys(path: str | None) -> tuple[str, ...]:
    """The keys of ``--api-key-file`` (none without it); ``ClickException`` with the reason."""
    if path is None:
        return ()
    from ..serve.access import read_keys

    try:
        return read_keys(path)
    except ValueError as exc:
        raise click.ClickException(f"--api-key-file {path}: {exc}") from None


def _check_certificate(certfile: str | None, keyfile: str | None) -> None:
    """``UsageError`` for half an HTTPS setting; ``ClickException`` saying which file is wrong
    where the certificate and key do not load together."""
    if (certfile is None) != (keyfile is None):
        raise click.UsageError("HTTPS needs both --ssl-certfile and --ssl-keyfile")
    if certfile is None:
        return
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_verify_locations(cafile=certfile)
    except (ssl.SSLError, ValueError):
        raise click.ClickException(f"--ssl-certfile {certfile} holds no PEM certificate") from None
    try:
        context.load_cert_chain(certfile, keyfile, password=lambda: b"")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise click.ClickException(f"--ssl-keyfile {keyfile} is not the key of --ssl-certfile {certfile}") from None
        raise click.ClickException(
            f"--ssl-keyfile {keyfile} is no unencrypted PEM private key (a key with a passphrase: "
            f"openssl pkey -in {keyfile} -out plain-key.pem writes it without one)"
        ) from None


def _root_path(value: str) -> str:
    """A URL path as a proxy publishes the server under it (/garments), without its last slash
    ("" for none, or /); ``UsageError`` for anything else (a whole URL, a query)."""
    path = value.rstrip("/")
    if path and not re.fullmatch(r"(/[^/\s?#]+)+", path):
        raise click.UsageError(
            f"--root-path {value!r} is not a URL path: give the path the proxy publishes this server under, "
            "such as /garments (no scheme, host, query or spaces)"
        )
    return path


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` for the server (``ClickException`` with the reason)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port (or --host)"
        ) from None
    return sock
