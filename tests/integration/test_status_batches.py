"""Statuses recorded a batch at a time record exactly what one by one records.

The same decisions of the conflict service (several for one registration, a redelivered one, one
for a registration the log does not hold, one naming the wrong program) are applied to two
databases: one per transaction with `status_flow.record_status`, and in batches of random sizes
with `status_flow.record_statuses`, as the consumer does (a batch that fails is applied again one by
one, and a poison message is left out). The registrations' events and read models must come out
the same.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid

import asyncpg
import pytest
from nats.aio.msg import Msg

from contracts.common import Customer, Money
from contracts.conflict_events import RegistrationStatusChanged
from contracts.envelope import encode, envelope
from contracts.registration_events import RegistrationSubmitted, RegistrationWithdrawn
from services.eventlog.consumer import Delivered, PoisonMessage
from services.eventlog.events import Metadata
from services.registration import repository, status_flow
from tests.conftest import unique_id
from tests.integration.scratch_database import scratch_database

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
STATUSES = ("approved", "pending_review", "rejected", "in_conflict", "approved")


def submission(program: str, n: int) -> RegistrationSubmitted:
    return RegistrationSubmitted(
        registration_id=f"reg-{program}-{n}",
        program_id=program,
        partner_id=f"partner-{n % 5}",
        partner_tier="gold",
        partner_type="reseller",
        submitted_by=f"partner-{n % 5}",
        external_ref=f"ref-{n}",
        customer=Customer(name=f"Customer {n}", country="US"),
        products=["firewall"],
        deal_type="new",
        estimated_value=Money(amount="1000", currency="USD"),
        expected_close=dt.date(2027, 3, 31),
        submitted_at=T0,
    )


def decisions(program: str, count: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    out = []
    for n in range(160):
        at = T0 + dt.timedelta(seconds=n)
        target, in_program = f"reg-{program}-{rng.randrange(count)}", program
        if n in (40, 90):
            target = f"reg-{program}-missing"
        if n == 120:
            in_program = "another-program"
        status = rng.choice(STATUSES)
        e = RegistrationStatusChanged(
            registration_id=target,
            program_id=in_program,
            partner_id="partner-0",
            status=status,
            reason=f"because {n}",
            rule=rng.choice((None, "first_to_register", "tier_precedence")),
            policy_version=1,
            protected_until=at + dt.timedelta(days=90) if status == "approved" else None,
            conflict_id=f"conflict-{n}" if status == "in_conflict" else None,
            decided_by=rng.choice((None, "ops-1")),
            decided_at=at,
        )
        ce = envelope(
            service="conflict",
            event_name=f"registration.{status}",
            event_id=str(uuid.uuid4()),
            subject=target,
            time=at,
            data=encode(e),
            program_id=program,
        )
        out.append((ce, e))
        if rng.random() < 0.1:
            out.append((ce, e))  # delivered again
    return out


async def seed(pool: asyncpg.Pool, program: str, count: int) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for n in range(count):
            state = await repository.save(
                conn, None, "registration.submitted", submission(program, n), Metadata(), uuid.UUID(int=n + 1)
            )
            if n == 3:  # a withdrawn one gets statuses too
                withdrawn = RegistrationWithdrawn(
                    registration_id=state.id,
                    program_id=program,
                    partner_id=state.partner_id,
                    withdrawn_by=state.partner_id,
                    withdrawn_at=T0,
                )
                await repository.save(conn, state, "registration.withdrawn", withdrawn, Metadata(), uuid.UUID(int=1000))


async def one_by_one(pool: asyncpg.Pool, items: list) -> int:
    poison = 0
    for ce, e in items:
        try:
            async with pool.acquire() as conn, conn.transaction():
                await status_flow.record_status(conn, ce, e)
        except PoisonMessage:
            poison += 1
    return poison


async def in_batches(pool: asyncpg.Pool, items: list, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    counts = {"batches": 0, "one_by_one": 0, "poison": 0}
    i = 0
    while i < len(items):
        chunk = items[i : i + rng.choice((2, 3, 5, 8, 13, 30))]
        i += len(chunk)
        counts["batches"] += 1
        try:
            async with pool.acquire() as conn, conn.transaction():
                await status_flow.record_statuses(
                    conn, [Delivered("test", Msg(None, subject="dealreg.conflict.p.x"), ce, e) for ce, e in chunk]
                )
        except PoisonMessage:
            counts["one_by_one"] += 1
            counts["poison"] += await one_by_one(pool, chunk)
    return counts


async def tables(conn: asyncpg.Connection) -> dict[str, list]:
    return {
        "events": [
            tuple(r)
            for r in await conn.fetch(
                "SELECT event_id, stream_id, stream_version, event_type, data::text, occurred_at, causation_id, actor"
                " FROM registration.events ORDER BY global_position"
            )
        ],
        "registrations": [
            tuple(r) for r in await conn.fetch("SELECT * FROM registration.registrations ORDER BY registration_id")
        ],
        "streams": [tuple(r) for r in await conn.fetch("SELECT * FROM registration.streams ORDER BY stream_id")],
    }


async def test_batches_record_as_one_by_one(server_dsn):
    program = unique_id("statuses")
    items = decisions(program, count=12, seed=7)
    results = []
    for batched in (False, True):
        async with scratch_database(server_dsn) as pool:
            await seed(pool, program, 12)
            if batched:
                counts = await in_batches(pool, items, seed=5)
            else:
                poison = await one_by_one(pool, items)
            async with pool.acquire() as conn:
                results.append(await tables(conn))
    sequential, batched = results
    assert poison == 3
    assert counts["poison"] == 3 and counts["one_by_one"] <= 3, counts
    assert len(sequential["events"]) == 12 + 1 + 160 - 3
    assert batched == sequential


async def test_a_status_already_on_the_stream_is_recorded_once(server_dsn):
    """Its event id derives from the source event: applied again outside the consumer's checkpoint
    (a replay, a batch and then alone), the stream does not move."""
    program = unique_id("statuses")
    (ce, e), *_ = decisions(program, count=1, seed=1)
    async with scratch_database(server_dsn) as pool:
        await seed(pool, program, 1)
        for apply in (
            lambda conn: status_flow.record_status(conn, ce, e),
            lambda conn: status_flow.record_statuses(conn, [Delivered("test", Msg(None), ce, e)] * 2),
            lambda conn: status_flow.record_status(conn, ce, e),
        ):
            async with pool.acquire() as conn, conn.transaction():
                await apply(conn)
        async with pool.acquire() as conn:
            assert await repository.STORE.stream_version(conn, repository.stream_of(e.registration_id)) == 2


_UPDATES = (
    "SELECT pg_stat_get_xact_tuples_updated('registration.registrations'::regclass),"
    " pg_stat_get_xact_tuples_hot_updated('registration.registrations'::regclass),"
    " pg_stat_get_xact_tuples_hot_updated('registration.streams'::regclass)"
)


async def test_a_status_rewrites_the_read_model_and_the_stream_head_in_place(server_dsn):
    """A status changes no indexed column of the read model or of the stream head, and their pages
    keep room for it: PostgreSQL writes a heap-only update, no index entry (0013)."""
    program = unique_id("statuses")
    items = [
        (ce, e)
        for ce, e in decisions(program, count=30, seed=3)[:40]
        if e.program_id == program and "missing" not in ce.subject
    ]
    async with scratch_database(server_dsn) as pool:
        await seed(pool, program, 30)
        hot = []
        for ce, e in items:
            async with pool.acquire() as conn, conn.transaction():
                before = await conn.fetchrow(_UPDATES)  # counts not yet flushed include earlier transactions
                await status_flow.record_status(conn, ce, e)
                after = await conn.fetchrow(_UPDATES)
                hot.append(tuple(a - b for a, b in zip(after, before, strict=True)))
    recorded = [h for h in hot if h[0]]  # a status delivered again records nothing
    assert len(recorded) > 25
    assert recorded == [(1, 1, 1)] * len(recorded)
