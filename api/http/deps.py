"""Request-scoped access to what the app set up: the port (at start-up) and the settings."""

from __future__ import annotations

from fastapi import Request

from api.port import DevMeshPort
from core.errors import EngineUnavailable
from core.settings import Settings


def get_port(request: Request) -> DevMeshPort:
    """FastAPI dependency: the port the application set at start-up (`app.state.port`)."""
    port: DevMeshPort | None = getattr(request.app.state, "port", None)
    if port is None:
        raise EngineUnavailable("DevMesh is still starting (no port on app.state); retry in a moment")
    return port


def get_settings(request: Request) -> Settings:
    """FastAPI dependency: the settings the application was built with (`app.state.settings`)."""
    settings: Settings = request.app.state.settings
    return settings
