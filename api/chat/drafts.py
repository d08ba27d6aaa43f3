"""The explanation's words in a Slack thread as the model writes them: a draft message posted with the first
words and updated at most every `interval_s`, then replaced by the finished answer (or the answer posted
when no words came, e.g. evidence-only explanations)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from agents.answer_stream import RESTART

WRITING = ":writing_hand: "


class Draft:
    """A `words_to` sink for one thread; `publish` puts the finished answer in place of the draft."""

    def __init__(
        self,
        call: Callable[..., Any],
        channel: str,
        thread_ts: str,
        *,
        interval_s: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.call, self.channel, self.thread_ts = call, channel, thread_ts
        self.interval_s, self.clock = interval_s, clock
        self.text = ""
        self.ts: str | None = None
        self._shown_at = -1e9
        self._lock = threading.Lock()

    def __call__(self, words: str) -> None:
        with self._lock:
            self.text = "" if words == RESTART else self.text + words
            if not self.text.strip() or self.clock() - self._shown_at < self.interval_s:
                return
            self._shown_at = self.clock()
            text = WRITING + self.text + " …"
            if self.ts is None:
                posted = self.call("chat_postMessage", channel=self.channel, thread_ts=self.thread_ts, text=text)
                self.ts = str(posted["ts"]) if posted is not None else None
            else:
                self.call("chat_update", channel=self.channel, ts=self.ts, text=text)

    def publish(self, *, text: str, blocks: list[dict[str, Any]]) -> None:
        with self._lock:
            if self.ts is not None:
                self.call("chat_update", channel=self.channel, ts=self.ts, text=text, blocks=blocks)
                return
        self.call(
            "chat_postMessage",
            channel=self.channel,
            thread_ts=self.thread_ts,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
        )
