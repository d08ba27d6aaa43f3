"""The web console: plain HTML, JavaScript modules and CSS under `static/`, served by `devmesh serve` at `/`.

No build step and nothing fetched from elsewhere: the browser loads the page and its assets without a key (they
hold no data; the guard lets `/` and `/console/*` through) and every data call goes to the JSON API with the
user's key, like any other client. `install_console(app)` mounts it; the assets carry a Content-Security-Policy
that allows this origin only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

STATIC = Path(__file__).parent / "static"
PREFIX = "/console"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class ConsoleFiles(StaticFiles):
    """StaticFiles whose answers carry the console's security headers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await super().__call__(scope, receive, with_headers)


def install_console(app: FastAPI) -> None:
    """Serve the console: `/` is its page, `/console/*` its assets (JavaScript modules, CSS)."""

    async def console_page(request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)

    app.add_route("/", console_page, methods=["GET"], include_in_schema=False)  # a page, not an API operation
    app.mount(PREFIX, ConsoleFiles(directory=STATIC), name="console")
