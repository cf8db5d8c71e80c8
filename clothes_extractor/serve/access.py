"""Who may call the API: the routes that cost model time, and the API keys that open them.

With ``serve --api-key-file FILE`` (one key a line), POST /extract, POST /tryon and GET
/metrics need one of its keys, as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``;
anything else is a 401 that says what to send. The page, /health (for probes), /info,
/docs and /openapi.json stay open: they cost nothing and show no data. Keys are compared in
constant time. Without the option the server takes every request, as before: the place for
it is a private network or behind a proxy that authenticates.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from starlette.responses import JSONResponse

API_ROUTES = ("/extract", "/tryon")  # POST: the model's work
MIN_KEY_LENGTH = 16
DRAIN_CAP = 64 * 2**20  # bytes of a refused request's body read and dropped, at most
NEEDS_KEY = "this server needs an API key: send it as the header 'Authorization: Bearer KEY' (or 'X-API-Key: KEY')"


def route_of(scope) -> str:
    """The request's path as the app's routes name it (a proxy's ``serve --root-path`` taken off)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def read_keys(path: Path) -> tuple[str, ...]:
    """The keys of an API key file: one a line; blank lines and ``#`` comments are left out.
    ``ValueError`` with the reason for a file with none, or with a key that is short enough
    to guess or that a header cannot carry (not printable ASCII, a space)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    keys = {number: line.strip() for number, line in enumerate(lines, 1) if line.strip()[:1] not in ("", "#")}
    if not keys:
        raise ValueError("it holds no key (one a line)")
    for number, key in keys.items():
        if len(key) < MIN_KEY_LENGTH or not (key.isascii() and key.isprintable()) or " " in key:
            raise ValueError(
                f"the key on line {number} is shorter than {MIN_KEY_LENGTH} characters, or not printable ASCII "
                'without spaces; make keys with python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
    return tuple(keys.values())


class KeyRequired:
    """ASGI middleware: the API's routes answer only requests that carry one of ``keys``."""

    def __init__(self, app, keys: tuple[str, ...]):
        self.app, self.keys = app, tuple(key.encode() for key in keys)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self._guarded(scope):
            return await self.app(scope, receive, send)
        given = self._key(dict(scope["headers"]))
        if given is not None and any(hmac.compare_digest(given, key) for key in self.keys):
            return await self.app(scope, receive, send)
        reason = NEEDS_KEY if given is None else "the API key is not one this server takes"
        await _drain(receive)  # (read, so that a client still sending its photo gets to read the answer)
        answer = JSONResponse({"error": reason}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await answer(scope, receive, send)

    @staticmethod
    def _guarded(scope) -> bool:
        route = route_of(scope)
        return (scope["method"] == "POST" and route in API_ROUTES) or route == "/metrics"

    @staticmethod
    def _key(headers: dict[bytes, bytes]) -> bytes | None:
        bearer = headers.get(b"authorization", b"")
        if bearer[:7].lower() == b"bearer ":
            return bearer[7:].strip()
        return headers.get(b"x-api-key")


async def _drain(receive) -> None:
    seen = 0
    while seen <= DRAIN_CAP:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return
