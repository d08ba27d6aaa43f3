"""Where detection and alert explanations are announced: a Slack channel and/or an incoming webhook."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from api.chat.webhook import WebhookSender
from api.render.slack_blocks import explanation_blocks, fallback_text
from core.explanation import Explanation
from core.incident import Incident
from core.settings import Settings
from detect.runner import Notify

log = logging.getLogger(__name__)


def notifier_from_settings(settings: Settings) -> Notify | None:
    """A function that posts an explanation to every configured destination, or None when there is none."""
    senders: list[Callable[[Explanation], Any]] = []
    if settings.chat_webhook_url is not None:
        hook = WebhookSender(settings.chat_webhook_url.get_secret_value(), fmt=settings.chat_webhook_format)
        senders.append(hook.send_explanation)
    if settings.slack_bot_token is not None and settings.slack_channel:
        from slack_sdk import WebClient

        client = WebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url)
        channel = settings.slack_channel

        def to_slack(expl: Explanation) -> None:
            client.chat_postMessage(channel=channel, text=fallback_text(expl), blocks=explanation_blocks(expl))

        senders.append(to_slack)
    if not senders:
        return None

    def notify(incident: Incident, explanation: Explanation) -> None:
        for send in senders:
            send(explanation)

    return notify
