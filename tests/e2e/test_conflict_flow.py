"""Issue 4, end to end: partner portals on the registration API, a CRM on the conflict stream."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import unique_id
from tests.e2e.conftest import token

pytestmark = pytest.mark.e2e


async def wait_for(predicate, deadline_s: float = 15.0, interval: float = 0.05):
    deadline = asyncio.get_running_loop().time() + deadline_s
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(interval)


async def setup_program(api, partners: dict[str, str]) -> str:
    program = unique_id("prog")
    assert (
        await api.put(f"/v1/programs/{program}", json={"name": "Acme program"}, headers=token("admin"))
    ).status_code == 200
    for partner, tier in partners.items():
        r = await api.put(
            f"/v1/programs/{program}/partners/{partner}",
            json={"name": partner.upper(), "tier": tier, "type": "reseller"},
            headers=token("admin"),
        )
        assert r.status_code == 200
    return program


def registration(name: str, domain: str, products=("firewall",), **extra) -> dict:
    body = {
        "customer": {"name": name, "domain": domain, "country": "US"},
        "products": list(products),
        "deal_type": "new",
        "estimated_value": {"amount": "50000.00", "currency": "USD"},
        "expected_close": "2027-03-31",
    }
    body.update(extra)
    return body


async def status_of(api, rid: str, headers: dict, wanted: str):
    async def check():
        r = await api.get(f"/v1/registrations/{rid}", headers=headers)
        return r.json() if r.json()["status"] == wanted else None

    return await wait_for(check)


async def test_approve_waitlist_and_promote_on_withdrawal(registration_api, conflict_api, nc):
    api = registration_api
    program = await setup_program(api, {"p1": "gold", "p2": "gold"})
    crm = await nc.jetstream().subscribe(f"dealreg.conflict.{program}.>", ordered_consumer=True)
    p1, p2 = token("partner", program=program, partner="p1"), token("partner", program=program, partner="p2")

    r1 = await api.post("/v1/registrations", json=registration("Acme", "acme.com"), headers=p1)
    assert r1.status_code == 201
    one = await status_of(api, r1.json()["id"], p1, "approved")
    assert one["status_reason"] == "no_collision" and one["protected_until"]

    r2 = await api.post("/v1/registrations", json=registration("ACME Corp.", "https://www.acme.com"), headers=p2)
    two = await status_of(api, r2.json()["id"], p2, "waitlisted")
    assert two["status_reason"] == "protected_by_other_claim"
    assert two["protected_until"] == one["protected_until"]
    seen_by_p2 = json.dumps(
        [
            two,
            (await api.get(f"/v1/registrations/{two['id']}/decision", headers=p2)).json(),
            (await api.get(f"/v1/registrations/{two['id']}/history", headers=p2)).json(),
        ]
    )
    assert "p1" not in seen_by_p2.replace(program, "") and one["id"] not in seen_by_p2

    assert (await api.post(f"/v1/registrations/{one['id']}/withdraw", headers=p1)).status_code == 200
    promoted = await status_of(api, two["id"], p2, "approved")
    assert promoted["status_reason"] == "no_collision"

    received: dict[str, list[str]] = {}

    async def crm_has_all():
        try:
            while True:
                msg = await crm.next_msg(timeout=0.2)
                ce = json.loads(msg.data)
                assert msg.headers["Nats-Msg-Id"] == ce["id"]
                received.setdefault(ce["subject"], []).append(ce["type"])
        except Exception:
            pass
        return received.get(two["id"], []).count("io.dealreg.registration.approved.v1") == 1

    await wait_for(crm_has_all)
    assert received[one["id"]] == [
        "io.dealreg.registration.approved.v1",
        "io.dealreg.ownership.granted.v1",
        "io.dealreg.ownership.released.v1",
    ]
    assert received[two["id"]] == [
        "io.dealreg.registration.waitlisted.v1",
        "io.dealreg.registration.approved.v1",
        "io.dealreg.ownership.granted.v1",
    ]
    await crm.unsubscribe()
