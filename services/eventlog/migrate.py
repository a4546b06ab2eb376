"""Versioned SQL migrations, applied in order, once, under an advisory lock (replicas may race)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import asyncpg

MIGRATION_LOCK = 0x6465616C  # "deal"


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration shipped with the package, in order."""
    out = []
    folder = resources.files("services.eventlog") / "migrations"
    for entry in folder.iterdir():
        name = Path(entry.name)
        if name.suffix != ".sql":
            continue
        version = int(name.stem.split("_", 1)[0])
        out.append((version, name.stem, entry.read_text()))
    return sorted(out)


async def migrate(dsn_or_conn: str | asyncpg.Connection) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    conn = await asyncpg.connect(dsn_or_conn) if isinstance(dsn_or_conn, str) else dsn_or_conn
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS public.dealreg_migrations ("
                " name text PRIMARY KEY, version integer NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            # tracked by name, so two migrations that happen to share a number both apply
            done = {r["name"] for r in await conn.fetch("SELECT name FROM public.dealreg_migrations")}
            for version, name, sql in migration_files():
                if name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO public.dealreg_migrations (version, name) VALUES ($1, $2)", version, name
                    )
                applied.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    finally:
        if isinstance(dsn_or_conn, str):
            await conn.close()
    return applied
