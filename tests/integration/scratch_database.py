"""A database of one test's own on the session's PostgreSQL server, for work that must not see (or
be seen by) the services running on the shared test database."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services.eventlog import db
from services.eventlog.migrate import migrate


@contextlib.asynccontextmanager
async def scratch_database(server_dsn: str, max_size: int = 10) -> AsyncIterator[asyncpg.Pool]:
    """A new, migrated database and a pool on it."""
    name = f"dealreg_scratch_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))
    await migrate(dsn)
    pool = await db.create_pool(dsn, min_size=1, max_size=max_size)
    try:
        yield pool
    finally:
        await pool.close()
