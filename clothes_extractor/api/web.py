"""Photos and lists at http(s) addresses, fetched for a job: a download whole or not at all (a
cut one tried again, a server's "not now" waited for), the name it is saved under
(``file_name``), and the address as messages show it (``shown``); several at once: ``fetches``."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from ..errors import InputError

MAX_DOWNLOAD_BYTES = 50 * 2**20  # a photo's
MAX_LIST_BYTES = 4 * 2**30  # a list's (``extract --urls-from URL``: a shop's feed of millions of lines)
CHUNK_BYTES = 2**20  # a download is written as it comes, this much at a time
URL_FETCHES = 8  # downloads at once, unless ``extract --fetches N``
MOST_FETCHES = 256  # --fetches' ceiling (a thread each, and 4 photos ahead each: 1,024 in the scratch folder)
MAX_NAME_BYTES = 200  # a download's file name (file systems take 255; its outputs add a suffix, or PERSON__)
WEB_PAGES = ("text/html", "application/xhtml+xml")
NOT_NOW = {408, 425, 429, 500, 502, 503, 504}  # answers that say "not now": tried again
RETRY_WAITS_S = (1.0, 2.0)  # the waits before the second and the third try
MAX_RETRY_AFTER_S = 30.0  # the longest wait an answer's Retry-After gets
TIMEOUT_S = 30.0  # the longest a fetch waits to connect, or for the next bytes of an answer
URL_SAFE = "!#$%&'()*+,/:;=?@[]~"  # what a URL's path and query keep as it is (a % escape too): requests' choice


def is_url(item: object) -> bool:
    """Whether an input as given is an http(s) URL, which the command fetches."""
    return isinstance(item, str) and item.startswith(("http://", "https://"))


class _NotNow(InputError):
    """A fetch's failure that may pass (an answer in ``NOT_NOW``, a download cut short, a connection
    dropped or ``timed_out``): tried again, after ``wait_s`` if the answer asked for it (Retry-After)."""

    def __init__(self, message: str, wait_s: float = 0.0, timed_out: bool = False):
        super().__init__(message)
        self.wait_s, self.timed_out = wait_s, timed_out


class NoAnswer(InputError):
    """A fetch whose every try timed out: its server may be down (``fetches.Fetches`` counts them)."""


@dataclasses.dataclass(frozen=True)
class Wanted:
    """What a fetch is for: ``what`` it must be (a web page is not), how to give it instead, its largest size."""

    what: str
    fix: str
    limit: int


PHOTO = Wanted("an image", "give the address of the image itself (a browser's Copy Image Address)", MAX_DOWNLOAD_BYTES)
LIST = Wanted("a list", "give the address of the list file itself (text, CSV or TSV)", MAX_LIST_BYTES)


def fetch(url: str, folder: Path, since: float | None = None, wanted: Wanted = PHOTO) -> Path | None:
    """An http(s) photo (or what else is ``wanted``: a ``LIST``) downloaded into ``folder``
    (``_fetch_once``), or None where it has not changed ``since`` (a time: the server answers 304
    Not Modified); a failure that may pass (a CDN's 429 or 503 to eight downloads at once, a cut
    download) is tried again after each of ``RETRY_WAITS_S`` (longer where the answer's
    Retry-After asks, up to ``MAX_RETRY_AFTER_S``)."""
    for wait_s in RETRY_WAITS_S:
        try:
            return _fetch_once(url, folder, since, wanted)
        except _NotNow as exc:
            time.sleep(max(wait_s, min(exc.wait_s, MAX_RETRY_AFTER_S)))
    try:
        return _fetch_once(url, folder, since, wanted)
    except _NotNow as exc:
        failed = NoAnswer if exc.timed_out else InputError
        raise failed(f"{exc}; tried {len(RETRY_WAITS_S) + 1} times: try again later") from None


def _fetch_once(url: str, folder: Path, since: float | None = None, wanted: Wanted = PHOTO) -> Path | None:
    """An http(s) photo (what is ``wanted``) downloaded into ``folder`` (``wanted.limit`` at most,
    ``TIMEOUT_S``), whole or not at all, its file's time the answer's Last-Modified (the time a
    rerun asks about: ``since``); None where the server says it has not changed ``since``;
    ``_NotNow`` for a failure that may pass, ``InputError`` for one that will not."""
    target = folder / file_name(url)
    try:
        return _download(url, target, since, wanted)
    except BaseException:
        target.unlink(missing_ok=True)  # (written as it came: a part of it)
        raise


def _download(url: str, target: Path, since: float | None, wanted: Wanted) -> Path | None:
    """``_fetch_once``'s download into ``target``, written as it comes (what failed: a part of it)."""
    import email.utils
    import http.client
    import ssl
    import urllib.error
    import urllib.request

    named, got = shown(url), 0  # (messages name it without its password; the bytes written so far)
    try:
        request = _request(url)
        if since is not None:
            request.add_header("If-Modified-Since", email.utils.formatdate(since, usegmt=True))
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(target, "wb") as handle:  # noqa: S310
            if response.headers.get_content_type() in WEB_PAGES:  # (a shop's product page for its photo)
                raise InputError(
                    f"cannot fetch {named}: the server answers a web page ({response.headers.get_content_type()}), "
                    f"not {wanted.what}; {wanted.fix}"
                )
            too_large = f"cannot fetch {named}: it is larger than {wanted.limit // 2**20} MB; download it yourself"
            if (response.length or 0) > wanted.limit:  # (said by its length: not downloaded first)
                raise InputError(too_large)
            while chunk := response.read(CHUNK_BYTES):
                got += len(chunk)
                if got > wanted.limit:
                    raise InputError(too_large)
                handle.write(chunk)
            if response.length:  # (what its Content-Length promised and did not come: read gives what came)
                stopped = f"the download stopped after {got} of {got + response.length} bytes"
                raise _NotNow(f"cannot fetch {named}: {stopped}")
            modified = _http_time(response.headers.get("Last-Modified"))
        if modified is not None:
            os.utime(target, (modified, modified))
    except urllib.error.HTTPError as exc:
        if exc.code == 304 and since is not None:  # (Not Modified)
            return None
        if exc.code in NOT_NOW:
            raise _NotNow(f"cannot fetch {named}: {exc.reason} (HTTP {exc.code})", _retry_after(exc.headers)) from None
        raise InputError(f"cannot fetch {named}: {exc.reason}") from None
    except http.client.IncompleteRead as exc:  # (a chunked answer cut short: no length to hold it to)
        raise _NotNow(f"cannot fetch {named}: the download stopped after {got + len(exc.partial)} bytes") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, (TimeoutError, ConnectionResetError, http.client.RemoteDisconnected)):
            timed_out = isinstance(reason, TimeoutError)
            raise _NotNow(f"cannot fetch {named}: {reason or 'the connection was dropped'}", 0.0, timed_out) from None
        if isinstance(reason, ssl.SSLCertVerificationError):  # (a network that inspects TLS signs with its own)
            reason = f"{reason.verify_message}: if your network has its own certificate authority, point "
            reason += "SSL_CERT_FILE at a bundle that holds it"
        raise InputError(f"cannot fetch {named}: {reason}") from None
    return target


