"""The program lock against a real PostgreSQL: many transactions (as many replicas would) apply
colliding submissions at once, and decisions stay one at a time per program."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid

import pytest

from contracts.common import Customer, Money
from contracts.conflict_events import PolicyPublished
from contracts.envelope import encode, envelope
from contracts.registration_events import RegistrationSubmitted
from services.conflict import intake, policy_store
from services.conflict.domain.policy import DEFAULT_POLICY, policy_to_json
from services.conflict.recorder import lock_program
from tests.conftest import unique_id
from tests.integration.scratch_database import scratch_database

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
NAMES = {
    "northwind": (
        "Northwind Traders",
        "NORTHWIND TRADERS INC",
        "Northwind Traders LLC",
        "Northwind Trader",
        "northwind traders corp.",
        "Northwind Traders, Inc.",
    ),
    "fabrikam": ("Fabrikam GmbH", "FABRIKAM", "Fabrikam AG", "Fabrikam Gmbh & Co. KG", "fabrikam", "Fabrikam G.m.b.H."),
    "adventure": (
        "Adventure Works",
        "Adventure Works Cycles",
        "ADVENTURE WORKS",
        "Adventure-Works",
        "Adventure Works Ltd",
        "Adventure Works S.A.",
    ),
}


def submitted(program: str, partner: str, name: str, at: dt.datetime):
    rid = str(uuid.uuid4())
    e = RegistrationSubmitted(
        registration_id=rid,
        program_id=program,
        partner_id=partner,
        partner_tier="gold",
        partner_type="reseller",
        submitted_by=partner,
        customer=Customer(name=name, country="US"),
        products=["firewall"],
        deal_type="new",
        estimated_value=Money(amount="50000", currency="USD"),
        expected_close=dt.date(2027, 3, 31),
        submitted_at=at,
    )
    ce = envelope(
        service="registration",
        event_name="registration.submitted",
        event_id=str(uuid.uuid4()),
        subject=rid,
        time=at,
        data=encode(e),
        program_id=program,
    )
    return ce, e


async def test_concurrent_transactions_never_approve_two_claims_on_one_customer(server_dsn):
    programs = [unique_id("race"), unique_id("race")]
    facts, customer_of = [], {}
    for program in programs:
        for customer, names in NAMES.items():
            for i, name in enumerate(names):
                ce, e = submitted(program, f"partner-{i}", name, T0 + dt.timedelta(milliseconds=len(facts)))
                facts.append((ce, e))
                customer_of[e.registration_id] = (program, customer)
    random.Random(11).shuffle(facts)
    async with scratch_database(server_dsn) as pool:

        async def apply(ce, e) -> None:
            async with pool.acquire() as conn, conn.transaction():
                await intake.handle(conn, ce, e)

        await asyncio.gather(*(apply(ce, e) for ce, e in facts))
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT claim_id, status FROM conflict.claims")
            decisions = await conn.fetch(
                "SELECT subject, count(*) AS n FROM conflict.events WHERE event_type IN"
                " ('registration.approved', 'registration.waitlisted') GROUP BY subject"
            )
    assert len(rows) == len(facts)
    by_customer: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        by_customer.setdefault(customer_of[r["claim_id"]], []).append(r["status"])
    assert len(by_customer) == len(programs) * len(NAMES)
    for key, statuses in by_customer.items():
        assert sorted(statuses) == ["approved"] + ["waitlisted"] * (len(statuses) - 1), (key, statuses)
    assert {d["subject"]: d["n"] for d in decisions} == {r["claim_id"]: 1 for r in rows}


async def test_the_next_holder_of_the_lock_decides_with_the_policy_published_under_it(server_dsn):
    """The lock and the policy in force come in one round trip; the policy is read once the lock is
    held, so a transaction that waited for the lock sees what its holder published."""
    program = unique_id("policy")
    published = PolicyPublished(
        program_id=program, version=1, policy=policy_to_json(DEFAULT_POLICY), published_by="ops-1", published_at=T0
    )
    async with scratch_database(server_dsn) as pool, pool.acquire() as holder, pool.acquire() as waiter:
        sent: list[str] = []
        waiter.add_query_logger(lambda q: sent.append(q.query))

        async def wait_and_decide() -> tuple[int, int]:
            async with waiter.transaction():
                await lock_program(waiter, program)
                await asyncio.sleep(0)  # query loggers are called through the loop
                asked = len(sent)
                _, version = await policy_store.in_force(waiter, program)
                await asyncio.sleep(0)
                return version, len(sent) - asked

        async with holder.transaction():
            await lock_program(holder, program)
            assert (await policy_store.in_force(holder, program))[1] == 0
            waiting = asyncio.create_task(wait_and_decide())
            await asyncio.sleep(0.3)
            assert not waiting.done()  # it waits for the lock
            await policy_store.project(holder, published)
        assert await waiting == (1, 0)  # the policy published, and no round trip of its own


async def test_a_batch_is_marked_processed_and_its_program_locked_in_one_round_trip(server_dsn):
    """The intake marks a batch of one program's facts processed and takes the program's lock in one
    statement: it waits for the lock's holder, then reads the policy that one published; it returns
    the ids marked now (not one marked before), and the deciding that follows in the transaction
    sends no lock or policy query of its own."""
    program = unique_id("policy")
    published = PolicyPublished(
        program_id=program, version=1, policy=policy_to_json(DEFAULT_POLICY), published_by="ops-1", published_at=T0
    )
    ids = [str(uuid.uuid4()) for _ in range(3)]
    async with scratch_database(server_dsn) as pool, pool.acquire() as holder, pool.acquire() as waiter:
        await waiter.execute(
            "INSERT INTO conflict.processed (consumer, event_id) VALUES ($1, $2::uuid)", intake.CONSUMER, ids[0]
        )
        sent: list[str] = []
        waiter.add_query_logger(lambda q: sent.append(q.query))

        async def mark_and_decide() -> tuple[set[str], int, int]:
            async with waiter.transaction():
                fresh = await intake.mark_batch(waiter, intake.CONSUMER, ids, program)
                await asyncio.sleep(0)  # query loggers are called through the loop
                asked = len(sent)
                await lock_program(waiter, program)
                _, version = await policy_store.in_force(waiter, program)
                await asyncio.sleep(0)
                return fresh, version, len(sent) - asked

        async with holder.transaction():
            await lock_program(holder, program)
            waiting = asyncio.create_task(mark_and_decide())
            await asyncio.sleep(0.3)
            assert not waiting.done()  # it waits for the lock
            await policy_store.project(holder, published)
        assert await waiting == (set(ids[1:]), 1, 0)
        marked = await waiter.fetchval(
            "SELECT count(*) FROM conflict.processed WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
            intake.CONSUMER,
            ids,
        )
        assert marked == 3
        async with waiter.transaction():  # a program without a policy: the default
            assert await intake.mark_batch(waiter, intake.CONSUMER, ids, unique_id("policy")) == set()  # all marked
            other = unique_id("policy")
            assert await intake.mark_batch(waiter, intake.CONSUMER, [str(uuid.uuid4())], other) != set()
            assert await policy_store.in_force(waiter, other) == (DEFAULT_POLICY, 0)
