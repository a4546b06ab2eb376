"""Liveness, readiness and the shared pieces every service's HTTP app is built from."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response, get
from nats.aio.client import Client as NATS

from services.http.auth import authenticate
from services.tokens import Principal


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Runtime:
    """What a service's handlers need at run time; built by its composition root."""

    signing_key: str
    clock: Callable[[], dt.datetime] = utcnow
    pool: asyncpg.Pool | None = None
    nc: NATS | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def principal(self, request: Request) -> Principal:
        return authenticate(request, self.signing_key)


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=msgspec.json.encode(content), status_code=status, media_type="application/json", headers=headers or {}
    )


@get("/health/live", include_in_schema=True, tags=["health"])
async def live() -> dict[str, str]:
    return {"status": "live"}


@get("/health/ready", tags=["health"])
async def ready(request: Request) -> Response:
    rt = runtime(request)
    checks = {"database": False, "nats": False}
    if rt.pool is not None:
        try:
            async with rt.pool.acquire(timeout=2) as conn:
                checks["database"] = await conn.fetchval("SELECT true", timeout=2)
        except Exception:
            checks["database"] = False
    checks["nats"] = bool(rt.nc is not None and rt.nc.is_connected)
    ok = all(checks.values())
    return json_response({"status": "ready" if ok else "not_ready", "checks": checks}, 200 if ok else 503)


HEALTH_ROUTES = [live, ready]
