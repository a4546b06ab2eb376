"""The conflict projections rebuilt statement by statement, as the live service writes them: each
registration fact through `claims_repo`, each conflict event through the live `projector`. The
in-memory replay (`services.conflict.replay`) must leave exactly the rows this leaves.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from contracts.conflict_events import DirectDealRecorded
from contracts.envelope import decode_data, encode
from contracts.registration_events import (
    OutcomeReported,
    RegistrationAmended,
    RegistrationSubmitted,
    RegistrationWithdrawn,
)
from services.conflict import claims_repo, policy_store, projector
from services.conflict.deciding import amended_claim, claim_of, submitted_claim
from services.conflict.replay import MERGED_LOGS, PROJECTIONS

# every projection row, in a stable order; `seq` only as the rank it gives (its values are not rebuilt)
TABLES = {
    "conflict.claims": "claim_id",
    "conflict.conflicts": "conflict_id",
    "conflict.policies": "program_id, version",
    "conflict.timers": "timer_id",
    "conflict.tie_groups": "group_id",
}


async def rebuild_by_statements(conn: asyncpg.Connection) -> int:
    """Empty the projections and apply every logged event with one or more statements (in the caller's
    transaction); returns the number of events."""
    await conn.execute(f"TRUNCATE {', '.join(PROJECTIONS)}")
    n = 0
    for src, name, data in await conn.fetch(MERGED_LOGS):
        event = decode_data("registration" if src == 0 else "conflict", name, data.encode())
        if src == 0:
            await _registration_fact(conn, event)
        else:
            if isinstance(event, DirectDealRecorded):
                await _direct_deal(conn, event)
            await projector.apply(conn, name, event)
        n += 1
    return n


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[dict]]:
    """Every row of every projection, `seq` replaced by its rank."""
    out = {}
    for table, key in TABLES.items():
        rows = [dict(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY {key}")]
        if rows and "seq" in rows[0]:
            rank = {r["seq"]: i for i, r in enumerate(sorted(rows, key=lambda r: r["seq"]))}
            for r in rows:
                r["seq"] = rank[r["seq"]]
        out[table] = rows
    return out


def first_difference(expected: dict[str, list[dict]], got: dict[str, list[dict]]) -> str | None:
    """Where two snapshots first differ, None when they are the same."""
    for table, rows in expected.items():
        if len(rows) != len(got[table]):
            return f"{table}: {len(rows)} rows by statements, {len(got[table])} in memory"
        for want, have in zip(rows, got[table], strict=True):
            if want != have:
                changed = {k: (v, have.get(k)) for k, v in want.items() if have.get(k) != v}
                return f"{table} row {want.get('claim_id') or want}: (statements, in memory) {changed}"
    return None


async def _registration_fact(conn: asyncpg.Connection, e) -> None:
    match e:
        case RegistrationSubmitted():
            policy, _ = await policy_store.in_force(conn, e.program_id)
            await claims_repo.insert(conn, submitted_claim(e, policy), encode(e.customer).decode())
        case RegistrationAmended():
            current = await claims_repo.load(conn, e.registration_id)
            if current is not None:
                policy, _ = await policy_store.in_force(conn, e.program_id)
                await claims_repo.update_terms(conn, amended_claim(current, e, policy))
        case RegistrationWithdrawn():
            await conn.execute("UPDATE conflict.claims SET status = 'withdrawn' WHERE claim_id = $1", e.registration_id)
        case OutcomeReported():
            await conn.execute(
                "UPDATE conflict.claims SET status = $2 WHERE claim_id = $1", e.registration_id, e.result
            )


async def _direct_deal(conn: asyncpg.Connection, e: DirectDealRecorded) -> None:
    policy, _ = await policy_store.in_force(conn, e.program_id)
    opened = dt.datetime.combine(e.opened_on, dt.time.min, tzinfo=dt.UTC)
    claim = claim_of(
        claim_id=e.direct_deal_id,
        kind="direct_deal",
        program_id=e.program_id,
        customer=e.customer,
        products=e.products,
        submitted_at=opened,
        status="open",
        policy=policy,
    )
    await claims_repo.insert(conn, claim, encode(e.customer).decode())
