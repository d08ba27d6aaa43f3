"""The Slack bot: a slack-bolt App whose listeners acknowledge at once and do the work on a thread pool.

Requests arrive over HTTP (`api.chat.routes`, Events API, slash commands, interactivity) or Socket
Mode (`start_socket_mode`). Over HTTP, bolt verifies each request's signature and timestamp (401
otherwise) and `RejectReplays` refuses a signature seen before. Listeners only parse and queue:
`process_before_response=True` makes bolt answer Slack as soon as the listener returns, well inside
Slack's 3 seconds; explanations, follow-ups and feedback then run on `SlackBot.executor` and post
their answers with the Web API (chat.postMessage in the thread, chat.update, chat.postEphemeral).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from agents.answer_stream import words_to
from api.chat.bolt_logs import bolt_logger
from api.chat.commands import USAGE, ChatCommand, clean_slack_text, parse_command
from api.chat.config import SlackConfig
from api.chat.drafts import Draft
from api.chat.followups import FollowUpKind, answer, classify
from api.chat.replay import RejectReplays, ReplayGuard, SeenKeys
from api.chat.threads import ThreadContext, ThreadStore
from api.chat.webhook import WebhookSender
from api.port import ConversationPort
from api.render import slack_blocks as bk
from api.render import slack_rows as rows_bk
from core.errors import DevMeshError, InvalidInput
from core.explanation import Explanation
from core.incident import Feedback, IncidentStatus, InvestigationRequest
from core.timeutil import now_ns

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

log = logging.getLogger(__name__)

BUSY = "DevMesh is busy with other questions right now; try again in a minute."
FAILED = ":warning: DevMesh failed to explain this; see its log."
NOTICE_RESERVE = 16
"""Jobs beyond `max_pending` allowed for short notices (busy, usage), so people hear back under load."""
EVENT_ID_TTL_S = 3600
LIST_ROWS = 20
SOURCE = "chat"
_FEEDBACK_ACTION = re.compile(r"^devmesh_feedback_(right|wrong|actual)$")


def make_web_client(config: SlackConfig) -> WebClient:
    """A Web API client for `config.api_url` that retries rate-limited calls (Retry-After honoured)."""
    client = WebClient(token=config.bot_token.get_secret_value(), base_url=config.api_url, timeout=config.api_timeout_s)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client


class SlackBot:
    """The bolt App, the work pool and the thread contexts. `close()` when done."""

    def __init__(self, config: SlackConfig, port: ConversationPort, *, client: WebClient | None = None) -> None:
        self.config = config
        self.port = port
        self.client = client if client is not None else make_web_client(config)
        self.replay = ReplayGuard(config.replay_path)
        self.threads = ThreadStore()
        self._events = SeenKeys(max_keys=50_000)
        self.executor = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="devmesh-chat")
        self._pending = 0
        self._lock = threading.Lock()
        self.app = App(
            name="devmesh",
            client=self.client,
            logger=bolt_logger(),  # WARNING and up, no request bodies
            signing_secret=config.signing_secret.get_secret_value(),
            process_before_response=True,
            request_verification_enabled=True,
            token_verification_enabled=False,  # auth.test runs on the first request instead of at start-up
            before_authorize=RejectReplays(self.replay),
            listener_executor=self.executor,
        )
        self.app.command(config.command)(self._on_command)
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        self.app.action(_FEEDBACK_ACTION)(self._on_feedback)

    # -- life cycle ------------------------------------------------------------------------------------

    def close(self, *, wait: bool = False) -> None:
        """Stop taking work; queued jobs are dropped, running ones finish (waited for if `wait`)."""
        self.executor.shutdown(wait=wait, cancel_futures=True)
        self.replay.close()

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def _submit(self, fn: Callable[..., object], /, *, reserve: bool = False, **kwargs: Any) -> bool:
        """Queue a job unless `max_pending` are queued or running (`reserve`: a few more, for short notices)."""
        limit = self.config.max_pending + (NOTICE_RESERVE if reserve else 0)
        with self._lock:
            if self._pending >= limit:
                return False
            self._pending += 1

        def run() -> None:
            try:
                fn(**kwargs)
            except Exception:  # a job's failure must not kill the worker; it is logged with its traceback
                log.exception("chat job failed", extra={"job": fn.__name__})
            finally:
                with self._lock:
                    self._pending -= 1

        try:
            self.executor.submit(run)
        except RuntimeError:  # shut down
            with self._lock:
                self._pending -= 1
            return False
        return True

    # -- listeners (run inside the request: quick) ----------------------------------------------------

    def _on_command(self, ack: Callable[..., None], command: dict[str, Any]) -> None:
        try:
            cmd = parse_command(str(command.get("text", "")))
        except InvalidInput as exc:
            ack(text=bk.esc(exc.message), response_type="ephemeral")
            return
        if cmd.action == "help":
            ack(text=bk.esc(USAGE), response_type="ephemeral")
            return
        channel, user = str(command.get("channel_id", "")), str(command.get("user_id", ""))
        response_url = str(command.get("response_url", ""))
        if cmd.action == "explain":
            ok = self._submit(self._explain_for_command, channel=channel, user=user, cmd=cmd, response_url=response_url)
            ack(
                text=f"Explaining {bk.esc(cmd.describe())}; the answer comes in a thread." if ok else BUSY,
                response_type="ephemeral",
            )
            return
        ok = self._submit(self._list_job, cmd=cmd, response_url=response_url)
        ack(text=("Looking…" if ok else BUSY), response_type="ephemeral")

    def _on_mention(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        if self._seen_event(body):
            return
        channel, ts = str(event.get("channel", "")), str(event.get("ts", ""))
        thread_ts = str(event.get("thread_ts") or ts)
        text = clean_slack_text(str(event.get("text", "")))
        user = str(event.get("user", ""))
        ctx = self.threads.get(channel, thread_ts) if event.get("thread_ts") else None
        if ctx is not None and not text.lower().startswith("explain "):
            self._submit_or_say_busy(self._followup_job, ctx=ctx, text=text, user=user)
            return
        try:
            cmd = parse_command(text)
        except InvalidInput as exc:
            self._submit(self._post_job, reserve=True, channel=channel, thread_ts=thread_ts, text=bk.esc(exc.message))
            return
        if cmd.action == "explain":
            self._submit_or_say_busy(self._explain_job, channel=channel, thread_ts=thread_ts, cmd=cmd, user=user)
        elif cmd.action == "help":
            self._submit(self._post_job, reserve=True, channel=channel, thread_ts=thread_ts, text=bk.esc(USAGE))
        else:
            self._submit_or_say_busy(self._list_job, cmd=cmd, channel=channel, thread_ts=thread_ts)

    def _on_message(self, event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
        """A reply in a thread the bot answered, without a mention: answered if it is a known follow-up."""
        if event.get("subtype") or event.get("bot_id") or not event.get("thread_ts"):
            return
        bot_user = context.get("bot_user_id")
        if bot_user and f"<@{bot_user}>" in str(event.get("text", "")):
            return  # the app_mention event for the same message answers it
        ctx = self.threads.get(str(event.get("channel", "")), str(event["thread_ts"]))
        if ctx is None or self._seen_event(body):
            return
        text = clean_slack_text(str(event.get("text", "")))
        if classify(text).kind is FollowUpKind.ASK:
            return  # people talking among themselves; a mention asks the bot
        self._submit_or_say_busy(self._followup_job, ctx=ctx, text=text, user=str(event.get("user", "")))

    def _on_feedback(self, ack: Callable[..., None], body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        block_id = str(action.get("block_id", ""))
        if not block_id.startswith(bk.FEEDBACK_BLOCK_PREFIX):
            return
        incident_id = block_id[len(bk.FEEDBACK_BLOCK_PREFIX) :]
        kind = str(action.get("action_id", ""))
        if kind == bk.ACTION_RIGHT:
            root_cause, helpful = str(action.get("value", "")) or None, True
        elif kind == bk.ACTION_WRONG:
            root_cause, helpful = None, False
        else:
            root_cause, helpful = str((action.get("selected_option") or {}).get("value", "")) or None, False
        message = body.get("message") or {}
        self._submit(
            self._feedback_job,
            incident_id=incident_id,
            root_cause=root_cause,
            helpful=helpful,
            user=str((body.get("user") or {}).get("id", "")),
            channel=str((body.get("channel") or {}).get("id", "")),
            thread_ts=str(message.get("thread_ts") or message.get("ts") or ""),
        )

    def _seen_event(self, body: dict[str, Any]) -> bool:
        """True for an event delivered before (Slack retries when an answer was slow)."""
        event_id = str(body.get("event_id", ""))
        if not event_id:
            return False
        return self._events.add(event_id, expires_at=time.time() + EVENT_ID_TTL_S) is not True

    def _submit_or_say_busy(self, fn: Callable[..., object], /, **kwargs: Any) -> None:
        if self._submit(fn, **kwargs):
            return
        ctx = kwargs.get("ctx")
        channel = kwargs.get("channel") or (ctx.channel if ctx else "")
        thread_ts = kwargs.get("thread_ts") or (ctx.thread_ts if ctx else "")
        if not self._submit(self._post_job, reserve=True, channel=channel, thread_ts=thread_ts, text=BUSY):
            log.warning("chat overloaded; a request was dropped", extra={"channel": channel})

    # -- jobs (on the executor) ---------------------------------------------------------------------------

    def _explain_for_command(self, *, channel: str, user: str, cmd: ChatCommand, response_url: str) -> None:
        """Slash command: a message in the channel to hang the thread on, the answer in its thread."""
        intro = f"<@{user}> asked DevMesh to explain {bk.code(cmd.describe())}. Working on it…"
        try:
            parent = self.client.chat_postMessage(channel=channel, text=intro)
        except SlackApiError as exc:
            log.warning("cannot post in the channel; answering the command privately", extra={"error": _err(exc)})
            self._explain_privately(cmd, response_url)
            return
        parent_ts = str(parent["ts"])
        expl = self._explain_job(channel=channel, thread_ts=parent_ts, cmd=cmd, user=user)
        if expl is not None:
            top = expl.root_causes[0] if expl.root_causes else None
            done = f"<@{user}> asked DevMesh to explain {bk.code(cmd.describe())}. "
            done += f"Top cause: *{bk.esc(top.service)}* ({top.confidence:.0%}). " if top else "No cause ranked. "
            done += "Details in the thread."
            self._call("chat_update", channel=channel, ts=parent_ts, text=done)

    def _explain_job(self, *, channel: str, thread_ts: str, cmd: ChatCommand, user: str) -> Explanation | None:
        draft = Draft(self._call, channel, thread_ts)  # the model's words in the thread as they come
        try:
            req = cmd.explain_request(now=now_ns())
            with words_to(draft):
                expl = self.port.explain(req, source=SOURCE).explanation
        except DevMeshError as exc:
            self._post_job(channel=channel, thread_ts=thread_ts, text=f":warning: {bk.esc(exc.message, 2000)}")
            return None
        except Exception:
            log.exception("explanation failed", extra={"target": cmd.target})
            self._post_job(channel=channel, thread_ts=thread_ts, text=FAILED)
            return None
        self._remember(channel, thread_ts, cmd, req, expl)
        draft.publish(text=bk.fallback_text(expl), blocks=bk.explanation_blocks(expl))
        return expl

    def _remember(
        self, channel: str, thread_ts: str, cmd: ChatCommand, req: InvestigationRequest, expl: Explanation
    ) -> None:
        window = expl.window
        self.threads.put(
            ThreadContext(
                channel=channel,
                thread_ts=thread_ts,
                incident_id=expl.incident_id or (cmd.target if cmd.is_incident else ""),
                service="" if cmd.is_incident else cmd.target,
                start_ns=window.start_ns if window else req.start_ns,
                end_ns=window.end_ns if window else req.end_ns,
                root_causes=tuple(rc.service for rc in expl.root_causes),
            )
        )

    def _explain_privately(self, cmd: ChatCommand, response_url: str) -> None:
        try:
            expl = self.port.explain(cmd.explain_request(now=now_ns()), source=SOURCE).explanation
        except DevMeshError as exc:
            self._respond(response_url, text=f":warning: {bk.esc(exc.message, 2000)}")
            return
        self._respond(response_url, text=bk.fallback_text(expl), blocks=bk.explanation_blocks(expl, feedback=False))

    def _followup_job(self, *, ctx: ThreadContext, text: str, user: str) -> None:
        fu = classify(text)
        try:
            reply = answer(fu, ctx, self.port)
        except DevMeshError as exc:
            self._post_job(channel=ctx.channel, thread_ts=ctx.thread_ts, text=f":warning: {bk.esc(exc.message, 2000)}")
            return
        if reply.explanation is not None and reply.explanation.root_causes:
            causes = tuple(rc.service for rc in reply.explanation.root_causes)
            self.threads.put(dataclasses.replace(ctx, root_causes=causes))
        self._call(
            "chat_postMessage",
            channel=ctx.channel,
            thread_ts=ctx.thread_ts,
            text=reply.text,
            blocks=reply.blocks,
            unfurl_links=False,
            unfurl_media=False,
        )

    def _list_job(self, *, cmd: ChatCommand, response_url: str = "", channel: str = "", thread_ts: str = "") -> None:
        try:
            if cmd.action == "incidents":
                status = IncidentStatus(cmd.text) if cmd.text else None
                incidents = self.port.list_incidents(status=status, limit=LIST_ROWS)
                blocks, text = rows_bk.incidents_blocks(incidents), f"{len(incidents)} incidents"
            else:
                rows = self.port.search_logs(cmd.text, service=None, since_ns=None, limit=LIST_ROWS)
                blocks, text = rows_bk.logs_blocks(f"Logs like “{cmd.text}”", rows), f"{len(rows)} log lines"
        except DevMeshError as exc:
            blocks, text = rows_bk.notice_blocks(f":warning: {bk.esc(exc.message, 2000)}"), "error"
        if response_url:
            self._respond(response_url, text=text, blocks=blocks)
        else:
            self._call("chat_postMessage", channel=channel, thread_ts=thread_ts, text=text, blocks=blocks)

    def _feedback_job(
        self, *, incident_id: str, root_cause: str | None, helpful: bool, user: str, channel: str, thread_ts: str
    ) -> None:
        try:
            self.port.feedback(incident_id, Feedback(root_cause=root_cause, helpful=helpful, by=user))
        except DevMeshError as exc:
            text = f":warning: Feedback not recorded: {bk.esc(exc.message, 500)}"
        else:
            verdict = f"root cause *{bk.esc(root_cause)}*" if root_cause and helpful else "wrong cause"
            if root_cause and not helpful:
                verdict = f"wrong cause; it was *{bk.esc(root_cause)}*"
            text = f"Thanks, recorded for {bk.code(incident_id)}: {verdict}."
        if channel and user:
            kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
            if thread_ts:
                kwargs["thread_ts"] = thread_ts
            self._call("chat_postEphemeral", **kwargs)

    def _post_job(self, *, channel: str, thread_ts: str, text: str) -> None:
        self._call("chat_postMessage", channel=channel, thread_ts=thread_ts, text=text)

    # -- Slack calls ---------------------------------------------------------------------------------------

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(**kwargs)
        except SlackApiError as exc:
            log.warning("Slack API call failed", extra={"method": method, "error": _err(exc)})
            return None

    def _respond(self, response_url: str, *, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """Answer a slash command privately through its response_url (a short-lived secret: never logged)."""
        if not response_url:
            return
        payload: dict[str, Any] = {"text": text, "response_type": "ephemeral", "replace_original": False}
        if blocks:
            payload["blocks"] = blocks
        try:
            with WebhookSender(response_url, retries=1, timeout_s=self.config.api_timeout_s) as sender:
                sender.send(payload)
        except DevMeshError as exc:
            log.warning("answering through the response_url failed", extra={"error": exc.message})


def _err(exc: SlackApiError) -> str:
    data = getattr(exc.response, "data", None)
    return str(data.get("error", "")) if isinstance(data, dict) else type(exc).__name__


def slack_bot_from_settings(settings: Any, port: ConversationPort) -> SlackBot | None:
    """The bot when the settings hold a bot token and signing secret, else None (chat routes answer 404)."""
    config = SlackConfig.from_settings(settings)
    return SlackBot(config, port) if config is not None else None


def start_socket_mode(bot: SlackBot) -> SocketModeHandler:
    """Connect over Socket Mode (no public URL needed) with `slack_app_token`; `close()` the handler when done."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    if bot.config.app_token is None:
        raise InvalidInput("Socket Mode needs an app-level token: set DEVMESH_SLACK_APP_TOKEN (xapp-...)")
    handler = SocketModeHandler(bot.app, app_token=bot.config.app_token.get_secret_value())
    handler.connect()
    return handler
