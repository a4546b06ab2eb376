"""`dealreg replay conflict`: rebuild the conflict service's projections from the logs.

The projections (claims, conflicts, policies, timers, tie groups) are emptied and rebuilt from the
two event logs, merged in the order they were recorded: claims from the registration facts,
everything else from the conflict service's own events through the same `projection_changes` the
live projector applies. The events are applied in memory (`replay_state`), with no statement per
event, and the end state is copied in with COPY, one table at a time, in the same transaction as the
emptying (COPY fires the tables' insert triggers like INSERT does). The event logs are only read.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import asyncpg

from contracts.envelope import decode_data
from services.conflict.replay_state import CLAIM_COLUMNS, ClaimRow, ReplayState
from services.conflict.replay_tables import Conflicts, Timers

PROJECTIONS = ("conflict.claims", "conflict.conflicts", "conflict.policies", "conflict.timers", "conflict.tie_groups")
REGISTRATION_FACTS = (
    "registration.submitted",
    "registration.amended",
    "registration.withdrawn",
    "registration.outcome_reported",
)
# the facts and events the projections are made of, in the order they were recorded
MERGED_LOGS = f"""
    SELECT src, event_type, data::text FROM (
        SELECT 0 AS src, event_type, data, recorded_at, global_position FROM registration.events
        WHERE event_type IN ({", ".join(f"'{t}'" for t in REGISTRATION_FACTS)})
        UNION ALL
        SELECT 1 AS src, event_type, data, recorded_at, global_position FROM conflict.events
    ) merged ORDER BY recorded_at, src, global_position
"""
_PROGRESS_EVERY = 500


@dataclass
class ReplayStats:
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def count_events(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(
        "SELECT (SELECT count(*) FROM registration.events) + (SELECT count(*) FROM conflict.events)"
    )


async def rebuild(pool: asyncpg.Pool, progress: Callable[[int], None] | None = None, batch: int = 5000) -> ReplayStats:
    """Empty the projections and rebuild them from the logs in one transaction.

    `progress` is told, every few hundred events and once at the end, how many were applied since.
    """
    started = time.perf_counter()
    with _no_cycle_collection():
        async with pool.acquire() as conn, conn.transaction():
            n = await _replay(conn, progress, batch)
    return ReplayStats(n, time.perf_counter() - started)


async def _replay(conn: asyncpg.Connection, progress: Callable[[int], None] | None, batch: int) -> int:
    state = ReplayState()  # freed on return, before the cycle collector is back
    n = 0

    def apply(rows: list[asyncpg.Record]) -> None:
        nonlocal n
        for src, name, data in rows:
            if src == 0:
                state.registration_fact(decode_data("registration", name, data))
            else:
                state.conflict_event(name, decode_data("conflict", name, data))
            n += 1
            if progress is not None and n % _PROGRESS_EVERY == 0:
                progress(_PROGRESS_EVERY)

    await conn.execute(f"TRUNCATE {', '.join(PROJECTIONS)}")
    await _each_batch(conn, batch, apply)
    await _write(conn, state)
    if progress is not None:
        progress(n % _PROGRESS_EVERY)
    return n


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The replay state only grows and holds no reference cycles: the cycle collector would rescan
    all of it again and again (a tenth to a fifth of a replay's time), for nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def _each_batch(conn: asyncpg.Connection, size: int, apply: Callable[[list[asyncpg.Record]], None]) -> None:
    """Apply the merged logs batch by batch; the server reads the next batch while this one is applied."""
    cursor = await conn.cursor(MERGED_LOGS)
    ahead = asyncio.ensure_future(cursor.fetch(size))
    try:
        while rows := await ahead:
            ahead = asyncio.ensure_future(cursor.fetch(size))
            await asyncio.sleep(0)  # the fetch goes out before the batch is applied
            apply(rows)
    finally:
        await asyncio.wait([ahead])  # never leave the connection in the middle of a fetch


async def _write(conn: asyncpg.Connection, state: ReplayState) -> None:
    """The end state, table by table; claims and conflicts in the order of their first insert, so
    that their generated `seq` orders them as inserting each when its event came would have.

    Claims go last: building them (their identities) is most of a replay's work, done while the
    server is busy with the other tables and then as COPY streams the claims to it."""
    claims = list(state.claims.values())
    building = asyncio.ensure_future(_build_meanwhile(claims))
    try:
        await _copy(conn, "policies", ("program_id", "version", "policy", "published_at"), state.policies.rows.values())
        await _copy(conn, "conflicts", Conflicts.COLUMNS, state.conflicts.records())
        await _copy(conn, "timers", Timers.COLUMNS, state.timers.rows.values())
    finally:
        building.cancel()
    await _copy(conn, "claims", CLAIM_COLUMNS, (row.record() for row in claims))


async def _copy(conn: asyncpg.Connection, table: str, columns: tuple[str, ...], records: Iterable[tuple]) -> None:
    await conn.copy_records_to_table(table, schema_name="conflict", columns=list(columns), records=records)


async def _build_meanwhile(claims: list[ClaimRow]) -> None:
    for i, row in enumerate(claims):
        try:
            row.claim()
        except Exception:
            return  # writing the row raises it again, where it is reported
        if i % 16 == 15:
            await asyncio.sleep(0)  # the other COPYs go on as soon as the server answers
