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


def expiry_statement(first: int, prefix: str = "WITH ") -> str:
    """Expiry at the end of the window, and the warning `expiry_warning_days` (of the policy in force)
    before it when that is still ahead, in one statement whose parameters start at `$first`:
    program id, claim id, window end as text, window end, now, default warning days. `prefix` lets
    another statement's CTEs come first (it then ends with a comma)."""
    a, b, c, d, e, f = (f"${first + i}" for i in range(6))
    return f"""
        {prefix}warning AS (
            SELECT {d}::timestamptz - make_interval(secs => 86400 * coalesce(
                (SELECT (policy->>'expiry_warning_days')::float8 FROM conflict.policies
                 WHERE program_id = {a} ORDER BY version DESC LIMIT 1), {f})) AS at
        )
        INSERT INTO conflict.timers (timer_id, program_id, kind, ref_id, due_at)
        SELECT 'expiry:' || {b} || ':' || {c}, {a}, 'expiry', {b}, {d}
        UNION ALL
        SELECT 'expiring:' || {b} || ':' || {c}, {a}, 'expiring', {b}, warning.at FROM warning WHERE warning.at > {e}
        ON CONFLICT (timer_id) DO NOTHING
        """


def expiry_args(e: OwnershipChanged) -> tuple:
    from services.conflict.domain.policy import DEFAULT_POLICY

    assert e.valid_until is not None
    return (
        e.program_id,
        e.claim_id,
        e.valid_until.isoformat(),
        e.valid_until,
        e.at,
        float(DEFAULT_POLICY.expiry_warning_days),
    )


EXPIRY = expiry_statement(1)
_EXPIRY_FIELDS = ("program_id", "claim_id", "until_text", "until", "now", "warning_days")


def expiry_rows(many: list[tuple]) -> str:
    """The arguments of several `EXPIRY` statements as `conflict.insert_expiry_timers` (migration
    0016) takes them, which writes the same timers: a JSON array of objects."""
    return msgspec.json.encode([dict(zip(_EXPIRY_FIELDS, args, strict=True)) for args in many]).decode()


async def schedule_expiry(conn: asyncpg.Connection, e: OwnershipChanged) -> None:
    """The expiry and warning timers of an ownership window (none for an open-ended one)."""
    if e.valid_until is None:
        return
    await conn.execute(EXPIRY, *expiry_args(e))


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
