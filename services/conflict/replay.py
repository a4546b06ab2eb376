"""`dealreg replay conflict`: rebuild the conflict service's projections from the logs.

The projections (claims, conflicts, policies, timers) are emptied and rebuilt from the two event
logs, merged in the order they were recorded: claims from the registration facts, everything else
from the conflict service's own events through the same projector the live service uses. The event
logs themselves are only read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

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

PROJECTIONS = ("conflict.claims", "conflict.conflicts", "conflict.policies", "conflict.timers", "conflict.tie_groups")
_MERGED = """
    SELECT src, event_type, data::text FROM (
        SELECT 0 AS src, event_type, data, recorded_at, global_position FROM registration.events
        WHERE event_type IN ('registration.submitted', 'registration.amended', 'registration.withdrawn',
                             'registration.outcome_reported')
        UNION ALL
        SELECT 1 AS src, event_type, data, recorded_at, global_position FROM conflict.events
    ) merged ORDER BY recorded_at, src, global_position
"""


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


async def rebuild(pool: asyncpg.Pool, progress: Callable[[int], None] | None = None, batch: int = 2000) -> ReplayStats:
    """Empty the projections and rebuild them from the logs in one transaction."""
    started = time.perf_counter()
    n = 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"TRUNCATE {', '.join(PROJECTIONS)}")
        async for src, name, data in conn.cursor(_MERGED, prefetch=batch):
            event = decode_data("registration" if src == 0 else "conflict", name, data.encode())
            if src == 0:
                await _registration_fact(conn, event)
            else:
                if isinstance(event, DirectDealRecorded):
                    await _direct_deal(conn, event)
                await projector.apply(conn, name, event)
            n += 1
            if progress is not None and n % 500 == 0:
                progress(500)
        if progress is not None:
            progress(n % 500)
    return ReplayStats(n, time.perf_counter() - started)


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
    import datetime as dt

    policy, _ = await policy_store.in_force(conn, e.program_id)
    opened = dt.datetime.combine(e.opened_on, dt.time.min, tzinfo=dt.UTC)
    await claims_repo.insert(
        conn,
        claim_of(
            claim_id=e.direct_deal_id,
            kind="direct_deal",
            program_id=e.program_id,
            customer=e.customer,
            products=e.products,
            submitted_at=opened,
            status="open",
            policy=policy,
        ),
        encode(e.customer).decode(),
    )
