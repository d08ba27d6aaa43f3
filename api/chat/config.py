"""Chat settings, taken from `core.settings.Settings` (the `DEVMESH_SLACK_*` and `DEVMESH_CHAT_*` variables).

Secrets stay `SecretStr` until the moment a client needs them, so they never reach a log line or a repr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from core.errors import InvalidInput

DEFAULT_API_URL = "https://slack.com/api/"
REPLAY_FILE = "slack_replay.sqlite"
"""Where in the DevMesh home the Slack replay guard keeps the signatures it has seen."""


def _secret(value: Any) -> SecretStr | None:
    if value is None:
        return None
    secret = value if isinstance(value, SecretStr) else SecretStr(str(value))
    return secret if secret.get_secret_value().strip() else None


class SlackConfig(BaseModel):
    """What the Slack bot needs. Build it with `from_settings`; tests build it directly."""

    model_config = ConfigDict(frozen=True)

    bot_token: SecretStr = Field(description="Bot user OAuth token (xoxb-...).")
    signing_secret: SecretStr = Field(description="Signing secret that Slack signs every request with.")
    app_token: SecretStr | None = Field(default=None, description="App-level token (xapp-...) for Socket Mode.")
    api_url: str = Field(default=DEFAULT_API_URL, description="Slack Web API base URL (a fake one in tests).")
    command: str = Field(default="/devmesh", pattern=r"^/[\w-]{1,31}$", description="The slash command.")
    workers: int = Field(default=4, ge=1, le=64, description="Threads that run explanations and follow-ups.")
    max_pending: int = Field(default=32, ge=1, description="Jobs queued or running before the bot says 'busy'.")
    api_timeout_s: int = Field(default=10, ge=1, le=120, description="Timeout of one Slack Web API call.")
    replay_path: Path | None = Field(
        default=None, description="SQLite file of the signatures seen (kept over restarts); None: in memory."
    )

    @classmethod
    def from_settings(cls, settings: Any) -> SlackConfig | None:
        """The config from settings, or None when the bot token and signing secret are not both set.

        Reads `slack_bot_token`, `slack_signing_secret`, `slack_app_token`, `slack_api_url`,
        `slack_command` (attributes missing from an older Settings count as unset), and `home` (where the
        replay guard keeps its file).
        """
        token = _secret(getattr(settings, "slack_bot_token", None))
        secret = _secret(getattr(settings, "slack_signing_secret", None))
        if token is None and secret is None:
            return None
        if token is None or secret is None:
            missing = "DEVMESH_SLACK_BOT_TOKEN" if token is None else "DEVMESH_SLACK_SIGNING_SECRET"
            raise InvalidInput(f"the Slack bot needs both a bot token and a signing secret: set {missing}")
        values: dict[str, Any] = {"bot_token": token, "signing_secret": secret}
        home = getattr(settings, "home", None)
        if home is not None:
            values["replay_path"] = Path(home) / REPLAY_FILE
        app_token = _secret(getattr(settings, "slack_app_token", None))
        if app_token is not None:
            values["app_token"] = app_token
        for name in ("api_url", "command"):
            value = getattr(settings, f"slack_{name}", None)
            if value:
                values[name] = value
        return cls(**values)
