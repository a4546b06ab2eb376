"""What PostgreSQL's client backends are doing while a phase runs, sampled from pg_stat_activity.

Ten samples a second of every other client backend's state and wait event show where commits
queue: `Lock:object` (the NOTIFY queue's lock, held through commit), `IO:WalSync` (the fsync),
`LWLock:WALWrite` (waiting for another backend's WAL flush), `Client:ClientRead` (idle in a
transaction while the service computes), or plain CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import asyncpg

_SQL = """
    SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), state
    FROM pg_stat_activity
    WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND state <> 'idle'
"""


_COMMITS = "SELECT xact_commit + xact_rollback, tup_inserted FROM pg_stat_database WHERE datname = current_database()"


class WaitSampler:
    def __init__(self, dsn: str, interval: float = 0.1) -> None:
        self.dsn = dsn
        self.interval = interval
        self.by_phase: dict[str, dict[str, float]] = {}
        self.rates: dict[str, dict[str, float]] = {}  # transactions and inserted rows per second

    @contextlib.asynccontextmanager
    async def phase(self, name: str):
        counts: Counter[str] = Counter()
        samples = 0

        async def sample() -> None:
            nonlocal samples
            conn = await asyncpg.connect(self.dsn)
            try:
                while True:
                    for event, state in await conn.fetch(_SQL):
                        counts[f"{event} ({state})"] += 1
                    samples += 1
                    await asyncio.sleep(self.interval)
            finally:
                await conn.close()

        task = asyncio.create_task(sample())
        before, started = await self._counters(), asyncio.get_running_loop().time()
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            after, wall = await self._counters(), max(asyncio.get_running_loop().time() - started, 1e-9)
            self.rates[name] = {
                "transactions_per_s": round((after[0] - before[0]) / wall, 1),
                "rows_inserted_per_s": round((after[1] - before[1]) / wall, 1),
            }
            # average number of busy backends in each wait, over the phase
            self.by_phase[name] = {k: round(v / max(samples, 1), 2) for k, v in counts.most_common(10)}

    async def _counters(self) -> tuple[int, int]:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            row = await conn.fetchrow(_COMMITS)
            return int(row[0]), int(row[1])
        finally:
            await conn.close()
