"""The logger DevMesh gives slack-bolt: warnings and errors only, and never a request body.

slack-bolt writes the whole body of a request it rejects (`Invalid request signature detected (...,
body: ...)`) at INFO, request and response bodies at DEBUG, and a body (or part of one) in some
warnings. `bolt_logger()` is passed as `App(logger=...)`; bolt copies its level and filter to every
logger it makes for the app, so all of them stay at WARNING and lose any text from the first brace or
"body:" on.
"""

from __future__ import annotations

import logging

from core.redaction import redact_urls

BOLT_LOGGER = "api.chat.slack_bolt"
_BODY_MARKS = ("{", "body:", "body=")


class NoRequestBodies(logging.Filter):
    """Cuts a record's message before anything that looks like a request body; hides URL credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        cut = min((i for i in (text.find(m) for m in _BODY_MARKS) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut].rstrip(" (:,") + " (request body not logged)"
        record.msg, record.args = redact_urls(text), None
        return True


def bolt_logger() -> logging.Logger:
    """The base logger for a slack-bolt App (the same one each call: WARNING, `NoRequestBodies`)."""
    logger = logging.getLogger(BOLT_LOGGER)
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, NoRequestBodies) for f in logger.filters):
        logger.addFilter(NoRequestBodies())
    return logger
