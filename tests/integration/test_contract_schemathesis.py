"""The HTTP API against its own OpenAPI schema: schemathesis runs every operation in-process, all checks on.

The app is the real one (`create_app`, embedded engines, a temporary home), loaded with
`schemathesis.openapi.from_asgi` and run by schemathesis' engine, the one behind `st run`: its examples,
coverage and fuzzing phases (stateful off: no links are declared), every check (status codes documented,
`Allow` on 405, schema-valid requests accepted, schema-invalid ones refused, response schemas, headers).
Bounded and deterministic (a fixed seed and example count per operation), so it does not drift between runs
and costs about a minute. The goal is zero failures of any kind: a failure means the schema and the app
disagree, and the fix goes into the app or its schema (`api/http/openapi_doc.py`), not into this test.

Run alone: `.venv/bin/python -m pytest -q tests/integration/test_contract_schemathesis.py` (the summary of
requests run and failures found is printed with `-s`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.engine import events
from schemathesis.python import asgi

from api.http.app import create_app
from api.keystore import KeyStore
from api.wiring import Services
from core.settings import Settings

SEED = 11
MAX_EXAMPLES = 12
"""Fuzzing examples per operation (the coverage and examples phases add their own, deterministic, cases)."""
OPERATIONS_AT_LEAST = 19
CONTRACT_SETTINGS = {
    "rate_ingest_per_min": 0,
    "rate_explain_per_min": 0,
    "rate_alerts_per_min": 0,
    "max_future_skew_s": 300 * 365 * 86400,
}
"""What no static schema can say: how fast a caller may go, and how far ahead of the server's clock a time may
be (each documented in words: 429 and the field descriptions). Off here, so every schema-valid request is
accepted as the schema promises."""

DEFAULT_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
"""schemathesis' own expected statuses of `positive_data_acceptance` (4.32), kept for the operation below."""
SQL_OPERATION = {
    "include-method": "GET",
    "include-path": "/query/sql",
    "checks": {"positive_data_acceptance": {"expected-statuses": [*DEFAULT_ACCEPTED, "400"]}},
}
"""GET /query/sql takes any text up to its length limit as `statement`, but only a read-only SELECT that parses
and runs is answered 200: no schema can say which text is valid SQL. Other text is a client error the schema
cannot express, answered 400 naming `statement` (documented on the operation), so 400 is an expected answer to
a schema-valid request of this one operation; every other check, and every other operation, stays as is."""


@dataclass
class ContractRun:
    requests: int = 0
    operations: set[str] = field(default_factory=set)
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(operation, failure title) -> how many cases showed it."""
    examples: dict[tuple[str, str], str] = field(default_factory=dict)
    """(operation, failure title) -> the message and request of one case that showed it."""
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "operations": len(self.operations),
            "requests": self.requests,
            "distinct_failures": len(self.failures),
            "errors": len(self.errors),
        }


def config(headers: dict[str, str]) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": headers,
            "workers": 1,
            "continue-on-failure": True,
            "request-timeout": 120,  # POST /detect/run and /explain run the agents: seconds, on a busy machine
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "no-shrink": True},
            "checks": {"enabled": True},
            "phases": {"stateful": {"enabled": False}},
            "operations": [SQL_OPERATION],
        }
    )


def run_contract(app: FastAPI, *, headers: dict[str, str] | None = None) -> ContractRun:
    """schemathesis over `app`'s schema (its lifespan started by schemathesis, stopped after)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config(headers or {}))

    def after_call(context: Any, case: Any, response: Any) -> None:
        """Let queued alert explanations finish before the next case is drawn: the agents' graph uses the
        `random` module, which Hypothesis refuses to see move while it generates (and the run stays ordered)."""
        queue = getattr(getattr(app.state, "alert_intake", None), "queue", None)
        if queue is not None:
            queue.wait_idle(120)

    schema.hook(after_call)
    run = ContractRun()
    try:
        for event in schemathesis.engine.from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                run.operations.add(event.recorder.label)
                run.requests += len(event.recorder.interactions)
                for case_id, checks in event.recorder.checks.items():
                    for check in checks:
                        if check.failure_info is not None:
                            failure = check.failure_info.failure
                            key = (event.recorder.label, failure.title)
                            run.failures[key] += 1
                            interaction = event.recorder.interactions.get(case_id)
                            answer = interaction.response.content[:300] if interaction and interaction.response else b""
                            example = f"{failure.message}\n{check.failure_info.code_sample}\n-> {answer!r}"
                            run.examples.setdefault(key, example)
            elif isinstance(event, events.NonFatalError):
                run.errors.append(f"{event.label}: {event.info.format()[:400]}")
            elif isinstance(event, events.FatalError):
                run.errors.append(f"fatal: {event.exception!r}")
    finally:
        asgi.shutdown_lifespans()
    return run


def api_headers(settings: Settings) -> dict[str, str]:
    """Headers every request carries: an admin key (so the API runs with keys, as beyond loopback; schemathesis'
    `ignored_auth` check then also sends requests without it and expects 401)."""
    raw, _ = KeyStore(settings.keys_path).create(["admin"], name="contract")
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def app(settings: Settings, open_fn: Callable[[Settings], Services]) -> Iterator[FastAPI]:
    yield create_app(settings.model_copy(update=CONTRACT_SETTINGS), open_fn=open_fn)


def test_every_operation_keeps_to_the_openapi_schema(app: FastAPI, settings: Settings) -> None:
    run = run_contract(app, headers=api_headers(settings))
    print("schemathesis:", run.summary())
    for (operation, title), n in sorted(run.failures.items()):
        example = run.examples[(operation, title)]
        shown = example if len(example) <= 1400 else example[:900] + " ... " + example[-500:]
        print(f"  {operation}: {title} (x{n})\n    " + shown.replace("\n", "\n    "))
    for error in run.errors:
        print("  error:", error)
    assert len(run.operations) >= OPERATIONS_AT_LEAST, run.operations
    assert run.requests > 10 * OPERATIONS_AT_LEAST
    assert run.errors == []
    assert dict(run.failures) == {}
