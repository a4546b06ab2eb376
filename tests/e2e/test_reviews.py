"""Vendor review end to end: the queue, approve, reject, an information request the partner answers
by amending, and the review SLA applying `on_breach` (both HTTP APIs and NATS)."""

from __future__ import annotations

import pytest

from tests.conftest import unique_id
from tests.e2e.dispute_support import (
    ADMIN,
    FAST,
    authority,
    crm,
    partner,
    program_with_policy,
    register,
    shown,
)

pytestmark = pytest.mark.e2e


def review_policy(sla_hours: float = 48, on_breach: str = "approve") -> dict:
    return {"review": {"enabled": True, "sla_hours": sla_hours, "on_breach": on_breach}}


async def reviewing(registration_api, conflict_api, **policy) -> tuple[str, str]:
    program = await program_with_policy(registration_api, conflict_api, {"p1": "gold"}, **policy)
    rid = await register(registration_api, program, "p1", f"Customer {unique_id()}", f"{unique_id()}.com")
    await shown(registration_api, program, "p1", rid, status="pending_review")
    return program, rid


async def test_the_queue_lists_what_awaits_review_and_an_approval_grants_protection(registration_api, conflict_api, nc):
    program, rid = await reviewing(registration_api, conflict_api, **review_policy())
    cm = authority(program, 1, subject="cm-anna")
    queue = (await conflict_api.get(f"/v1/reviews?program_id={program}", headers=cm)).json()
    assert [i["registration_id"] for i in queue["items"]] == [rid] and queue["next_cursor"] is None
    item = queue["items"][0]
    assert item["state"] == "pending_review" and item["partner_id"] == "p1" and item["review_due_at"]

    async with crm(nc, program) as crm_:
        r = await conflict_api.post(f"/v1/reviews/{rid}", json={"action": "approve"}, headers=cm)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "approved"
        body = await shown(registration_api, program, "p1", rid, status="approved")
        assert body["status_reason"] == "review_approved" and body["protected_until"]
        assert await crm_.names(rid) == ["registration.pending_review", "registration.approved", "ownership.granted"]
    history = (await registration_api.get(f"/v1/registrations/{rid}/history", headers=partner(program, "p1"))).json()
    assert history["items"][-1]["type"] == "registration.approved"

    again = await conflict_api.post(f"/v1/reviews/{rid}", json={"action": "reject"}, headers=cm)
    assert again.status_code == 409 and again.json()["registration_status"] == "approved"
    assert (await conflict_api.get(f"/v1/reviews?program_id={program}", headers=cm)).json()["items"] == []


async def test_a_rejection_with_a_reason(registration_api, conflict_api):
    program, rid = await reviewing(registration_api, conflict_api, **review_policy())
    r = await conflict_api.post(
        f"/v1/reviews/{rid}",
        json={"action": "reject", "reason": "insufficient_information", "comment": "No named contact"},
        headers=authority(program, 2),
    )
    assert r.status_code == 200, r.text
    body = await shown(registration_api, program, "p1", rid, status="rejected")
    assert body["status_reason"] == "insufficient_information"


async def test_an_information_request_is_answered_by_amending(registration_api, conflict_api):
    program, rid = await reviewing(registration_api, conflict_api, **review_policy())
    cm = authority(program, 1)
    r = await conflict_api.post(
        f"/v1/reviews/{rid}", json={"action": "request_info", "comment": "Which sites?"}, headers=cm
    )
    assert r.status_code == 200, r.text
    body = await shown(registration_api, program, "p1", rid, status="info_requested")
    decision = (await registration_api.get(f"/v1/registrations/{rid}/decision", headers=partner(program, "p1"))).json()
    assert decision["comment"] == "Which sites?"
    waiting = (await conflict_api.get(f"/v1/reviews?program_id={program}&state=info_requested", headers=cm)).json()
    assert [i["registration_id"] for i in waiting["items"]] == [rid]

    r = await registration_api.patch(
        f"/v1/registrations/{rid}",
        json={"notes": "Austin and Dallas"},
        headers={**partner(program, "p1"), "If-Match": f'"{body["version"]}"'},
    )
    assert r.status_code == 200, r.text
    await shown(registration_api, program, "p1", rid, status="pending_review")
    r = await conflict_api.post(f"/v1/reviews/{rid}", json={"action": "approve"}, headers=cm)
    assert r.status_code == 200
    await shown(registration_api, program, "p1", rid, status="approved", status_reason="review_approved")


@pytest.mark.parametrize(
    ("on_breach", "status", "reason"),
    [("approve", "approved", "review_deemed_approved"), ("reject", "rejected", "review_rejected")],
)
async def test_the_review_sla_passing_applies_on_breach(registration_api, conflict_api, on_breach, status, reason):
    program, rid = await reviewing(registration_api, conflict_api, **review_policy(FAST, on_breach))
    await shown(registration_api, program, "p1", rid, status=status, status_reason=reason)


async def test_the_queue_pages_and_stays_in_its_program(registration_api, conflict_api):
    program = await program_with_policy(registration_api, conflict_api, {"p1": "gold"}, **review_policy())
    rids = [
        await register(registration_api, program, "p1", f"Customer {unique_id()}", f"{unique_id()}.com")
        for _ in range(3)
    ]
    for rid in rids:
        await shown(registration_api, program, "p1", rid, status="pending_review")
    cm = authority(program, 1)
    first = (await conflict_api.get(f"/v1/reviews?program_id={program}&limit=2", headers=cm)).json()
    rest = (
        await conflict_api.get(f"/v1/reviews?program_id={program}&limit=2&cursor={first['next_cursor']}", headers=cm)
    ).json()
    assert [i["registration_id"] for i in first["items"] + rest["items"]] == rids and rest["next_cursor"] is None
    own = (await conflict_api.get("/v1/reviews", headers=cm)).json()
    assert {i["program_id"] for i in own["items"]} == {program}

    stranger = authority(unique_id("prog"), 3)
    assert (await conflict_api.get(f"/v1/reviews?program_id={program}", headers=stranger)).status_code == 404
    assert (
        await conflict_api.post(f"/v1/reviews/{rids[0]}", json={"action": "approve"}, headers=stranger)
    ).status_code == 404
    assert (await conflict_api.post(f"/v1/reviews/{rids[0]}", content=b"[", headers=stranger)).status_code == 404
    assert (
        await conflict_api.post("/v1/reviews/no-such-id", json={"action": "approve"}, headers=cm)
    ).status_code == 404
    assert (
        await conflict_api.post(f"/v1/reviews/{rids[0]}", json={"action": "approve"}, headers=partner(program, "p1"))
    ).status_code == 403
    bad = await conflict_api.post(f"/v1/reviews/{rids[0]}", json={"action": "request_info"}, headers=cm)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "comment"
    bad = await conflict_api.post(f"/v1/reviews/{rids[0]}", json={"action": "maybe"}, headers=cm)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "action"
    assert (await conflict_api.get("/v1/reviews?state=approved", headers=cm)).status_code == 400

    r = await conflict_api.post(f"/v1/reviews/{rids[0]}", json={"action": "approve"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["status"] == "approved"
