"""The OpenAPI schema's shared answers: the statuses the machinery in front of every route can give.

Routes document what they themselves answer (`responses=` on the route). What every route can answer
because of the shared machinery (the Host check, the access guard and scopes, body limits, content types,
validation, rate limits, a full queue, an engine down, a method not allowed) is added here, to every
operation at once, with the one error body `api.http.errors` sends. `install_openapi_doc(app)` after the
routers are mounted; `tests/integration/test_contract_schemathesis.py` holds the app to the result.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

ERROR_SCHEMA = "Error"


class Problem(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    """Every error answer: what kind, what went wrong, and the field (body, a parameter, a header) at fault."""

    error: str = Field(description="The error kind: InvalidInput, NotFound, Unauthorized, RateLimited, ...")
    message: str = Field(description="What went wrong and what to do about it.")
    field: str | None = Field(default=None, description="The field, parameter or header at fault.")
    details: Any = Field(default=None, description="More problems (validation: one per field) or context.")


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}}
SHARED_RESPONSES: dict[str, tuple[str, dict[str, Any]]] = {
    "400": ("Bad request: a Host this server does not answer to, a malformed header.", {}),
    "401": (
        "No valid API key: send `Authorization: Bearer <key>`.",
        {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    ),
    "403": ("The key lacks the scope this operation needs, or a cross-origin write.", {}),
    "404": ("Nothing with this id (an incident, a page), or a front end that is not configured.", {}),
    "405": (
        "Method not allowed on this path.",
        {"Allow": {"description": "The methods the path allows.", "schema": {"type": "string"}}},
    ),
    "413": ("The body, once decompressed, or its record count is over the configured limit.", {}),
    "415": ("A body in a media type or encoding this operation does not read.", {}),
    "422": ("Invalid input; `field` names the field, parameter or header.", {}),
    "429": ("Over this caller's rate limit.", _RETRY_AFTER),
    "503": ("An engine is unavailable, or the work queue is full.", _RETRY_AFTER),
}
"""Status -> (description, response headers) of the answers any operation can give."""
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def add_shared_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with the shared answers added to every operation (in place; returned for convenience)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components[ERROR_SCHEMA] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    error_content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code, (description, headers) in SHARED_RESPONSES.items():
                answer = responses.setdefault(code, {})
                if not answer.get("description"):
                    answer["description"] = description
                if code == "422" or not answer.get("content"):  # 422: our body, not FastAPI's HTTPValidationError
                    answer["content"] = error_content
                if headers:
                    answer.setdefault("headers", {}).update(headers)
    for unused in ("HTTPValidationError", "ValidationError"):
        if not _referenced(schema, unused):
            components.pop(unused, None)
    return schema


def _referenced(schema: dict[str, Any], name: str) -> bool:
    """Whether anything but the schema `name` itself refers to it."""
    ref = json.dumps(f"#/components/schemas/{name}")
    rest = {k: v for k, v in schema.items() if k != "components"}
    others = {k: v for k, v in schema["components"]["schemas"].items() if k != name}
    return ref in json.dumps(rest) or ref in json.dumps(others)


def install_openapi_doc(app: FastAPI) -> None:
    """Make `app.openapi()` (and /openapi.json) carry the shared answers; built once, on first use."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = add_shared_responses(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
