"""Photos and lists at http(s) addresses, fetched for a job: a download whole or not at all (a
cut one tried again, a server's "not now" waited for), several at once (``Fetches``), the
name it is saved under (``file_name``), and the address as messages show it (``shown``)."""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ..errors import InputError

log = logging.getLogger(__name__)

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
SILENT_AFTER = 3  # a server's fetches timed out in a row, after which its other URLs wait (``Fetches``)
PROBE_EVERY_S = 30.0  # while a server is silent, one of its URLs is tried this long after its last try ended
OUTAGE_S = 300.0  # how long a silent server's URLs wait for it to answer; after, they are not tried (but the probes)
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


class _Silent(InputError):
    """A fetch whose every try timed out: its server may be down (``Fetches`` counts them)."""


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
        failed = _Silent if exc.timed_out else InputError
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


class Fetches:
    """Downloads (``fetch``) on up to ``at_once`` daemon threads, each ``submit``-ted one a
    ``Future`` of its file: Ctrl-C is not held up by a download (the scratch folder, removed then,
    takes the partial file with it; a download that starts after fails to open its file). A
    thread ends once nothing is left to fetch; the next ``submit`` starts another.

    A server that stops answering (``SILENT_AFTER`` fetches in a row from it timed out, each
    tried three times) is waited for, as a circuit breaker does: its URLs wait, one of them
    tried every ``PROBE_EVERY_S``, and the first that is answered lets the others go (a CDN's
    minute-long outage costs the job that minute, not its photos). After ``OUTAGE_S`` its URLs
    are not tried, each a failure that says so, the rerun's to fetch (a server that is down costs
    the job minutes, not ``TIMEOUT_S`` x 3 for each of its URLs: hours for a shop's feed); one is
    still tried every ``PROBE_EVERY_S``, and once one is answered the others are fetched again.
    ``close`` fails what has not started (the job stopped)."""

    def __init__(self, at_once: int = URL_FETCHES) -> None:
        self._work: collections.deque = collections.deque()
        self._changed = threading.Condition()  # (the lock of all below; told when an outage changes)
        self._threads, self.at_once, self._closed = 0, at_once, False
        self._silent: collections.Counter = collections.Counter()  # a server -> its fetches timed out in a row
        self._outages: dict[str, _Outage] = {}  # the servers that do not answer

    def submit(self, url: str, folder: Path, since: float | None = None) -> Future:
        """A ``Future`` of ``url`` fetched into ``folder`` (``fetch``): its file, None where it has not
        changed ``since``, or the ``InputError`` saying why not."""
        future: Future = Future()
        with self._changed:
            self._work.append((url, folder, since, future))
            if self._threads < self.at_once:
                self._threads += 1
                threading.Thread(target=self._fetcher, name="fetch", daemon=True).start()
        return future

    def close(self) -> None:
        """The job stopped: the URLs not yet fetching fail at once (those waiting for a silent
        server too); the downloads under way end on their own."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _fetcher(self) -> None:
        while True:
            with self._changed:  # (a thread ends only with nothing left: what ``submit`` adds is taken)
                if not self._work:
                    self._threads -= 1
                    return
                url, folder, since, future = self._work.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            server = _server(url)
            trying, why_not = self._turn(server)
            if why_not is not None:
                future.set_exception(InputError(f"cannot fetch {shown(url)}: not tried: {why_not}"))
                continue
            try:
                future.set_result(fetch(url, folder, since))
            except BaseException as exc:  # noqa: BLE001 - raised again where its input is resolved
                self._ended(server, trying, silent=isinstance(exc, _Silent))
                future.set_exception(exc)
            else:
                self._ended(server, trying, silent=False)

    def _turn(self, server: str) -> tuple[bool, str | None]:
        """When a URL of ``server`` may be fetched: at once, where it answers; where it does not,
        once it answers again, or as the one URL tried (True) now and then; else (``OUTAGE_S``
        after it was found silent, but for that one) why it is not."""
        with self._changed:
            while True:
                outage, now = self._outages.get(server), time.monotonic()
                if self._closed:
                    return False, "the job stopped"
                if outage is None:
                    return False, None
                if not outage.trying and now >= outage.next_try:
                    outage.trying = True
                    return True, None
                if now >= outage.since + OUTAGE_S:  # (and while one is tried: a dead server costs no waits)
                    return False, (
                        f"{server} did not answer {self._silent[server]} fetches in a row (each timed out "
                        f"{len(RETRY_WAITS_S) + 1} times), and was waited for {_minutes(OUTAGE_S)}; run the same "
                        "command again once it answers"
                    )
                until = outage.since + OUTAGE_S
                self._changed.wait((until if outage.trying else min(until, outage.next_try)) - now)

    def _ended(self, server: str, trying: bool, silent: bool) -> None:
        """A fetch from ``server`` ended: timed out (``silent``) or answered; ``trying``: it was
        the one URL tried while the server did not answer."""
        with self._changed:
            outage, now = self._outages.get(server), time.monotonic()
            self._silent[server] = self._silent[server] + 1 if silent else 0
            if not silent and outage is not None:
                del self._outages[server]
                waited = _minutes(now - outage.since)
                log.warning("%s answers again (waited for %s): its URLs are fetched", server, waited)
            elif silent and outage is None and self._silent[server] >= SILENT_AFTER:
                self._outages[server] = _Outage(now, now + PROBE_EVERY_S)
                tries, waits = len(RETRY_WAITS_S) + 1, f"one tried every {_minutes(PROBE_EVERY_S)}"
                waits += f", for {_minutes(OUTAGE_S)}"
                log.warning(
                    "%s did not answer %d fetches in a row (each timed out %d times): its URLs wait for it, %s",
                    *(server, self._silent[server], tries, waits),
                )
            elif silent and outage is not None and trying:
                outage.trying, outage.next_try = False, now + PROBE_EVERY_S
            self._changed.notify_all()


@dataclasses.dataclass
class _Outage:
    """A server that does not answer (``Fetches``): since when, when its next URL is tried, and
    whether one is being tried."""

    since: float  # (``time.monotonic``)
    next_try: float
    trying: bool = False


def _minutes(seconds: float) -> str:
    """``seconds`` as messages say them: ``30 s``, ``5 min``."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _server(url: str) -> str:
    """The server a URL names (its host, and port if given): ``Fetches`` counts its silences."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # (not a port: its fetch says so)
        port = None
    return f"{parts.hostname or ''}{f':{port}' if port else ''}"
