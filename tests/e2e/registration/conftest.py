"""The registration service alone: its own database and nats-server for these tests.

Elsewhere in the session a conflict service may be running on the shared NATS, deciding every
registration it sees; here the tests play the conflict service themselves, so statuses, versions
and event counts are theirs to predict.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from deploy.nats import NatsServer
from services.eventlog.jetstream import connect, ensure_streams
from services.settings import Settings
from tests.e2e.conftest import SIGNING_KEY
from tests.e2e.helpers import fresh_database


@pytest.fixture(scope="session")
def registration_nats_url(tmp_path_factory: pytest.TempPathFactory):
    server = NatsServer(Path(tmp_path_factory.mktemp("registration-nats")))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="session")
async def registration_database(server_dsn: str):
    async with fresh_database(server_dsn) as (dsn, pool):
        yield dsn, pool


@pytest.fixture(scope="session")
def settings(registration_database, registration_nats_url: str) -> Settings:
    return Settings(database_url=registration_database[0], nats_url=registration_nats_url, signing_key=SIGNING_KEY)


@pytest_asyncio.fixture(scope="session")
async def pool(registration_database):
    return registration_database[1]


@pytest_asyncio.fixture(scope="session")
async def nc(registration_nats_url: str):
    client = await connect(registration_nats_url, name="registration-tests")
    await ensure_streams(client)
    try:
        yield client
    finally:
        await client.drain()


@pytest_asyncio.fixture(scope="session")
async def registration_api(settings: Settings, nc):
    from services.registration.app import bootstrap

    async with AsyncTestClient(app=bootstrap(settings)) as client:
        yield client
