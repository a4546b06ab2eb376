"""Two conflict-service replicas on one database and one durable consumer, raced by partners
registering the same customers at once (including customers known only by a similar name): never
two owners of one customer, and every registration decided."""

from __future__ import annotations

import asyncio
import random

import pytest
from litestar.testing import AsyncTestClient

from services.conflict.app import bootstrap
from tests.e2e.conflict_helpers import deal, program_with, registration, submit, wait_for

pytestmark = pytest.mark.e2e

PARTNERS = {
    "alpha": "platinum",
    "bravo": "gold",
    "charlie": "gold",
    "delta": "silver",
    "echo": "silver",
    "foxtrot": "registered",
}
# per customer, how each partner names it; name-only customers have no domain, DUNS or tax id
CUSTOMERS: dict[str, list[dict]] = {
    "northwind": [
        {"name": n, "country": "US"}
        for n in (
            "Northwind Traders",
            "NORTHWIND TRADERS INC",
            "Northwind Traders LLC",
            "Northwind Trader",
            "northwind traders corp.",
            "Northwind Traders, Inc.",
        )
    ],
    "fabrikam": [
        {"name": n, "country": "DE"}
        for n in ("Fabrikam GmbH", "FABRIKAM", "Fabrikam AG", "Fabrikam Gmbh & Co. KG", "fabrikam", "Fabrikam G.m.b.H.")
    ],
    "contoso": [
        {"name": n, "country": "US", "domain": d}
        for n, d in (
            ("Contoso", "contoso.com"),
            ("Contoso Ltd", "https://www.contoso.com"),
            ("Contoso Pharmaceuticals", "contoso.com"),
            ("CONTOSO", "eu.contoso.com"),
            ("Contoso Group", "contoso.com/about"),
            ("Contoso", "sales@contoso.com"),
        )
    ],
    "tailspin": [
        {"name": n, "country": c, "duns": "12-345-6789"}
        for n, c in (
            ("Tailspin Toys", "US"),
            ("Tailspin", "GB"),
            ("Tailspin Toys Holdings", "US"),
            ("TST", "US"),
            ("Tailspin Toys Inc", "CA"),
            ("Tailspin", "US"),
        )
    ],
}


async def test_two_replicas_never_give_a_customer_two_owners(registration_api, settings, pool):
    api = registration_api
    program = await program_with(api, PARTNERS)
    # each replica runs the whole service: its consumer on the shared durable, its scheduler and relay
    async with AsyncTestClient(app=bootstrap(settings)), AsyncTestClient(app=bootstrap(settings)):
        submissions = [
            (customer, partner, body)
            for customer, bodies in CUSTOMERS.items()
            for partner, body in zip(PARTNERS, bodies, strict=True)
        ]
        random.Random(4).shuffle(submissions)
        ids = await asyncio.gather(
            *(
                submit(api, program, partner, {**deal(body["name"]), "customer": body})
                for _, partner, body in submissions
            )
        )
        customer_of = {rid: customer for rid, (customer, _, _) in zip(ids, submissions, strict=True)}
        partner_of = {rid: partner for rid, (_, partner, _) in zip(ids, submissions, strict=True)}

        async def all_decided():
            async with pool.acquire() as conn:
                rows = await conn.fetch("SELECT claim_id, status FROM conflict.claims WHERE program_id = $1", program)
            return rows if len(rows) == len(ids) and all(r["status"] != "pending" for r in rows) else None

        rows = await wait_for(all_decided, within=30, what="every registration decided")
    statuses = {r["claim_id"]: r["status"] for r in rows}
    for customer in CUSTOMERS:
        mine = [s for rid, s in statuses.items() if customer_of[rid] == customer]
        assert mine.count("approved") == 1, (customer, mine)
        assert set(mine) <= {"approved", "waitlisted"}, (customer, mine)

    async def partners_see_it():
        seen = {rid: (await registration(api, program, partner_of[rid], rid))["status"] for rid in ids}
        return seen if seen == statuses else None

    await wait_for(partners_see_it, within=30, what="the registration API to show every decision")
