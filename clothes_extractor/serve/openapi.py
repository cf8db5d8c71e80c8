"""The routes' OpenAPI description (``GET /openapi.json``; ``/docs`` renders it where the
browser can load Swagger UI from its CDN).

The routes read their request themselves (streamed, with the upload limit), so FastAPI
cannot infer what they take: each route states it here, from the same constants its
handler reads (field names, formats), so the description and the handler agree.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .uploads import MEDIA

ERRORS = {
    "400": "unreadable image, missing or doubled field, bad option",
    "413": "an upload over --max-upload-mb",
    "422": "nothing to work on: no garment found, no one to dress",
    "503": "the queue is full: retry shortly",
    "504": "the request took longer than --timeout-s",
}


def query(name: str, description: str, default: str, values: Iterable[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "default": default}
    if values is not None:
        schema["enum"] = list(values)
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


FORMAT = query("format", "the image format of the answer (jpeg: jpg)", "png", MEDIA)


def response_query(json_gives: str) -> dict[str, Any]:
    return query("response", f"image: the image itself; json: {json_gives}", "image", ("image", "json"))


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
