"""The one error module. Every error says what went wrong and what to do about it.

`api/errors.py` maps these to HTTP statuses in one place; the CLI prints the message and exits 1.
"""

from __future__ import annotations

from typing import Any

from core.redaction import redact_urls


class DevMeshError(Exception):
    """Base of every DevMesh error."""

    status_code = 500

    def __init__(self, message: str, *, field: str | None = None, details: Any = None) -> None:
        message = redact_urls(message)  # no URL credentials in any message, whoever built it
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": type(self).__name__, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.details is not None:
            body["details"] = self.details
        return body


class InvalidInput(DevMeshError):
    """Input that cannot be accepted as given (malformed, wrong type, missing field)."""

    status_code = 422


class PayloadTooLarge(InvalidInput):
    """A request body or batch over the configured limit."""

    status_code = 413


class UnsupportedMediaType(InvalidInput):
    """A body in an encoding DevMesh does not read."""

    status_code = 415


class NotFound(DevMeshError):
    """Something asked for by id does not exist."""

    status_code = 404


class ReadOnlyViolation(InvalidInput):
    """A statement that would write was sent where only reads are allowed."""

    status_code = 400


class InvalidStatement(InvalidInput):
    """A read-only SQL statement that does not parse, names what is not there, or runs too long: a client error
    no request schema can express (which text is valid SQL), so 400 like a refused write, not 422."""

    status_code = 400


class EngineUnavailable(DevMeshError):
    """A storage engine (FalkorDB, Qdrant, the event store) could not be started or reached."""

    status_code = 503


class EmbedderUnavailable(DevMeshError):
    """The embedding model could not be loaded or reached; events are kept, run `devmesh backfill`."""

    status_code = 503


class LLMUnavailable(DevMeshError):
    """The LLM (Ollama) could not be reached; explanations fall back to evidence-only."""

    status_code = 503


class DatasetError(InvalidInput):
    """A data set folder that does not have the expected layout."""


class RateLimited(DevMeshError):
    """A caller over its request rate for a class of routes; the answer says when to try again (Retry-After)."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = max(1, int(retry_after))


class Overloaded(DevMeshError):
    """Work refused because a bounded queue is full (503); try again after `retry_after` seconds."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = max(1, int(retry_after))


class Unauthorized(DevMeshError):
    """A request without a valid API key (missing, unknown or revoked) where the API wants one."""

    status_code = 401


class Forbidden(DevMeshError):
    """A request whose API key lacks the scope the route needs, or from an origin the API does not trust."""

    status_code = 403
