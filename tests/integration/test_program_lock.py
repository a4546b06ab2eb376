"""The program lock against a real PostgreSQL: many transactions (as many replicas would) apply
colliding submissions at once, and decisions stay one at a time per program."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid

import pytest

from contracts.common import Customer, Money
from contracts.envelope import encode, envelope
from contracts.registration_events import RegistrationSubmitted
from services.conflict import intake
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
