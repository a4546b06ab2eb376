"""Durable timers: rows that survive restarts, fired by the scheduler within a second of due.

A timer fires at most once: the scheduler takes due rows with FOR UPDATE SKIP LOCKED (so replicas
share the work), applies the firing and deletes the row in the same transaction. The events a
firing appends carry the timer's due time, not the wall clock, so a replay decides the same.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from contracts.conflict_events import OwnershipChanged


@dataclass(frozen=True, slots=True)
class Timer:
    timer_id: str
    program_id: str
    kind: str
    ref_id: str
    due_at: dt.datetime
    payload: dict[str, Any]


async def schedule(
    conn: asyncpg.Connection,
    timer_id: str,
    program_id: str,
    kind: str,
    ref_id: str,
    due_at: dt.datetime,
    payload: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO conflict.timers (timer_id, program_id, kind, ref_id, due_at, payload)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (timer_id) DO NOTHING",
        timer_id,
        program_id,
        kind,
        ref_id,
        due_at,
        msgspec.json.encode(payload or {}).decode(),
    )


async def cancel(conn: asyncpg.Connection, ref_id: str, kind: str) -> None:
    await conn.execute("DELETE FROM conflict.timers WHERE ref_id = $1 AND kind = $2", ref_id, kind)


async def schedule_expiry(conn: asyncpg.Connection, e: OwnershipChanged) -> None:
    """Expiry at the end of the window, and the warning `expiry_warning_days` (of the policy in force)
    before it when that is still ahead: one statement."""
    if e.valid_until is None:
        return
    from services.conflict.domain.policy import DEFAULT_POLICY

    until = e.valid_until.isoformat()
    await conn.execute(
        """
        WITH warning AS (
            SELECT $4::timestamptz - make_interval(secs => 86400 * coalesce(
                (SELECT (policy->>'expiry_warning_days')::float8 FROM conflict.policies
                 WHERE program_id = $1 ORDER BY version DESC LIMIT 1), $6)) AS at
        )
        INSERT INTO conflict.timers (timer_id, program_id, kind, ref_id, due_at)
        SELECT 'expiry:' || $2 || ':' || $3, $1, 'expiry', $2, $4
        UNION ALL
        SELECT 'expiring:' || $2 || ':' || $3, $1, 'expiring', $2, warning.at FROM warning WHERE warning.at > $5
        ON CONFLICT (timer_id) DO NOTHING
        """,
        e.program_id,
        e.claim_id,
        until,
        e.valid_until,
        e.at,
        float(DEFAULT_POLICY.expiry_warning_days),
    )


async def take_due(conn: asyncpg.Connection, now: dt.datetime, limit: int = 50) -> list[Timer]:
    """Due timers, locked for this transaction; call inside a transaction and delete what you fire."""
    rows = await conn.fetch(
        "SELECT timer_id, program_id, kind, ref_id, due_at, payload::text FROM conflict.timers"
        " WHERE due_at <= $1 ORDER BY due_at, timer_id LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [Timer(r[0], r[1], r[2], r[3], r[4], msgspec.json.decode(r[5])) for r in rows]


async def done(conn: asyncpg.Connection, timer_id: str) -> None:
    await conn.execute("DELETE FROM conflict.timers WHERE timer_id = $1", timer_id)


async def next_due(conn: asyncpg.Connection) -> dt.datetime | None:
    return await conn.fetchval("SELECT min(due_at) FROM conflict.timers")
