"""The services in-process over ASGI, against the session's real PostgreSQL and NATS."""

from __future__ import annotations

import datetime as dt

import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from services.settings import Settings
from services.tokens import mint

SIGNING_KEY = "test-signing-key-0123456789abcdef"


def token(role: str, **scope) -> dict[str, str]:
    """Authorization header for a token of `role` (program=..., partner=..., level=..., subject=...)."""
    t = mint(
        SIGNING_KEY,
        role=role,
        now=dt.datetime.now(dt.UTC),
        program_id=scope.get("program"),
        partner_id=scope.get("partner"),
        level=scope.get("level"),
        subject=scope.get("subject"),
    )
    return {"Authorization": f"Bearer {t}"}


@pytest.fixture(scope="session")
def settings(pg_dsn: str, nats_url: str) -> Settings:
    return Settings(database_url=pg_dsn, nats_url=nats_url, signing_key=SIGNING_KEY)


@pytest_asyncio.fixture(scope="session")
async def registration_api(settings: Settings, nc):
    from services.registration.app import bootstrap

    async with AsyncTestClient(app=bootstrap(settings)) as client:
        yield client


@pytest_asyncio.fixture(scope="session")
async def conflict_api(settings: Settings, nc):
    from services.conflict.app import bootstrap

    async with AsyncTestClient(app=bootstrap(settings)) as client:
        yield client