def _request(url: str) -> Any:
    """``url`` as a ``urllib`` request, as a browser sends it: spaces and other characters a URL
    may not hold percent-encoded (``Blue Shirt.jpg``, ``外套.jpg``: http.client refused them), an
    international host name in its ASCII form, no fragment. A user and password in it
    (``https://user:pass@host/a.jpg``, a private image store's), which ``urllib`` takes for part
    of the host name, are sent as HTTP basic authentication, and not on to where a redirect leads."""
    import base64
    import urllib.request
    from urllib.parse import quote, unquote, urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    host = host if host.isascii() else host.encode("idna").decode("ascii")
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    path, query = (quote(part, safe=URL_SAFE) for part in (parts.path or "/", parts.query))
    request = urllib.request.Request(urlunsplit((parts.scheme, netloc, path, query, "")))
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        request.add_unredirected_header("Authorization", f"Basic {base64.b64encode(credentials).decode()}")
    return request


def shown(url: str) -> str:
    """``url`` as messages and reports name it: its password as ``***`` (a user given alone, an
    access token's place, as ``***`` too)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.username is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    hidden = f"{user.partition(':')[0]}:***" if parts.password is not None else "***"
    return urlunsplit(parts._replace(netloc=f"{hidden}@{host}"))


def _retry_after(headers: Any) -> float:
    """The seconds an answer's ``Retry-After`` asks to wait (a number, or an HTTP date); 0 for none."""
    value = (headers.get("Retry-After") if headers else None) or ""
    if value.strip().isdigit():
        return float(value)
    when = _http_time(value)
    return 0.0 if when is None else max(0.0, when - time.time())


def _http_time(value: str | None) -> float | None:
    """An HTTP date (``Wed, 02 Dec 2026 10:00:00 GMT``) as a time, or None for none or another value."""
    import email.utils

    try:
        return email.utils.parsedate_to_datetime(value or "").timestamp()
    except (TypeError, ValueError):
        return None


def file_name(url: str) -> str:
    """The name a URL's image is saved under, which its outputs take: the last part of its path,
    decoded (``Blue%20Shirt.jpg`` -> ``Blue Shirt.jpg``, ``%E5%A4%96%E5%A5%97.jpg`` -> ``外套.jpg``);
    a separator or NUL it decodes to is ``_``, one too long for a file system is cut (its suffix
    kept), and a URL whose path names none (``https://shop.example/``, ``/..``) is ``photo``."""
    from urllib.parse import unquote, urlsplit

    name = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2], errors="replace")
    name = name.replace("/", "_").replace("\\", "_").replace("\0", "_")
    if name in ("", ".", ".."):
        return "photo"
    suffix = Path(name).suffix if len(Path(name).suffix) <= 10 else ""
    while len(name.encode()) > MAX_NAME_BYTES:  # (a character at a time: UTF-8 is not cut inside one)
        name = name[: len(name) - len(suffix) - 1] + suffix
    return name


def server_of(url: str) -> str:
    """The server a URL names (its host, and port if given): ``fetches.Fetches`` counts its silences."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # (not a port: its fetch says so)
        port = None
    return f"{parts.hostname or ''}{f':{port}' if port else ''}"
