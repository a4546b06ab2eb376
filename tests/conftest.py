"""Session-wide real servers: one PostgreSQL and one nats-server for the whole test run.

With `DEALREG_TEST_DATABASE_URL` / `DEALREG_TEST_NATS_URL` set, those servers are used instead
(the suite creates its own database on the PostgreSQL server, so it never touches real data).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from services.eventlog import db
from services.eventlog.jetstream import connect, ensure_streams
from services.eventlog.migrate import migrate


def unique_id(prefix: str = "t") -> str:
    """A fresh program / partner id per test, so tests never need teardown."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def server_dsn(tmp_path_factory: pytest.TempPathFactory):
    url = os.environ.get("DEALREG_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from deploy.postgres import EmbeddedPostgres

    pg = EmbeddedPostgres(Path(tmp_path_factory.mktemp("pg")) / "data")
    dsn = pg.start()
    try:
        yield dsn
    finally:
        pg.stop()


@pytest_asyncio.fixture(scope="session")
async def pg_dsn(server_dsn: str) -> str:
    """A database of the test session's own, migrated."""
    name = f"dealreg_test_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = _with_database(server_dsn, name)
    await migrate(dsn)
    return dsn


def _with_database(dsn: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory):
    url = os.environ.get("DEALREG_TEST_NATS_URL")
    if url:
        yield url
        return
    from deploy.nats import NatsServer

    server = NatsServer(Path(tmp_path_factory.mktemp("nats")))
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="session")
async def pool(pg_dsn: str):
    p = await db.create_pool(pg_dsn, min_size=2, max_size=20)
    try:
        yield p
    finally:
        await p.close()


@pytest_asyncio.fixture(scope="session")
async def nc(nats_url: str):
    client = await connect(nats_url, name="tests")
    await ensure_streams(client)
    try:
        yield client
    finally:
        await client.drain()
