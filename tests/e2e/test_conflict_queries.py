"""Queries for ops: one conflict, the filtered and paginated list, and a dispute's timeline."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from litestar.testing import AsyncTestClient

from services.conflict.app import bootstrap
from tests.conftest import unique_id
from tests.e2e.conflict_helpers import ADMIN, conflict_of, deal, program_with, settled, submit
from tests.e2e.conftest import token

pytestmark = pytest.mark.e2e

TIE_POLICY = {"tie_window_minutes": 0.02, "tiers": ["platinum", "gold", "silver"]}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def _tie(api, pool, program: str, name: str, domain: str) -> tuple[str, str, str]:
    """p1 and p2 (same tier) register the same customer within the tie window: one conflict."""
    headers = {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}
    a, b = await asyncio.gather(
        submit(api, program, "p1", deal(name, domain), headers),
        submit(api, program, "p2", deal(f"{name} Inc.", domain)),
    )
    await settled(api, program, "p1", a, "under_review")
    await settled(api, program, "p2", b, "under_review")
    return a, b, await conflict_of(pool, a)


async def test_a_conflict_has_the_shape_of_the_spec_and_a_timeline(registration_api, conflict_api, pool):
    program = await program_with(registration_api, {"p1": "gold", "p2": "gold"}, conflict_api, TIE_POLICY)
    a, b, cid = await _tie(registration_api, pool, program, "Globex", "globex.com")
    ops = token("ops", program=program)

    r = await conflict_api.get(f"/v1/conflicts/{cid}", headers=ops)
    assert r.status_code == 200, r.text
    c = r.json()
    assert {k: c[k] for k in ("id", "program_id", "state", "level", "authority_role", "decision", "appeals")} == {
        "id": cid,
        "program_id": program,
        "state": "escalated",
        "level": 1,
        "authority_role": "channel_manager",
        "decision": None,
        "appeals": [],
    }
    assert sorted(x["claim_id"] for x in c["claims"]) == sorted([a, b])
    assert {x["kind"] for x in c["claims"]} == {"registration"}
    assert {x["partner_id"] for x in c["claims"]} == {"p1", "p2"} and all(x["submitted_at"] for x in c["claims"])
    assert [x["submitted_at"] for x in c["claims"]] == sorted(x["submitted_at"] for x in c["claims"])
    assert c["evidence"] and "domain" in c["evidence"][0]["keys"]
    assert c["evidence"][0]["overlapping_products"] == ["firewall"]
    assert [v["rule"] for v in c["rule_trail"]][-1] == "escalation"
    assert c["policy_version"] == 1 and c["due_at"]

    r = await conflict_api.get(f"/v1/conflicts/{cid}/timeline", headers=ops)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    types = [i["type"] for i in items]
    assert types.count("registration.submitted") == 2
    assert types.count("registration.under_review") == 2
    assert types.index("registration.submitted") < types.index("conflict.opened") < types.index("conflict.escalated")
    times = [i["time"] for i in items]
    assert times == sorted(times)
    escalated = items[types.index("conflict.escalated")]
    assert escalated["data"]["due_at"] and escalated["data"]["level"] == 1
    assert escalated["stream"] == f"conflict-{cid}" and escalated["actor"] == "rules"
    submitted = [i for i in items if i["type"] == "registration.submitted"]
    assert {i["actor"] for i in submitted} == {"partner:" + program + ":p1", "partner:" + program + ":p2"}
    by_p1 = next(i for i in submitted if i["data"]["registration_id"] == a)
    by_p2 = next(i for i in submitted if i["data"]["registration_id"] == b)
    assert by_p1["trace_id"] == TRACE and by_p2["trace_id"] != TRACE
    assert all({"time", "type", "actor", "trace_id", "stream", "event_id", "data"} <= set(i) for i in items)


async def test_the_list_filters_and_pages(registration_api, conflict_api, pool, settings):
    api = registration_api
    program = await program_with(api, {"p1": "gold", "p2": "gold"}, conflict_api, TIE_POLICY)
    ids = [
        t[2]
        for t in await asyncio.gather(
            *(_tie(api, pool, program, name, f"{name.lower()}.com") for name in ("Umbrella", "Initech", "Hooli"))
        )
    ]
    ops = token("ops", program=program)

    seen, cursor, pages = [], None, 0
    while True:
        q = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        r = await conflict_api.get("/v1/conflicts", params=q, headers=ops)
        assert r.status_code == 200, r.text
        seen += [c["id"] for c in r.json()["items"]]
        pages += 1
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == 2 and sorted(seen) == sorted(ids) and len(seen) == 3

    async def listed(headers=ops, **q) -> list[str]:
        r = await conflict_api.get("/v1/conflicts", params=q, headers=headers)
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    assert sorted(await listed(state="escalated", level="1")) == sorted(ids)
    assert await listed(state="resolved") == []
    assert await listed(level="2") == []
    assert await listed(overdue="true") == []
    assert sorted(await listed(overdue="false")) == sorted(ids)
    assert sorted(await listed(ADMIN, program_id=program)) == sorted(ids)
    assert set(ids) <= set(await listed(ADMIN, limit="500"))
    authority = token("authority", program=program, level=1)
    assert sorted(await listed(authority, program_id=program)) == sorted(ids)

    # the same log read at an instant after every deadline: all three are overdue
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    async with AsyncTestClient(app=bootstrap(settings, clock=lambda: later, background=False)) as reader:
        r = await reader.get("/v1/conflicts", params={"overdue": "true", "program_id": program}, headers=ADMIN)
        assert sorted(c["id"] for c in r.json()["items"]) == sorted(ids)


async def test_access_and_bad_parameters(registration_api, conflict_api, pool):
    program = await program_with(registration_api, {"p1": "gold", "p2": "gold"}, conflict_api, TIE_POLICY)
    _, _, cid = await _tie(registration_api, pool, program, "Vandelay", "vandelay.com")
    other = token("ops", program=unique_id("other"))
    for path in (
        f"/v1/conflicts/{cid}",
        f"/v1/conflicts/{cid}/timeline",
        "/v1/conflicts/nope",
        "/v1/conflicts/%00nope/timeline",
    ):
        assert (await conflict_api.get(path, headers=other)).status_code == 404
    assert (await conflict_api.get("/v1/conflicts", params={"program_id": program}, headers=other)).status_code == 404
    assert (await conflict_api.get("/v1/conflicts", headers=other)).json()["items"] == []
    for role in (token("partner", program=program, partner="p1"), token("integration", program=program)):
        assert (await conflict_api.get(f"/v1/conflicts/{cid}", headers=role)).status_code == 403
        assert (await conflict_api.get("/v1/conflicts", headers=role)).status_code == 403
    assert (await conflict_api.get("/v1/conflicts")).status_code == 401
    ops = token("ops", program=program)
    for field, value in (
        ("state", "open"),
        ("level", "0"),
        ("level", "x"),
        ("overdue", "yes"),
        ("limit", "501"),
        ("cursor", "%%%"),
        ("program_id", "Bad Id"),
    ):
        r = await conflict_api.get("/v1/conflicts", params={field: value}, headers=ops)
        assert r.status_code == 400, (field, value, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["field"] == field
