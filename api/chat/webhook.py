"""Explanations to an incoming webhook, for teams without the Slack bot: Mattermost, Teams, Slack, or plain JSON.

Formats:
- `mattermost`: `{"text": <Markdown>, "username": ...}` (Mattermost's Slack-compatible incoming webhook).
- `slack`: `{"text": <fallback>, "blocks": <Block Kit>}` (a Slack incoming webhook).
- `teams`: a message with one Adaptive Card attachment (Teams Workflows "post to a channel" webhook).
- `generic`: `{"text": <Markdown>, "explanation": <the Explanation as JSON>}`.

The URL usually embeds a secret, so it is kept as `SecretStr` and logs name only its host (requests
go straight to an httpx transport: `httpx.Client` would log the full URL at INFO).
Timeouts on every call; connection errors, 429 and 5xx are retried with backoff (Retry-After honoured).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from api.render import slack_blocks as bk
from api.render.markdown import to_markdown
from api.render.text import mode_line, plain
from core.errors import DevMeshError, InvalidInput
from core.explanation import Explanation

log = logging.getLogger(__name__)

MATTERMOST_MAX_CHARS = 16_000
TEAMS_MAX_CHARS = 20_000
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 30.0
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"


class WebhookFormat(StrEnum):
    MATTERMOST = "mattermost"
    SLACK = "slack"
    TEAMS = "teams"
    GENERIC = "generic"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 40] + "\n\n… (truncated; see DevMesh for the rest)"


def _teams_card(expl: Explanation) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": plain(bk.title_of(expl), 150), "weight": "Bolder", "size": "Medium"},
        {"type": "TextBlock", "text": plain(mode_line(expl), 300), "isSubtle": True, "wrap": True, "size": "Small"},
        {"type": "TextBlock", "text": plain(expl.summary, 4000), "wrap": True},
    ]
    if expl.root_causes:
        facts = [
            {"title": f"{rc.rank}. {plain(rc.service, 100)}", "value": f"{rc.confidence:.0%} {rc.fault_kind.value}"}
            for rc in expl.root_causes[:5]
        ]
        body.append({"type": "FactSet", "facts": facts})
    for rb in expl.runbooks[:3]:
        steps = "\n".join(f"{n}. {plain(s, 300)}" for n, s in enumerate(rb.steps[:10], 1))
        body.append({"type": "TextBlock", "text": f"Runbook: {plain(rb.title, 150)}\n{steps}", "wrap": True})
    actions = [
        {"type": "Action.OpenUrl", "title": plain(rb.title, 40) or "Runbook", "url": rb.url}
        for rb in expl.runbooks[:3]
        if rb.url.startswith(("http://", "https://"))
    ]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return {
        "type": "message",
        "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}],
    }


def webhook_payload(expl: Explanation, fmt: WebhookFormat, *, username: str = "DevMesh") -> dict[str, Any]:
    """The JSON body that posts `expl` to a webhook of format `fmt`."""
    if fmt is WebhookFormat.MATTERMOST:
        return {"text": _cut(to_markdown(expl), MATTERMOST_MAX_CHARS), "username": username}
    if fmt is WebhookFormat.SLACK:
        return {"text": bk.fallback_text(expl), "blocks": bk.explanation_blocks(expl, feedback=False)}
    if fmt is WebhookFormat.TEAMS:
        return _teams_card(expl)
    return {"text": _cut(to_markdown(expl), MATTERMOST_MAX_CHARS), "explanation": expl.model_dump(mode="json")}


class WebhookSender:
    """Posts JSON to one incoming-webhook URL. Use as a context manager or `close()`."""

    def __init__(
        self,
        url: SecretStr | str,
        *,
        fmt: WebhookFormat | str = WebhookFormat.MATTERMOST,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        username: str = "DevMesh",
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = url if isinstance(url, SecretStr) else SecretStr(url)
        parts = urlsplit(self._url.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput("the chat webhook URL must be an http(s) URL", field="chat_webhook_url")
        self.host = parts.hostname
        self.fmt = WebhookFormat(fmt)
        self.retries = retries
        self.backoff_s = backoff_s
        self.username = username
        self._sleep = sleep
        self._timeout = httpx.Timeout(timeout_s).as_dict()
        self._transport = transport if transport is not None else httpx.HTTPTransport()

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def __repr__(self) -> str:
        return f"WebhookSender(host={self.host!r}, fmt={self.fmt.value!r})"

    def send_explanation(self, expl: Explanation) -> None:
        self.send(webhook_payload(expl, self.fmt, username=self.username))

    def send(self, payload: dict[str, Any]) -> None:
        """POST `payload`; retried on connection errors, timeouts, 429 and 5xx. DevMeshError when it never lands."""
        attempts = self.retries + 1
        problem = ""
        for attempt in range(1, attempts + 1):
            wait = self.backoff_s * 2 ** (attempt - 1)
            try:
                resp = self._post(payload)
            except httpx.TransportError as exc:
                problem = type(exc).__name__
            else:
                if resp.status_code < 300:
                    return
                problem = f"HTTP {resp.status_code}"
                if resp.status_code not in RETRY_STATUSES:
                    break
                wait = max(wait, _retry_after(resp))
            if attempt < attempts:
                extra = {"host": self.host, "problem": problem, "attempt": attempt}
                log.info("webhook post failed; retrying", extra=extra)
                self._sleep(wait)
        raise DevMeshError(
            f"the chat webhook at {self.host} did not take the message ({problem}, {attempt} attempt(s)); "
            "check DEVMESH_CHAT_WEBHOOK_URL and that the receiving side is up"
        )

    def _post(self, payload: dict[str, Any]) -> httpx.Response:
        request = httpx.Request(
            "POST",
            self._url.get_secret_value(),
            json=payload,
            headers={"User-Agent": "devmesh-webhook/0.1"},
            extensions={"timeout": self._timeout},
        )
        resp = self._transport.handle_request(request)
        try:
            resp.read()
        finally:
            resp.close()
        return resp


def _retry_after(resp: httpx.Response) -> float:
    value = resp.headers.get("retry-after", "")
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return 0.0
