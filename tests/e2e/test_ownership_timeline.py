"""Ownership timelines end to end, with policy windows of seconds: extensions granted and refused,
the expiry warning, expiry handing the customer to the waitlist, and who held a customer when."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from tests.e2e.conflict_helpers import deal, partner, program_with, registration, settled, submit, wait_for
from tests.e2e.conftest import token

pytestmark = pytest.mark.e2e

DAY = 86400.0


def parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def rfc3339(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


async def reason_becomes(api, program: str, partner_id: str, rid: str, reason: str) -> dict:
    async def check():
        doc = await registration(api, program, partner_id, rid)
        return doc if doc["status_reason"] == reason else None

    return await wait_for(check, what=f"{rid} to show {reason}")


async def test_extensions_are_granted_in_the_window_up_to_the_limit(registration_api, conflict_api):
    api = registration_api
    policy = {
        "protection_days": 9 / DAY,
        "expiry_warning_days": 1 / DAY,
        "extension": {"days": 9 / DAY, "max_extensions": 1, "request_window_days": 4 / DAY},
    }
    program = await program_with(api, {"p1": "gold"}, conflict_api, policy)
    rid = await submit(api, program, "p1", deal("Umbrella Corp", "umbrella.example"))
    approved = await settled(api, program, "p1", rid, "approved")
    until = parse(approved["protected_until"])
    ask = f"/v1/registrations/{rid}/extension"
    headers = partner(program, "p1")

    assert (await api.post(ask, json={"reason": "early"}, headers=headers)).status_code == 200
    refused = await reason_becomes(api, program, "p1", rid, "extension_too_early")
    assert refused["status"] == "approved" and parse(refused["protected_until"]) == until

    await asyncio.sleep(max(0.0, (until - dt.timedelta(seconds=3.5) - dt.datetime.now(dt.UTC)).total_seconds()))
    assert (await api.post(ask, json={"reason": "in the window"}, headers=headers)).status_code == 200
    granted = await reason_becomes(api, program, "p1", rid, "extension_granted")
    assert granted["status"] == "approved"
    assert parse(granted["protected_until"]) == until + dt.timedelta(seconds=9)

    assert (await api.post(ask, json={"reason": "once more"}, headers=headers)).status_code == 200
    limited = await reason_becomes(api, program, "p1", rid, "extension_limit_reached")
    assert parse(limited["protected_until"]) == until + dt.timedelta(seconds=9)
    explained = (await api.get(f"/v1/registrations/{rid}/decision", headers=headers)).json()
    assert explained["reason"] == "extension_limit_reached"


async def test_expiry_warns_then_hands_the_customer_to_the_waitlist(registration_api, conflict_api, nc):
    api = registration_api
    policy = {"protection_days": 6 / DAY, "expiry_warning_days": 2.5 / DAY}
    program = await program_with(api, {"p1": "gold", "p2": "gold"}, conflict_api, policy)
    crm = await nc.jetstream().subscribe(f"dealreg.conflict.{program}.>", ordered_consumer=True)
    first = await submit(api, program, "p1", deal("Stark Industries", "stark.com"))
    held = await settled(api, program, "p1", first, "approved")
    second = await submit(api, program, "p2", deal("Stark Industries Inc", "www.stark.com"))
    await settled(api, program, "p2", second, "waitlisted")

    expired = await settled(api, program, "p1", first, "expired", within=15)
    assert expired["status_reason"] == "protection_expired"
    promoted = await settled(api, program, "p2", second, "approved")
    assert promoted["status_reason"] == "no_collision"

    events: list[dict] = []

    async def crm_saw_promotion():
        try:
            while True:
                events.append(json.loads((await crm.next_msg(timeout=0.2)).data))
        except Exception:
            pass
        return any(e["subject"] == second and e["type"] == "io.dealreg.ownership.granted.v1" for e in events)

    await wait_for(crm_saw_promotion, what="the waitlisted claim's grant on NATS")
    await crm.unsubscribe()
    of_first = [(e["type"].removeprefix("io.dealreg.").removesuffix(".v1"), e) for e in events if e["subject"] == first]
    assert [name for name, _ in of_first] == [
        "registration.approved",
        "ownership.granted",
        "ownership.expiring",
        "registration.expired",
        "ownership.released",
    ]
    warned_at = parse(of_first[2][1]["time"])
    assert warned_at == parse(held["protected_until"]) - dt.timedelta(seconds=2.5)
    assert parse(of_first[3][1]["time"]) == parse(held["protected_until"])


async def test_ownership_at_an_instant(registration_api, conflict_api):
    api = registration_api
    program = await program_with(api, {"p1": "gold", "p2": "gold"}, conflict_api, {})
    ops = token("ops", program=program)
    rid = await submit(api, program, "p1", deal("Wayne Enterprises", "wayneenterprises.com", ("firewall", "cloud")))
    held = await settled(api, program, "p1", rid, "approved")
    await asyncio.sleep(0.05)
    inside = dt.datetime.now(dt.UTC)
    await asyncio.sleep(0.05)
    assert (await api.post(f"/v1/registrations/{rid}/withdraw", headers=partner(program, "p1"))).status_code == 200

    async def released():
        r = await conflict_api.get(
            "/v1/ownership",
            headers=ops,
            params={
                "program_id": program,
                "domain": "https://wayneenterprises.com",
                "at": rfc3339(dt.datetime.now(dt.UTC)),
            },
        )
        assert r.status_code == 200, r.text
        return r.json()["items"] == []

    await wait_for(released, what="the hold to end on withdrawal")
    r = await conflict_api.get(
        "/v1/ownership",
        headers=ops,
        params={"program_id": program, "domain": "wayneenterprises.com", "at": rfc3339(inside)},
    )
    [item] = r.json()["items"]
    assert item["claim_id"] == item["registration_id"] == rid
    assert (item["kind"], item["partner_id"], item["products"]) == ("registration", "p1", ["firewall", "cloud"])
    assert parse(item["from"]) <= inside < parse(item["until"]) < parse(held["protected_until"])
    before = parse(item["from"]) - dt.timedelta(seconds=1)
    r = await conflict_api.get(
        "/v1/ownership",
        headers=ops,
        params={"program_id": program, "domain": "wayneenterprises.com", "at": rfc3339(before)},
    )
    assert r.json()["items"] == []
    bad = await conflict_api.get(
        "/v1/ownership",
        headers=ops,
        params={"program_id": program, "domain": "wayneenterprises.com", "at": "yesterday"},
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "at"
    assert (
        await conflict_api.get(
            "/v1/ownership",
            headers=partner(program, "p1"),
            params={"program_id": program, "domain": "wayneenterprises.com", "at": rfc3339(inside)},
        )
    ).status_code == 403
