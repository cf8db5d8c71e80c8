"""The routes' OpenAPI description (``GET /openapi.json``) and ``/docs``, Swagger UI
rendering it from files this server serves itself (no CDN: it works where the browser
reaches nothing but this server).

The routes read their request themselves (streamed, with the upload limit), so FastAPI
cannot infer what they take: each route states it here, from the same constants its
handler reads (field names, formats), so the description and the handler agree.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Iterable, Mapping

from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import Response

from .uploads import MEDIA

SWAGGER_FILES = {  # the files of Swagger UI in the fastapi-swagger package ([serve] extra)
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}

ERRORS = {
    "400": "unreadable image, missing or doubled field, bad option",
    "401": "no API key, or not one of the server's (serve --api-key-file)",
    "413": "an upload over --max-upload-mb",
    "422": "nothing to work on: no garment found, no one to dress",
    "503": "the queue is full: retry shortly",
    "504": "the request took longer than --timeout-s",
}


def query(name: str, description: str, default: str | None, values: Iterable[str] | None = None) -> dict[str, Any]:
    """A query parameter; ``default`` None: none (the parameter's absence means something of its own)."""
    schema: dict[str, Any] = {"type": "string"} | ({"default": default} if default is not None else {})
    if values is not None:
        schema["enum"] = list(values)
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


FORMAT = query("format", "the image format of the answer (jpeg: jpg)", "png", MEDIA)


def response_query(json_gives: str) -> dict[str, Any]:
    return query("response", f"image: the image itself; json: {json_gives}", "image", ("image", "json"))


def query_names(api: Mapping[str, Any]) -> tuple[str, ...]:
    """The query parameters an ``operation`` describes: all its route reads (``read_query``)."""
    return tuple(p["name"] for p in api["openapi_extra"]["parameters"] if p["in"] == "query")


def multipart(fields: Mapping[str, str], required: Iterable[str]) -> dict[str, Any]:
    """A multipart form of image files ``fields`` (name: description)."""
    properties = {name: {"type": "string", "format": "binary", "description": text} for name, text in fields.items()}
    return {"type": "object", "properties": properties, "required": list(required)}


def operation(
    parameters: list[dict[str, Any]],
    bodies: Mapping[str, dict[str, Any]],
    json_answer: Mapping[str, str],
    errors: Mapping[str, str] = ERRORS,
) -> dict[str, Any]:
    """A route's ``openapi_extra`` and ``responses``: the request (``bodies``: content type
    to schema), an image or a JSON answer (``json_answer``: key to description), and the
    error answers, ``{"error": reason}``."""
    error_schema = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
    answer = {
        "type": "object",
        "properties": {key: {"description": text} for key, text in json_answer.items()},
    }
    ok = {
        "description": "the image (or, with response=json, the answer below)",
        "content": {
            **{media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA.values()},
            "application/json": {"schema": answer},
        },
    }
    responses: dict[str | int, dict[str, Any]] = {200: ok}
    for status, text in errors.items():
        responses[int(status)] = {"description": text, "content": {"application/json": {"schema": error_schema}}}
    return {
        "openapi_extra": {
            "parameters": parameters,
            "requestBody": {
                "required": True,
                "content": {kind: {"schema": schema} for kind, schema in bodies.items()},
            },
        },
        "responses": responses,
    }


def add_docs(app: FastAPI) -> None:
    """``GET /docs``: Swagger UI on ``/openapi.json``, its script and style served from
    ``/docs/`` (the app made with ``docs_url=None``). Without the fastapi-swagger package
    (a server installed without the [serve] extra), Swagger UI from its CDN, as FastAPI has it."""
    try:
        bundled = resources.files("fastapi_swagger.resources")
    except ModuleNotFoundError:
        bundled = None

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request):
        root = request.scope.get("root_path", "").rstrip("/")  # a proxy's path (serve --root-path)
        files = {} if bundled is None else {
            "swagger_js_url": f"{root}/docs/swagger-ui-bundle.js",
            "swagger_css_url": f"{root}/docs/swagger-ui.css",
            "swagger_favicon_url": f"{root}/docs/favicon-32x32.png",
        }  # fmt: skip
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title}: the API", **files)

    if bundled is None:
        return

    read: dict[str, bytes] = {}  # each file read from the package once (the bundle is 1.7 MB)

    @app.get("/docs/{name}", include_in_schema=False)
    async def swagger_file(name: str):
        if name not in SWAGGER_FILES:
            raise HTTPException(404)  # (answered as every 404 is)
        if name not in read:
            read[name] = (bundled / name).read_bytes()
        return Response(
            read[name],
            media_type=SWAGGER_FILES[name],
            headers={"Cache-Control": "public, max-age=86400"},
        )


def require_keys(app: FastAPI, routes: Iterable[str]) -> None:
    """The description says that ``routes`` (POST) need an API key (``serve --api-key-file``),
    either header: client generators send it, and Swagger UI's Authorize button fills it in."""
    build = app.openapi

    def described() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()  # (FastAPI keeps it as app.openapi_schema)
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer KEY"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
            for route in routes:
                schema["paths"][route]["post"]["security"] = [{"bearer": []}, {"apiKey": []}]
        return app.openapi_schema

    app.openapi = described  # type: ignore[method-assign]
