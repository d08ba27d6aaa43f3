"""HTTP routes of the Slack bot: Events API, slash commands and interactivity, all into one bolt App.

Mount with `app.include_router(router)` and set `app.state.slack` to a `SlackBot` at start-up
(`api.chat.slack_app.slack_bot_from_settings`). Point the Slack app's Event Subscriptions, Slash
Command and Interactivity request URLs at `/slack/events` (or the `/slack/commands` and
`/slack/interactions` aliases). bolt runs synchronously, so dispatch happens on a worker thread.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from slack_bolt.adapter.starlette.handler import to_starlette_response
from slack_bolt.request import BoltRequest
from starlette.concurrency import run_in_threadpool

from api.chat.replay import is_slack_timestamp
from api.chat.slack_app import SlackBot
from core.errors import InvalidInput, NotFound, PayloadTooLarge

MAX_SLACK_BODY = 1024 * 1024
"""Slack's payloads are a few KB; anything this big is not from Slack."""

router = APIRouter(tags=["chat"])


def get_slack_bot(request: Request) -> SlackBot:
    """FastAPI dependency: the bot set at start-up (`app.state.slack`)."""
    bot: SlackBot | None = getattr(request.app.state, "slack", None)
    if bot is None:
        raise NotFound("the Slack bot is not configured: set DEVMESH_SLACK_BOT_TOKEN and DEVMESH_SLACK_SIGNING_SECRET")
    return bot


async def slack_events(request: Request, bot: SlackBot = Depends(get_slack_bot)) -> Response:
    """Every Slack request (events, slash commands, block actions): verified, replay-checked, dispatched."""
    raw = await request.body()
    if len(raw) > MAX_SLACK_BODY:
        raise PayloadTooLarge(f"Slack request body over {MAX_SLACK_BODY} bytes")
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("request body is not UTF-8", field="body") from None
    timestamp = request.headers.get("x-slack-request-timestamp")
    if timestamp is not None and not is_slack_timestamp(timestamp):
        raise InvalidInput("X-Slack-Request-Timestamp must be epoch seconds", field="X-Slack-Request-Timestamp")
    bolt_req = BoltRequest(body=body, query=request.url.query, headers=dict(request.headers))
    bolt_resp = await run_in_threadpool(bot.app.dispatch, bolt_req)
    return to_starlette_response(bolt_resp)


for _path, _name in (
    ("/slack/events", "slack_events"),
    ("/slack/commands", "slack_commands"),
    ("/slack/interactions", "slack_interactions"),
):
    router.add_api_route(
        _path,
        slack_events,
        methods=["POST"],
        name=_name,
        summary="Slack Events API, slash commands and interactivity (signed requests only)",
        response_class=Response,
    )
