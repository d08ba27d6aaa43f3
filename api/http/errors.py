"""One place that turns errors into HTTP answers: a JSON body naming the field and the problem."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import DevMeshError

log = logging.getLogger(__name__)


def _field_of(error: Any) -> str:
    if error.get("type") == "json_invalid":  # its loc is ("body", character offset)
        return "body"
    parts = [str(p) for p in error["loc"] if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def error_response(exc: DevMeshError) -> JSONResponse:
    """The JSON answer of an error; `Retry-After` when it says when to try again (429, 503 of a full queue)."""
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)


def _problem_of(error: Any) -> str:
    """The message of one validation problem; a pattern mismatch says so without quoting a page of regex."""
    if error.get("type") == "string_pattern_mismatch":
        return "not in the form documented for it (its description and pattern in /openapi.json)"
    return str(error["msg"])


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DevMeshError)
    async def _devmesh(_: Request, exc: DevMeshError) -> JSONResponse:
        if exc.status_code >= 500:
            log.warning("request failed", extra={"error": type(exc).__name__, "detail": exc.message})
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"field": _field_of(e), "problem": _problem_of(e)} for e in exc.errors()[:50]]
        first = problems[0] if problems else {"field": "body", "problem": "invalid request"}
        body = {"error": "InvalidInput", "message": first["problem"], "field": first["field"], "details": problems}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(ValidationError)
    async def _model(_: Request, exc: ValidationError) -> JSONResponse:
        problems = [{"field": _field_of(e), "problem": _problem_of(e)} for e in exc.errors()[:50]]
        first = problems[0]
        body = {"error": "InvalidInput", "message": first["problem"], "field": first["field"], "details": problems}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):  # FastAPI could not read the JSON body
            message = f"malformed JSON body: {str(exc.__cause__)[:200]}"
            return JSONResponse({"error": "InvalidInput", "message": message, "field": "body"}, status_code=422)
        body = {"error": "HTTPError", "message": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)  # 405 keeps its Allow header

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(
            {"error": "InternalError", "message": "unexpected server error; see the DevMesh server log"},
            status_code=500,
        )
