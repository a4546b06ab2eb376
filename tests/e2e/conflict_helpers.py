"""Calls the conflict end-to-end tests share: programs with partners in tiers, policies, registrations,
and waiting for the statuses the conflict service decides."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.conftest import unique_id
from tests.e2e.conftest import token

ADMIN = token("admin")


async def wait_for(predicate, within: float = 15.0, interval: float = 0.05, what: str = ""):
    """Await `predicate()` until it returns something truthy; fail after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {within}s: {what or predicate}")
        await asyncio.sleep(interval)


async def program_with(api, partners: dict[str, str], conflict_api=None, policy: dict | None = None) -> str:
    """A fresh program with `partners` (id -> tier), and `policy` published when given."""
    program = unique_id("prog")
    assert (await api.put(f"/v1/programs/{program}", json={"name": "Program"}, headers=ADMIN)).status_code == 200
    for partner, tier in partners.items():
        r = await api.put(
            f"/v1/programs/{program}/partners/{partner}",
            json={"name": partner.upper(), "tier": tier, "type": "reseller"},
            headers=ADMIN,
        )
        assert r.status_code == 200, r.text
    if policy is not None:
        await publish_policy(conflict_api, program, policy)
    return program


async def publish_policy(conflict_api, program: str, policy: dict) -> int:
    r = await conflict_api.put(f"/v1/programs/{program}/policy", json=policy, headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json()["version"]


def partner(program: str, partner_id: str) -> dict[str, str]:
    return token("partner", program=program, partner=partner_id)


def deal(name: str, domain: str | None = None, products=("firewall",), country: str = "US", **extra) -> dict:
    customer: dict[str, Any] = {"name": name, "country": country}
    if domain is not None:
        customer["domain"] = domain
    body = {
        "external_ref": f"opp-{uuid.uuid4().hex[:8]}",
        "customer": customer,
        "products": list(products),
        "deal_type": "new",
        "estimated_value": {"amount": "50000.00", "currency": "USD"},
        "expected_close": "2027-03-31",
    }
    body.update(extra)
    return body


async def submit(api, program: str, partner_id: str, body: dict, headers: dict | None = None) -> str:
    """Register `body` as `partner_id`; returns the registration id."""
    r = await api.post("/v1/registrations", json=body, headers={**partner(program, partner_id), **(headers or {})})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def registration(api, program: str, partner_id: str, rid: str) -> dict:
    r = await api.get(f"/v1/registrations/{rid}", headers=partner(program, partner_id))
    assert r.status_code == 200, r.text
    return r.json()


async def settled(api, program: str, partner_id: str, rid: str, *statuses: str, within: float = 15.0) -> dict:
    """Wait until the registration shows one of `statuses` (default: anything but `pending`)."""

    async def check():
        doc = await registration(api, program, partner_id, rid)
        done = doc["status"] in statuses if statuses else doc["status"] != "pending"
        return doc if done else None

    return await wait_for(check, within, what=f"{rid} to be {statuses or 'decided'}")


async def conflict_of(pool, registration_id: str, within: float = 15.0) -> str:
    """The conflict a registration is in (waiting for the conflict service to open it)."""

    async def check():
        async with pool.acquire() as conn:
            return await conn.fetchval("SELECT conflict_id FROM conflict.claims WHERE claim_id = $1", registration_id)

    return await wait_for(check, within, what=f"a conflict for {registration_id}")
