"""Keeps PostgreSQL's planner statistics of a service's tables current while they grow fast.

Autovacuum analyzes a table once a tenth of it has changed, but looks only once a minute
(`autovacuum_naptime`). A table that grows from nothing faster than that (a new deployment, a new
program, a bulk import, a burst) is planned for meanwhile as if it were still nearly empty, and the
plans chosen then stay cached until the next ANALYZE: the conflict service's candidate query read
all of a program's live claims instead of four small index reads, and the outbox relay read every
event from the first. This worker looks every few seconds and analyzes a table of the schema once
`200 + 10%` of its rows changed since its last analysis (autovacuum's rule, checked sooner).
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog

log = structlog.get_logger(__name__)

_STALE = """
    SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables
    WHERE schemaname = $1 AND n_mod_since_analyze > $2 + $3 * greatest(n_live_tup, 0)
    ORDER BY n_mod_since_analyze DESC
"""


class StatisticsKeeper:
    def __init__(
        self, pool: asyncpg.Pool, schema: str, every: float = 5.0, threshold: int = 200, fraction: float = 0.1
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.every = every
        self.threshold = threshold
        self.fraction = fraction
        self.analyzed = 0

    async def analyze_stale(self) -> list[str]:
        """Analyze the schema's tables that changed enough since their last analysis; their names."""
        async with self.pool.acquire() as conn:
            tables = [r[0] for r in await conn.fetch(_STALE, self.schema, self.threshold, self.fraction)]
            for table in tables:
                await conn.execute(f"ANALYZE {table}")
        self.analyzed += len(tables)
        return tables

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.analyze_stale()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the database away for a moment: look again later
                log.warning("statistics.analyze_failed", schema=self.schema, error=repr(e))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.every)
