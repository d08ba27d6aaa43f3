"""ASGI middleware that refuses request bodies over the configured size with 413, before reading them all."""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]


class BodyLimitMiddleware:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._reject(send, 400, "Content-Length is not a number", "Content-Length")
                    return
                if declared > self.max_bytes:
                    await self._too_large(send)
                    return
        seen = 0
        too_large = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen, too_large
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Any) -> None:
        await self._reject(
            send, 413, f"request body is larger than {self.max_bytes} bytes (DEVMESH_MAX_BODY_BYTES)", "body"
        )

    @staticmethod
    async def _reject(send: Any, status: int, message: str, field: str) -> None:
        body = json.dumps(
            {"error": "PayloadTooLarge" if status == 413 else "InvalidInput", "message": message, "field": field}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass
