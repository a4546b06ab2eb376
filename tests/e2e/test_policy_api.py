"""The policy API end to end: versions, validation, `policy.published` on NATS, and decisions that
record the version in force when their claim was logged."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.e2e.conflict_helpers import ADMIN, deal, partner, program_with, publish_policy, settled, submit, wait_for
from tests.e2e.conftest import token

pytestmark = pytest.mark.e2e


async def test_versions_validation_and_publication(registration_api, conflict_api, nc):
    program = await program_with(registration_api, {}, conflict_api)
    path = f"/v1/programs/{program}/policy"
    crm = await nc.jetstream().subscribe(f"dealreg.conflict.{program}.policy.published", ordered_consumer=True)

    r = await conflict_api.get(path, headers=token("ops", program=program))
    assert r.status_code == 200 and r.json()["version"] == 0 and r.headers["etag"] == '"0"'
    assert r.json()["policy"]["protection_days"] == 90 and r.json()["policy"]["products"] is None

    bad = await conflict_api.put(path, json={"protection_days": -1}, headers=ADMIN)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["errors"][0]["field"] == "protection_days"
    for body, field in (
        ({"tiers": "gold"}, "tiers"),
        ({"surprise": True}, "surprise"),
        ({"tiers": ["gold", "gold"]}, "tiers[1]"),
        ({"escalation": [{"level": 2, "role": "boss", "sla_hours": 1}]}, "escalation[0].level"),
    ):
        r = await conflict_api.put(path, json=body, headers=ADMIN)
        assert r.status_code == 422, (body, r.text)
        assert field in [e["field"] for e in r.json()["errors"]], (body, r.json())
    r = await conflict_api.put(path, content=b"protection_days=30", headers={**ADMIN, "content-type": "text/plain"})
    assert r.status_code == 400, r.text
    assert (await conflict_api.put(path, json={}, headers=token("ops", program=program))).status_code == 403
    assert (
        await conflict_api.put(path, json={}, headers=token("partner", program=program, partner="p"))
    ).status_code == 403
    assert (await conflict_api.get(path, headers=token("ops", program="elsewhere"))).status_code == 404

    assert await publish_policy(conflict_api, program, {"protection_days": 30}) == 1
    assert await publish_policy(conflict_api, program, {"protection_days": 60, "tie_window_minutes": 0.5}) == 2
    r = await conflict_api.get(path, headers=token("partner", program=program, partner="p"))
    doc = r.json()
    assert (doc["version"], doc["policy"]["protection_days"], doc["policy"]["tie_window_minutes"]) == (2, 60, 0.5)
    assert doc["policy"]["tiers"] == ["platinum", "gold", "silver", "registered"]  # omitted: the default's

    published = []

    async def both_published():
        try:
            while True:
                published.append(json.loads((await crm.next_msg(timeout=0.2)).data))
        except Exception:
            pass
        return len(published) >= 2

    await wait_for(both_published, what="policy.published on NATS")
    await crm.unsubscribe()
    assert [e["data"]["version"] for e in published] == [1, 2]
    assert {e["type"] for e in published} == {"io.dealreg.policy.published.v1"}
    assert {e["source"] for e in published} == {f"/dealreg/conflict/{program}"}
    assert published[1]["data"]["policy"]["protection_days"] == 60 and published[1]["data"]["published_by"] == "admin"


async def test_a_decision_records_the_policy_version_in_force(registration_api, conflict_api):
    api = registration_api
    program = await program_with(api, {"p1": "gold"}, conflict_api, {"protection_days": 30})
    under_one = await submit(api, program, "p1", deal("Tyrell", "tyrell.com"))
    one = await settled(api, program, "p1", under_one, "approved")
    await publish_policy(conflict_api, program, {"protection_days": 60})
    under_two = await submit(api, program, "p1", deal("Cyberdyne", "cyberdyne.com"))
    two = await settled(api, program, "p1", under_two, "approved")
    headers = partner(program, "p1")
    for rid, doc, version, days in ((under_one, one, 1, 30), (under_two, two, 2, 60)):
        explained = (await api.get(f"/v1/registrations/{rid}/decision", headers=headers)).json()
        assert explained["policy_version"] == version
        window = dt.datetime.fromisoformat(doc["protected_until"]) - dt.datetime.fromisoformat(doc["submitted_at"])
        assert window == dt.timedelta(days=days)
