"""The explanation's words as the model writes them, for front ends that show them as they come.

A front end opens `words_to(sink)` around an investigation; the explainer then asks the model to stream and
`SummaryWords` turns the growing JSON answer into the summary's prose (the schema puts `summary` first):
`sink` gets each new piece of text. If the model's answer starts again (a retry), the sink gets
`RESTART` first. `with_words` runs an iterator of events in a thread and merges `ModelWords` events into
it as the words arrive (what `POST /explain?stream=true` sends as `words` events).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import queue
import re
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from pydantic import BaseModel, Field

WordSink = Callable[[str], None]
RESTART = "\x00restart"
"""Sent to a sink when the answer starts over (a retry after a cut or dropped answer)."""

_SINK: contextvars.ContextVar[WordSink | None] = contextvars.ContextVar("devmesh_word_sink", default=None)
_SUMMARY = re.compile(r'^\s*\{\s*"summary"\s*:\s*"')
_PIECE = re.compile(r'(?:[^"\\]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*')

T = TypeVar("T")


class ModelWords(BaseModel):
    """A piece of the explanation's summary as the model wrote it (`restart`: start again)."""

    text: str = ""
    restart: bool = Field(default=False, description="The model started its answer again: drop what came before.")


@contextlib.contextmanager
def words_to(sink: WordSink) -> Iterator[None]:
    """Inside this block, explanations stream their summary's words to `sink`."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


def current_sink() -> WordSink | None:
    return _SINK.get()


def summary_so_far(answer: str) -> str:
    """The summary prose in a (partial) JSON answer that starts `{"summary": "...`; "" if it does not."""
    head = _SUMMARY.match(answer)
    if head is None:
        return ""
    m = _PIECE.match(answer, head.end())
    raw = m.group(0) if m else ""
    try:
        return str(json.loads(f'"{raw}"'))
    except json.JSONDecodeError:
        return ""


class SummaryWords:
    """A `TextSink` for the LLM client: sends the summary's new words to `sink`, unmasked by `unmask`."""

    def __init__(self, sink: WordSink, unmask: Callable[[str], str] | None = None) -> None:
        self.sink = sink
        self.unmask = unmask or (lambda s: s)
        self.sent = ""

    def __call__(self, answer: str) -> None:
        text = self.unmask(summary_so_far(answer))
        if not text.startswith(self.sent):
            self.sink(RESTART)
            self.sent = ""
        if len(text) > len(self.sent):
            self.sink(text[len(self.sent) :])
            self.sent = text


def with_words(events: Iterator[T]) -> Iterator[T | ModelWords]:
    """`events` run in a thread of their own, with the explanation's words merged in as `ModelWords`."""
    out: queue.Queue[tuple[str, object]] = queue.Queue()

    def sink(text: str) -> None:
        out.put(("words", ModelWords(restart=True) if text == RESTART else ModelWords(text=text)))

    def run() -> None:
        try:
            with words_to(sink):
                for event in events:
                    out.put(("event", event))
        except BaseException as exc:  # handed to the consumer, raised there
            out.put(("error", exc))
        else:
            out.put(("end", None))

    ctx = contextvars.copy_context()
    threading.Thread(target=ctx.run, args=(run,), name="explain-stream", daemon=True).start()
    while True:
        kind, item = out.get()
        if kind == "end":
            return
        if kind == "error":
            assert isinstance(item, BaseException)
            raise item
        yield item  # type: ignore[misc]
