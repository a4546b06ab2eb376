"""Keeps PostgreSQL's planner statistics of a service's tables current while they grow fast.

Autovacuum analyzes a table once a tenth of it has changed, but looks only once a minute
(`autovacuum_naptime`). A table that grows from nothing faster than that (a new deployment, a new
program, a bulk import, a burst) is planned for meanwhile as if it were still nearly empty, and the
plans chosen then stay cached until the next ANALYZE: the conflict service's candidate query read
all of a program's live claims instead of four small index reads, and the outbox relay read every
event from the first. This worker looks every second and analyzes a table of the schema once
more rows changed since its last analysis than that analysis counted (`200 + reltuples`): once the
table has doubled. Between doublings the planner's estimates stay within a factor of two (it scales
the counted rows by the table's current pages), and autovacuum keeps its own tenth-a-minute rule.
A tenth was this worker's rule before: on a table growing by a thousand rows a second it meant an
ANALYZE of half a second's CPU every few seconds per table, half of the server's statement time
at moderate load in the benchmark, for plans that did not change.

Doubling bounds the ANALYZEs (about a dozen on the way to a million rows), however often the worker
looks, so it looks every second (a catalog query). Until a new table's first ANALYZE its plans are
made as for an empty table: the candidate query then read the program's claims through the name
index, 400-900 buffers a call at 1,000 registrations a second, for up to the 5 s this worker used
to wait between looks.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog

log = structlog.get_logger(__name__)

# reltuples: the rows the last ANALYZE (or VACUUM) counted; -1 when the table was never analyzed
_STALE = """
    SELECT format('%I.%I', s.schemaname, s.relname)
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.schemaname = $1 AND s.n_mod_since_analyze > $2 + $3 * greatest(c.reltuples, 0)
    ORDER BY s.n_mod_since_analyze DESC
"""


class StatisticsKeeper:
    def __init__(
        self, pool: asyncpg.Pool, schema: str, every: float = 1.0, threshold: int = 200, fraction: float = 1.0
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
