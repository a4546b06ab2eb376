"""The rules end to end (SPEC section 8): eligibility, tie groups with first_to_register and
tier_precedence, incumbency on renewals, and a win closing the opportunity for the waitlist."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conflict_helpers import deal, partner, program_with, registration, settled, submit, wait_for

pytestmark = pytest.mark.e2e

TIE = 0.02  # minutes: a 1.2 s tie window


async def decision(api, program: str, partner_id: str, rid: str) -> dict:
    r = await api.get(f"/v1/registrations/{rid}/decision", headers=partner(program, partner_id))
    assert r.status_code == 200, r.text
    return r.json()


async def test_eligibility_rejects_without_a_conflict(registration_api, conflict_api, pool):
    api = registration_api
    policy = {
        "minimum_value": {"amount": "10000", "currency": "USD"},
        "fx": {"base": "USD", "rates": {"EUR": "1.08", "GBP": "1.27"}},
        "products": ["firewall", "support", "cloud"],
    }
    program = await program_with(api, {"p1": "gold"}, conflict_api, policy)

    def priced(name: str, amount: str, currency: str, products=("firewall",)) -> dict:
        return deal(name, f"{name.lower()}.com", products, estimated_value={"amount": amount, "currency": currency})

    cases = [
        ("below_minimum_value", priced("Small", "9999.99", "USD")),
        ("below_minimum_value", priced("Euro", "9000", "EUR")),  # 9,720 USD
        ("currency_not_supported", priced("Yen", "5000000", "JPY")),
        ("product_not_in_program", priced("Toaster", "50000", "USD", ("firewall", "toaster"))),
        ("no_collision", priced("Converted", "9300", "EUR")),  # 10,044 USD
    ]
    ids = [(reason, await submit(api, program, "p1", body)) for reason, body in cases]
    for reason, rid in ids:
        doc = await settled(api, program, "p1", rid)
        expected = "approved" if reason == "no_collision" else "rejected"
        assert (doc["status"], doc["status_reason"]) == (expected, reason), (reason, doc)
        explained = await decision(api, program, "p1", rid)
        assert explained["policy_version"] == 1
        assert explained["rule"] == (None if reason == "no_collision" else "eligibility")
    async with pool.acquire() as conn:
        opened = await conn.fetchval("SELECT count(*) FROM conflict.conflicts WHERE program_id = $1", program)
    assert opened == 0


async def test_within_the_tie_window_the_higher_tier_wins(registration_api, conflict_api):
    api = registration_api
    program = await program_with(
        api,
        {"silver1": "silver", "gold1": "gold"},
        conflict_api,
        {"tie_window_minutes": TIE, "tiers": ["platinum", "gold", "silver"]},
    )
    # the silver partner registers first, but within the window
    lower = await submit(api, program, "silver1", deal("Initech", "initech.com"))
    higher = await submit(api, program, "gold1", deal("INITECH Inc.", "https://www.initech.com"))
    won = await settled(api, program, "gold1", higher)
    lost = await settled(api, program, "silver1", lower)
    assert (won["status"], won["status_reason"]) == ("approved", "tier_precedence")
    assert (lost["status"], lost["status_reason"]) == ("waitlisted", "tier_precedence")
    assert lost["protected_until"] == won["protected_until"]
    assert (await decision(api, program, "silver1", lower))["rule"] == "tier_precedence"


async def test_after_the_tie_window_the_first_to_register_wins(registration_api, conflict_api):
    api = registration_api
    # review keeps the first claim open (pending_review) so that the rules, not protection, decide
    policy = {
        "tie_window_minutes": TIE,
        "tiers": ["platinum", "gold", "silver"],
        "review": {
            "enabled": True,
            "auto_approve_below": {"amount": "1000", "currency": "USD"},
            "auto_approve_tiers": [],
            "sla_hours": 48,
            "on_breach": "approve",
        },
    }
    program = await program_with(api, {"early": "silver", "late": "platinum"}, conflict_api, policy)
    first = await submit(api, program, "early", deal("Hooli", "hooli.com"))
    assert (await settled(api, program, "early", first))["status"] == "pending_review"
    second = await submit(api, program, "late", deal("Hooli", "hooli.com"))
    lost = await settled(api, program, "late", second)
    assert (lost["status"], lost["status_reason"]) == ("waitlisted", "first_to_register")
    assert (await registration(api, program, "early", first))["status"] == "pending_review"


async def test_on_a_renewal_the_incumbent_wins(registration_api, conflict_api, pool):
    api = registration_api
    program = await program_with(
        api,
        {"incumbent": "silver", "rival": "platinum"},
        conflict_api,
        {"tie_window_minutes": TIE, "tiers": ["platinum", "gold", "silver"]},
    )
    first = await submit(api, program, "incumbent", deal("Soylent", "soylent.com"))
    await settled(api, program, "incumbent", first, "approved")
    r = await api.post(
        f"/v1/registrations/{first}/outcome",
        json={"result": "won", "closed_on": "2026-10-01"},
        headers=partner(program, "incumbent"),
    )
    assert r.status_code == 200, r.text

    async def closed():
        async with pool.acquire() as conn:
            return await conn.fetchval("SELECT status = 'won' FROM conflict.claims WHERE claim_id = $1", first)

    await wait_for(closed, what="the win to reach the conflict service")
    renewal = {"deal_type": "renewal"}
    challenger, incumbent = await asyncio.gather(
        submit(api, program, "rival", deal("Soylent Corp", "soylent.com", **renewal)),
        submit(api, program, "incumbent", deal("Soylent", "soylent.com", **renewal)),
    )
    won = await settled(api, program, "incumbent", incumbent)
    lost = await settled(api, program, "rival", challenger)
    assert (won["status"], won["status_reason"]) == ("approved", "incumbent_partner")
    assert (lost["status"], lost["status_reason"]) == ("waitlisted", "incumbent_partner")


async def test_a_win_closes_the_opportunity_for_the_waitlist(registration_api, conflict_api):
    api = registration_api
    program = await program_with(api, {"p1": "gold", "p2": "gold", "p3": "gold"}, conflict_api, {})
    holder = await submit(api, program, "p1", deal("Wonka", "wonka.com", ("firewall", "support")))
    await settled(api, program, "p1", holder, "approved")
    waiting = await submit(api, program, "p2", deal("Wonka Industries", "wonka.com", ("support",)))
    await settled(api, program, "p2", waiting, "waitlisted")
    elsewhere = await submit(api, program, "p3", deal("Wonka", "wonka.com", ("cloud",)))
    await settled(api, program, "p3", elsewhere, "approved")  # no product in common: no collision
    r = await api.post(
        f"/v1/registrations/{holder}/outcome",
        json={"result": "won", "closed_on": "2026-10-01"},
        headers=partner(program, "p1"),
    )
    assert r.status_code == 200, r.text
    closed = await settled(api, program, "p2", waiting, "rejected")
    assert closed["status_reason"] == "opportunity_closed"
    assert (await registration(api, program, "p1", holder))["status"] == "won"
    assert (await registration(api, program, "p3", elsewhere))["status"] == "approved"
