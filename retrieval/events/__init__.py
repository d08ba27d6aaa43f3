"""The event store: raw logs, spans and metrics, log templates, and the small JSON documents and
key-value state kept beside them, in one embedded DuckDB file.

- `store`: `EventStore` (appends, log pages, trace spans, Arrow windows, stats, read-only SQL)
- `templates`, `aggregates`: the template and aggregation methods mixed into `EventStore`
- `keyword`: keyword matching of templates and lines (the log search's fallback), mixed into `EventStore`
- `docs`, `kv`: `DocStore` and `KeyValueStore`, reached as `store.docs` and `store.kv`
- `query`: `LogQuery` and its SQL; `readonly_sql`: the guards of `devmesh query sql`
- `schema`: tables, `normalize` and event ids; `db`: the shared DuckDB connection
"""

from retrieval.events.aggregates import GROUPABLE, BucketCount, EdgeStat, SpanStat, TemplateCount
from retrieval.events.docs import DocStore
from retrieval.events.kv import KeyValueStore
from retrieval.events.query import LEVEL_ORDER, LogPage, LogQuery, levels_at_least, matches, query_from_args
from retrieval.events.readonly_sql import check_read_only, run_read_only
from retrieval.events.schema import SCHEMA_VERSION, event_id_of, event_ids, normalize
from retrieval.events.store import AppendResult, EventStore
from retrieval.events.templates import StoredTemplate, TemplateDelta

__all__ = [
    "GROUPABLE",
    "LEVEL_ORDER",
    "SCHEMA_VERSION",
    "AppendResult",
    "BucketCount",
    "DocStore",
    "EdgeStat",
    "EventStore",
    "KeyValueStore",
    "LogPage",
    "LogQuery",
    "SpanStat",
    "StoredTemplate",
    "TemplateCount",
    "TemplateDelta",
    "check_read_only",
    "event_id_of",
    "event_ids",
    "levels_at_least",
    "matches",
    "normalize",
    "query_from_args",
    "run_read_only",
]
