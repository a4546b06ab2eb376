"""Disputes end to end, as partner portals, authorities and a CRM see them: a tie escalating on its
SLAs and defaulting, decisions and decision rights, and appeals (both HTTP APIs and NATS)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.e2e.dispute_support import (
    ADMIN,
    FAST,
    authority,
    crm,
    escalation,
    partner,
    program_with_policy,
    register,
    shown,
    tie,
)

pytestmark = pytest.mark.e2e
TIE = {"tie_window_minutes": 0.05}  # 3 s: both registrations land in one tie group
SLOW = escalation(48, 72, 120)


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_a_tie_escalates_on_each_breach_and_then_defaults(registration_api, conflict_api, nc, pool):
    program = await program_with_policy(
        registration_api,
        conflict_api,
        {"p1": "gold", "p2": "gold"},
        **TIE,
        escalation=escalation(FAST, FAST, FAST),
        on_final_breach="first_to_register",
    )
    async with crm(nc, program) as crm_:
        first, second, cid = await tie(registration_api, crm_, program)
        await shown(registration_api, program, "p2", second, status="under_review")
        resolved = (await crm_.wait("conflict.resolved", deadline=20))[0]
        assert (resolved["outcome"], resolved["winner"], resolved["reason"], resolved["level"]) == (
            "award",
            first,
            "sla_default",
            3,
        )
        ups = await crm_.wait("conflict.escalated", count=3)
        breaches = await crm_.wait("sla.breached", count=3)
        assert [e["level"] for e in ups] == [1, 2, 3] and [b.get("level", 1) for b in breaches] == [
            1,
            2,
            3,
        ]  # level 1 is the default
        for up, breach in zip(ups, breaches, strict=True):
            assert breach["due_at"] == breach["breached_at"] == up["due_at"]
        for breach, up in zip(breaches[:2], ups[1:], strict=True):
            assert when(up["escalated_at"]) == when(breach["breached_at"])
            assert when(up["due_at"]) - when(up["escalated_at"]) == dt.timedelta(seconds=1.8)
        assert resolved["resolved_at"] == breaches[-1]["breached_at"]
        assert (await crm_.names(cid)).count("sla.breached") == 3
    await shown(registration_api, program, "p1", first, status="approved", status_reason="sla_default")
    await shown(registration_api, program, "p2", second, status="rejected", status_reason="sla_default")
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT occurred_at, recorded_at FROM conflict.events WHERE program_id = $1"
            " AND event_type = 'sla.breached'",
            program,
        )
    assert len(rows) == 3  # each deadline fired once
    assert all(r["recorded_at"] - r["occurred_at"] < dt.timedelta(seconds=1) for r in rows)  # within a second


async def disputed(registration_api, conflict_api, nc, **policy):
    program = await program_with_policy(
        registration_api, conflict_api, {"p1": "gold", "p2": "gold"}, **{**TIE, "escalation": SLOW, **policy}
    )
    async with crm(nc, program) as crm_:
        first, second, cid = await tie(registration_api, crm_, program)
    await shown(registration_api, program, "p1", first, status="under_review")
    await shown(registration_api, program, "p2", second, status="under_review")
    return program, first, second, cid


async def test_an_award(registration_api, conflict_api, nc):
    program, first, second, cid = await disputed(registration_api, conflict_api, nc)
    async with crm(nc, program) as crm_:
        r = await conflict_api.post(
            f"/v1/conflicts/{cid}/decision",
            json={"outcome": "award", "winner": second, "rationale": "p2 sourced it"},
            headers=authority(program, 1, subject="cm-anna"),
        )
        assert r.status_code == 200, r.text
        assert r.json()["decision"]["winner"] == second
        resolved = (await crm_.wait("conflict.resolved"))[0]
        assert (resolved["decided_by"], resolved["reason"], resolved["level"]) == ("cm-anna", "authority_decision", 1)
        await crm_.wait("ownership.granted", lambda d: d["claim_id"] == second)
    won = await shown(registration_api, program, "p2", second, status="approved", status_reason="authority_decision")
    assert won["protected_until"] and won["attribution_percent"] is None
    await shown(registration_api, program, "p1", first, status="rejected", status_reason="authority_decision")


async def test_a_split(registration_api, conflict_api, nc):
    program, first, second, cid = await disputed(registration_api, conflict_api, nc)
    r = await conflict_api.post(
        f"/v1/conflicts/{cid}/decision",
        headers=ADMIN,
        json={
            "outcome": "split",
            "shares": [{"claim_id": first, "percent": 70}, {"claim_id": second, "percent": 30}],
            "rationale": "joint pursuit",
        },
    )
    assert r.status_code == 200, r.text
    one = await shown(registration_api, program, "p1", first, status="approved", attribution_percent=70)
    two = await shown(registration_api, program, "p2", second, status="approved", attribution_percent=30)
    assert one["protected_until"] == two["protected_until"]  # one joint window


async def test_decision_rights_and_validation(registration_api, conflict_api, nc):
    program = await program_with_policy(
        registration_api, conflict_api, {"p1": "gold", "p2": "gold"}, **TIE, escalation=escalation(FAST, 48, 48)
    )
    async with crm(nc, program) as crm_:
        first, second, cid = await tie(registration_api, crm_, program)
        await crm_.wait("conflict.escalated", lambda d: d["level"] == 2)
    url = f"/v1/conflicts/{cid}/decision"
    award = {"outcome": "award", "winner": first, "rationale": "first contact"}

    low = await conflict_api.post(url, json=award, headers=authority(program, 1))
    assert low.status_code == 403
    assert (await conflict_api.post(url, json=award, headers=partner(program, "p1"))).status_code == 403
    assert (await conflict_api.post(url, json=award, headers=authority("elsewhere", 3))).status_code == 404
    assert (await conflict_api.post(url, content=b"{", headers=authority("elsewhere", 3))).status_code == 404
    assert (await conflict_api.post(url, content=b"{", headers=ADMIN)).status_code == 400
    assert (await conflict_api.post("/v1/conflicts/nope/decision", json=award, headers=ADMIN)).status_code == 404

    rd = authority(program, 2)
    cases = [
        ({"outcome": "award", "rationale": "x"}, "winner"),
        ({"outcome": "award", "winner": "not-a-claim", "rationale": "x"}, "winner"),
        (
            {
                "outcome": "split",
                "rationale": "x",
                "shares": [{"claim_id": first, "percent": 60}, {"claim_id": second, "percent": 30}],
            },
            "shares",
        ),
        (
            {
                "outcome": "split",
                "rationale": "x",
                "shares": [{"claim_id": first, "percent": 100}, {"claim_id": "not-a-claim", "percent": 0}],
            },
            "shares[1].claim_id",
        ),
        (
            {
                "outcome": "split",
                "rationale": "x",
                "shares": [{"claim_id": first, "percent": 50.5}, {"claim_id": second, "percent": 49.5}],
            },
            "shares[0].percent",
        ),
        ({"outcome": "settle", "rationale": "x"}, "outcome"),
        ({"outcome": "reject_all"}, "rationale"),
    ]
    for body, field in cases:
        r = await conflict_api.post(url, json=body, headers=rd)
        assert r.status_code == 422, (body, r.text)
        assert field in [e["field"] for e in r.json()["errors"]], (body, r.json())

    r = await conflict_api.post(url, json={"outcome": "reject_all", "rationale": "neither qualified"}, headers=rd)
    assert r.status_code == 200, r.text
    again = await conflict_api.post(url, json=award, headers=ADMIN)
    assert again.status_code == 409
    await shown(registration_api, program, "p1", first, status="rejected", status_reason="authority_decision")
    await shown(registration_api, program, "p2", second, status="rejected", status_reason="authority_decision")


# --- appeals ------------------------------------------------------------------------------------


async def appeal(registration_api, program: str, partner_id: str, rid: str) -> None:
    r = await registration_api.post(
        f"/v1/registrations/{rid}/appeal", json={"reason": "we met them first"}, headers=partner(program, partner_id)
    )
    assert r.status_code == 200, r.text


async def test_an_appeal_of_a_decision_reopens_the_conflict_one_level_above(registration_api, conflict_api, nc, pool):
    program, first, second, cid = await disputed(registration_api, conflict_api, nc)
    r = await conflict_api.post(
        f"/v1/conflicts/{cid}/decision",
        headers=authority(program, 1),
        json={"outcome": "award", "winner": first, "rationale": "first contact"},
    )
    assert r.status_code == 200, r.text
    held = await shown(registration_api, program, "p1", first, status="approved")
    await shown(registration_api, program, "p2", second, status="rejected")

    async with crm(nc, program) as crm_:
        await appeal(registration_api, program, "p2", second)
        reopened = (await crm_.wait("conflict.reopened"))[0]
        assert (reopened["appealed_registration_id"], reopened["level"]) == (second, 2)
        up = (await crm_.wait("conflict.escalated", lambda d: d["level"] == 2))[0]
        assert up["authority_role"] == "regional_director" and up["due_at"]
        await shown(registration_api, program, "p2", second, status="under_review")
        still = await shown(registration_api, program, "p1", first, status="approved")
        assert still["protected_until"] == held["protected_until"]  # the holder keeps it meanwhile

        low = await conflict_api.post(
            f"/v1/conflicts/{cid}/decision",
            headers=authority(program, 1),
            json={"outcome": "award", "winner": second, "rationale": "x"},
        )
        assert low.status_code == 403
        r = await conflict_api.post(
            f"/v1/conflicts/{cid}/decision",
            headers=authority(program, 2),
            json={"outcome": "award", "winner": second, "rationale": "p2 had the RFP"},
        )
        assert r.status_code == 200, r.text
        await crm_.wait("ownership.released", lambda d: d["claim_id"] == first)
    await shown(registration_api, program, "p2", second, status="approved", status_reason="authority_decision")
    await shown(registration_api, program, "p1", first, status="rejected", status_reason="authority_decision")
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT claim_id, decided_by, decided_level, appeals FROM conflict.claims WHERE claim_id = ANY($1::text[])",
            [first, second],
        )
    assert {r["claim_id"]: tuple(r)[1:] for r in rows} == {first: ("conflict", 2, 0), second: ("conflict", 2, 1)}


async def test_an_appeal_of_a_rule_opens_a_conflict_with_the_holder(registration_api, conflict_api, nc):
    program = await program_with_policy(registration_api, conflict_api, {"p1": "gold", "p2": "gold"}, escalation=SLOW)
    holder = await register(registration_api, program, "p1")
    await shown(registration_api, program, "p1", holder, status="approved")
    late = await register(registration_api, program, "p2", "ACME Corp.", "www.acme.com")
    await shown(registration_api, program, "p2", late, status="waitlisted", status_reason="protected_by_other_claim")
    async with crm(nc, program) as crm_:
        await appeal(registration_api, program, "p2", late)
        opened = (await crm_.wait("conflict.opened"))[0]
        assert opened["cause"] == "appeal" and {c["claim_id"] for c in opened["claims"]} == {holder, late}
        assert (await crm_.wait("conflict.escalated"))[0]["level"] == 1
    await shown(registration_api, program, "p2", late, status="under_review")
    await shown(registration_api, program, "p1", holder, status="approved")
    r = await conflict_api.post(
        f"/v1/conflicts/{opened['conflict_id']}/decision",
        headers=authority(program, 1),
        json={"outcome": "award", "winner": holder, "rationale": "protection stands"},
    )
    assert r.status_code == 200, r.text
    await shown(registration_api, program, "p2", late, status="rejected", status_reason="authority_decision")
    await shown(registration_api, program, "p1", holder, status="approved", status_reason="authority_decision")


async def refused(registration_api, program: str, partner_id: str, rid: str, reason: str, status: str) -> None:
    await appeal(registration_api, program, partner_id, rid)
    body = await shown(registration_api, program, partner_id, rid, status_reason=reason)
    assert body["status"] == status  # a refusal changes the reason, not the status


async def test_an_eligibility_rejection_is_not_appealable(registration_api, conflict_api):
    program = await program_with_policy(
        registration_api, conflict_api, {"p1": "gold"}, minimum_value={"amount": "100000", "currency": "USD"}
    )
    rid = await register(registration_api, program, "p1")
    await shown(registration_api, program, "p1", rid, status="rejected", status_reason="below_minimum_value")
    await refused(registration_api, program, "p1", rid, "not_appealable", "rejected")


async def test_a_decision_at_the_last_level_is_not_appealable(registration_api, conflict_api, nc):
    program, first, second, cid = await disputed(registration_api, conflict_api, nc, escalation=escalation(48))
    r = await conflict_api.post(
        f"/v1/conflicts/{cid}/decision",
        headers=authority(program, 1),
        json={"outcome": "award", "winner": first, "rationale": "first contact"},
    )
    assert r.status_code == 200, r.text
    await shown(registration_api, program, "p2", second, status="rejected")
    await refused(registration_api, program, "p2", second, "not_appealable", "rejected")


@pytest.mark.parametrize(
    ("appeal_policy", "reason"),
    [
        ({"window_days": 0, "max_appeals": 1}, "appeal_window_closed"),
        ({"window_days": 10, "max_appeals": 0}, "appeal_limit_reached"),
    ],
)
async def test_appeals_out_of_time_or_over_the_limit_are_refused(registration_api, conflict_api, appeal_policy, reason):
    program = await program_with_policy(
        registration_api, conflict_api, {"p1": "gold", "p2": "gold"}, appeal=appeal_policy
    )
    holder = await register(registration_api, program, "p1")
    await shown(registration_api, program, "p1", holder, status="approved")
    late = await register(registration_api, program, "p2")
    await shown(registration_api, program, "p2", late, status="waitlisted")
    await refused(registration_api, program, "p2", late, reason, "waitlisted")


async def test_a_second_appeal_over_the_limit_is_refused(registration_api, conflict_api, nc):
    program, first, second, cid = await disputed(registration_api, conflict_api, nc)
    decision = {"outcome": "award", "winner": first, "rationale": "first contact"}
    assert (await conflict_api.post(f"/v1/conflicts/{cid}/decision", headers=ADMIN, json=decision)).status_code == 200
    await shown(registration_api, program, "p2", second, status="rejected")
    await appeal(registration_api, program, "p2", second)
    await shown(registration_api, program, "p2", second, status="under_review")
    assert (await conflict_api.post(f"/v1/conflicts/{cid}/decision", headers=ADMIN, json=decision)).status_code == 200
    await shown(registration_api, program, "p2", second, status="rejected")
    await refused(registration_api, program, "p2", second, "appeal_limit_reached", "rejected")
