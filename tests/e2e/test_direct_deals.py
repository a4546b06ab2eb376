"""Direct deals end to end: the vendor's CRM records its own claims (SPEC sections 5 and 8)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.conftest import unique_id
from tests.e2e.conflict_helpers import ADMIN, conflict_of, deal, program_with, registration, settled, submit, wait_for
from tests.e2e.conftest import token

pytestmark = pytest.mark.e2e


def direct(name: str, domain: str, opened_on: dt.date | None = None, products=("firewall",), **extra) -> dict:
    body = {
        "external_ref": f"crm-{unique_id('opp')}",
        "customer": {"name": name, "domain": domain, "country": "US"},
        "products": list(products),
        "owner": "jane.doe@vendor.example",
        "opened_on": (opened_on or dt.datetime.now(dt.UTC).date()).isoformat(),
        "expected_close": "2027-06-30",
    }
    body.update(extra)
    return body


async def post_direct(conflict_api, program: str, body: dict, headers: dict | None = None) -> dict:
    r = await conflict_api.post(
        f"/v1/programs/{program}/direct-deals", json=body, headers=headers or token("integration", program=program)
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_the_api_records_and_releases_direct_deals(registration_api, conflict_api, nc):
    program = await program_with(registration_api, {}, conflict_api, None)
    crm = await nc.jetstream().subscribe(f"dealreg.conflict.{program}.direct_deal.>", ordered_consumer=True)
    path = f"/v1/programs/{program}/direct-deals"
    by_crm = await post_direct(conflict_api, program, direct("Cyberdyne", "cyberdyne.com"))
    assert by_crm["status"] == "open" and by_crm["id"] and by_crm["recorded_by"] == f"integration:{program}"
    by_admin = await post_direct(conflict_api, program, direct("Tyrell", "tyrell.com"), ADMIN)

    assert (
        await conflict_api.post(
            path, json=direct("X", "x.com"), headers=token("partner", program=program, partner="p1")
        )
    ).status_code == 403
    assert (
        await conflict_api.post(
            path, json=direct("X", "x.com"), headers=token("integration", program=unique_id("other"))
        )
    ).status_code == 404
    assert (await conflict_api.post(path, json=direct("X", "x.com"))).status_code == 401
    for bad, field in (
        (direct("X", "x.com", owner=None), "owner"),
        ({**direct("X", "x.com"), "opened_on": "soon"}, "opened_on"),
        (direct("X", "x.com", products=[]), "products"),
        (direct("X", "x.com", customer={"name": "X", "country": "Narnia"}), "customer.country"),
        ({**direct("X", "x.com"), "surprise": 1}, "surprise"),
    ):
        body = {k: v for k, v in bad.items() if v is not None}
        r = await conflict_api.post(path, json=body, headers=ADMIN)
        assert r.status_code == 422, (field, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert any(field in e["field"] for e in r.json()["errors"]), (field, r.json())
    r = await conflict_api.post(path, content=b"{not json", headers={**ADMIN, "content-type": "application/json"})
    assert r.status_code == 400, r.text

    integration = token("integration", program=program)
    r = await conflict_api.delete(f"{path}/{by_crm['id']}", headers=integration)
    assert r.status_code == 200 and r.json()["status"] == "released", r.text
    assert (await conflict_api.delete(f"{path}/{by_crm['id']}", headers=integration)).status_code == 409
    assert (await conflict_api.delete(f"{path}/nope", headers=integration)).status_code == 404
    assert (
        await conflict_api.delete(f"{path}/{by_admin['id']}", headers=token("partner", program=program, partner="p1"))
    ).status_code == 403

    types = []

    async def crm_saw_all():
        try:
            while True:
                msg = await crm.next_msg(timeout=0.2)
                types.append((json.loads(msg.data)["type"], json.loads(msg.data)["subject"]))
        except Exception:
            pass
        return len(types) >= 3

    await wait_for(crm_saw_all, what="the direct-deal CloudEvents")
    assert types == [
        ("io.dealreg.direct_deal.recorded.v1", by_crm["id"]),
        ("io.dealreg.direct_deal.recorded.v1", by_admin["id"]),
        ("io.dealreg.direct_deal.released.v1", by_crm["id"]),
    ]
    await crm.unsubscribe()


async def test_a_direct_deal_opened_before_a_registration_beats_it(registration_api, conflict_api):
    api = registration_api
    program = await program_with(api, {"p1": "platinum"}, conflict_api, {})
    opened = await post_direct(conflict_api, program, direct("Oscorp", "oscorp.com"))
    rid = await submit(api, program, "p1", deal("Oscorp Industries", "https://www.oscorp.com"))
    lost = await settled(api, program, "p1", rid)
    assert (lost["status"], lost["status_reason"]) == ("rejected", "direct_sales_engaged")

    # released, it beats nobody
    r = await conflict_api.delete(f"/v1/programs/{program}/direct-deals/{opened['id']}", headers=ADMIN)
    assert r.status_code == 200
    again = await submit(api, program, "p1", deal("Oscorp", "oscorp.com"))
    assert (await settled(api, program, "p1", again))["status"] == "approved"


async def test_a_direct_deal_opened_after_the_submission_does_not_beat_it(registration_api, conflict_api):
    api = registration_api
    # the tie window keeps the registration undecided while the vendor records its deal
    program = await program_with(api, {"p1": "silver"}, conflict_api, {"tie_window_minutes": 0.03})
    rid = await submit(api, program, "p1", deal("Aperture Science", "aperture.com"))
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    await post_direct(conflict_api, program, direct("Aperture", "aperture.com", tomorrow))
    assert (await registration(api, program, "p1", rid))["status"] == "pending"
    won = await settled(api, program, "p1", rid)
    assert (won["status"], won["status_reason"]) == ("approved", "first_to_register")


async def test_a_direct_deal_on_a_customer_a_partner_owns_opens_a_conflict(registration_api, conflict_api, pool):
    api = registration_api
    program = await program_with(api, {"p1": "gold"}, conflict_api, {})
    rid = await submit(api, program, "p1", deal("Massive Dynamic", "massivedynamic.com"))
    owned = await settled(api, program, "p1", rid, "approved")
    recorded = await post_direct(conflict_api, program, direct("Massive Dynamic Inc", "massivedynamic.com"))
    cid = await conflict_of(pool, rid)
    c = (await conflict_api.get(f"/v1/conflicts/{cid}", headers=token("ops", program=program))).json()
    assert c["state"] == "escalated" and c["level"] == 1 and c["cause"] == "direct_deal"
    kinds = {x["kind"]: x for x in c["claims"]}
    assert kinds["direct_deal"]["direct_deal_id"] == recorded["id"]
    assert kinds["registration"]["registration_id"] == rid
    assert c["evidence"] and "domain" in c["evidence"][0]["keys"]
    # the holder keeps its protection until someone decides
    now = await registration(api, program, "p1", rid)
    assert (now["status"], now["protected_until"]) == ("approved", owned["protected_until"])
