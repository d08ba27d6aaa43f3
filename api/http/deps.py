"""Request-scoped access to the services the app built at start-up."""

from __future__ import annotations

from fastapi import Request

from api.wiring import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc
