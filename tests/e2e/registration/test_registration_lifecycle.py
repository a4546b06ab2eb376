"""A registration's life through the partner-facing API: submit, read, list, amend, act, history."""

from __future__ import annotations

import pytest

from tests.conftest import unique_id
from tests.e2e.conftest import token
from tests.e2e.helpers import enrol, partner_token, register, registration_body, set_status

pytestmark = pytest.mark.e2e

RESOURCE_FIELDS = {
    "id", "program_id", "partner_id", "submitted_by", "external_ref", "customer", "products", "deal_type",
    "estimated_value", "expected_close", "notes", "status", "status_reason", "protected_until",
    "attribution_percent", "version", "submitted_at", "updated_at",
}  # fmt: skip


@pytest.fixture
async def partner(registration_api):
    """(program, partner id, auth headers) of a freshly enrolled partner."""
    program = unique_id("prog")
    await enrol(registration_api, program, "alpha", tier="gold", type_="msp")
    return program, "alpha", partner_token(program, "alpha")


async def _get(client, rid: str, headers):
    return await client.get(f"/v1/registrations/{rid}", headers=headers)


async def test_submit_replies_201_with_location_etag_and_the_resource(registration_api, partner):
    program, partner_id, headers = partner
    body = registration_body(external_ref="opp-0042")
    r = await registration_api.post("/v1/registrations", json=body, headers=headers)
    assert r.status_code == 201, r.text
    reg = r.json()
    assert set(reg) == RESOURCE_FIELDS
    assert r.headers["location"] == f"/v1/registrations/{reg['id']}"
    assert r.headers["etag"] == '"1"'
    assert reg["program_id"] == program and reg["partner_id"] == partner_id
    assert reg["status"] == "pending" and reg["version"] == 1
    assert reg["customer"] == body["customer"]
    assert reg["products"] == body["products"]
    assert reg["estimated_value"] == {"amount": "125000.00", "currency": "USD"}
    assert reg["expected_close"] == "2027-03-31"
    assert reg["external_ref"] == "opp-0042"
    assert reg["submitted_at"].endswith("Z") and reg["submitted_at"] == reg["updated_at"]

    got = await registration_api.get(r.headers["location"], headers=headers)
    assert got.status_code == 200 and got.json() == reg
    assert got.headers["etag"] == '"1"'


async def test_optional_fields_may_be_left_out(registration_api, partner):
    _, _, headers = partner
    body = registration_body()
    del body["external_ref"], body["notes"]
    body["customer"] = {"name": "Globex", "country": "DE"}
    r = await registration_api.post("/v1/registrations", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["external_ref"] is None and r.json()["notes"] is None
    assert r.json()["customer"] == {"name": "Globex", "country": "DE"}


async def test_decision_before_and_after_the_conflict_service_decides(registration_api, nc, partner):
    program, partner_id, headers = partner
    reg = await register(registration_api, program, partner_id)
    r = await registration_api.get(f"/v1/registrations/{reg['id']}/decision", headers=headers)
    assert r.status_code == 200 and r.headers["etag"] == '"1"'
    assert r.json()["decided"] is False and r.json()["status"] == "pending"
    await set_status(
        registration_api,
        nc,
        reg,
        "approved",
        rule="first_to_register",
        policy_version=3,
        protected_until="2027-06-01T00:00:00Z",
        conflict_id="conflict-of-a-rival",
        comment="clean",
    )
    r = await registration_api.get(f"/v1/registrations/{reg['id']}/decision", headers=headers)
    decision = r.json()
    assert r.headers["etag"] == '"2"'
    assert decision["decided"] is True
    assert decision["status"] == "approved" and decision["reason"] == "no_collision"
    assert decision["rule"] == "first_to_register" and decision["policy_version"] == 3
    assert decision["protected_until"] == "2027-06-01T00:00:00Z"
    assert decision["decided_at"].endswith("Z")
    assert "conflict-of-a-rival" not in r.text  # nothing that leads to a rival


async def test_list_pages_with_a_cursor_and_filters(registration_api, nc, partner):
    program, partner_id, headers = partner
    regs = [await register(registration_api, program, partner_id, external_ref=f"ref-{i}") for i in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        url = "/v1/registrations?limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = await registration_api.get(url, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [reg["id"] for reg in regs] and pages == 3

    r = await registration_api.get("/v1/registrations?external_ref=ref-3", headers=headers)
    assert [i["id"] for i in r.json()["items"]] == [regs[3]["id"]]
    await set_status(registration_api, nc, regs[1], "approved")
    await registration_api.post(f"/v1/registrations/{regs[2]['id']}/withdraw", json={}, headers=headers)
    r = await registration_api.get("/v1/registrations?status=approved", headers=headers)
    assert [i["id"] for i in r.json()["items"]] == [regs[1]["id"]]
    r = await registration_api.get("/v1/registrations?status=withdrawn&limit=500", headers=headers)
    assert [i["id"] for i in r.json()["items"]] == [regs[2]["id"]]
    r = await registration_api.get("/v1/registrations?status=pending&external_ref=ref-4", headers=headers)
    assert [i["id"] for i in r.json()["items"]] == [regs[4]["id"]]
    r = await registration_api.get("/v1/registrations?status=pending&external_ref=ref-1", headers=headers)
    assert r.json() == {"items": [], "next_cursor": None}
    # staff list the program's registrations with the same filters
    r = await registration_api.get("/v1/registrations?status=pending", headers=token("ops", program=program))
    assert [i["id"] for i in r.json()["items"]] == [regs[0]["id"], regs[3]["id"], regs[4]["id"]]


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=x", "cursor=!!!", "cursor=bm90LWEtbnVtYmVy"])
async def test_bad_list_parameters_are_400_problems(registration_api, partner, query):
    _, _, headers = partner
    r = await registration_api.get(f"/v1/registrations?{query}", headers=headers)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_amend_needs_if_match_and_refuses_a_stale_version(registration_api, partner):
    program, partner_id, headers = partner
    reg = await register(registration_api, program, partner_id)
    url = f"/v1/registrations/{reg['id']}"
    r = await registration_api.patch(url, json={"notes": "update"}, headers=headers)
    assert r.status_code == 428 and r.json()["type"].endswith("/precondition-required")
    r = await registration_api.patch(url, json={"notes": "update"}, headers={**headers, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == '"2"' and r.json()["version"] == 2 and r.json()["notes"] == "update"
    for stale in ('"1"', '"3"', '"abc"', "*garbage*", '""'):
        r = await registration_api.patch(url, json={"notes": "lost update"}, headers={**headers, "If-Match": stale})
        assert r.status_code == 412, (stale, r.text)
    r = await _get(registration_api, reg["id"], headers)
    assert r.json()["notes"] == "update" and r.headers["etag"] == '"2"'


async def test_amend_changes_only_what_it_names(registration_api, partner):
    program, partner_id, headers = partner
    reg = await register(registration_api, program, partner_id)
    url = f"/v1/registrations/{reg['id']}"
    change = {
        "customer": {"name": "Acme Corp", "country": "US", "domain": "acme.com"},
        "products": ["firewall"],
        "estimated_value": {"amount": "99000", "currency": "EUR"},
        "expected_close": "2027-06-30",
    }
    r = await registration_api.patch(url, json=change, headers={**headers, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    amended = r.json()
    for name, value in change.items():
        assert amended[name] == value
    assert amended["notes"] == reg["notes"] and amended["external_ref"] == reg["external_ref"]
    r = await registration_api.patch(url, json={"notes": None}, headers={**headers, "If-Match": '"2"'})
    assert r.json()["notes"] is None and r.json()["products"] == ["firewall"]
    history = (await registration_api.get(f"{url}/history", headers=headers)).json()["items"]
    assert [h["type"] for h in history] == [
        "registration.submitted",
        "registration.amended",
        "registration.amended",
    ]
    first = history[1]["data"]
    assert sorted(first["changed"]) == ["customer", "estimated_value", "expected_close", "products"]
    assert first["rematch"] is True
    assert history[2]["data"]["changed"] == ["notes"]


async def test_customer_changes_only_while_pending_review_or_info_requested(registration_api, nc, partner):
    program, partner_id, headers = partner
    new_customer = {"name": "Other Customer", "country": "FR"}
    for status, allowed in (
        ("pending_review", True), ("info_requested", True), ("approved", False), ("waitlisted", False),
        ("under_review", False),
    ):  # fmt: skip
        reg = await register(registration_api, program, partner_id)
        reg = await set_status(registration_api, nc, reg, status)
        url = f"/v1/registrations/{reg['id']}"
        etag = {"If-Match": f'"{reg["version"]}"'}
        r = await registration_api.patch(url, json={"customer": new_customer}, headers={**headers, **etag})
        if allowed:
            assert r.status_code == 200, (status, r.text)
            assert r.json()["customer"] == new_customer
        else:
            assert r.status_code == 409, (status, r.text)
            assert r.json()["registration_status"] == status
            # the other terms may still change
            r = await registration_api.patch(url, json={"notes": "still mine"}, headers={**headers, **etag})
            assert r.status_code == 200, (status, r.text)


async def test_answering_an_info_request_is_recorded_as_such(registration_api, nc, partner):
    program, partner_id, headers = partner
    reg = await register(registration_api, program, partner_id)
    reg = await set_status(registration_api, nc, reg, "info_requested", comment="which products exactly?")
    r = await registration_api.patch(
        f"/v1/registrations/{reg['id']}",
        json={"products": ["firewall", "vpn"]},
        headers={**headers, "If-Match": f'"{reg["version"]}"'},
    )
    assert r.status_code == 200
    history = (await registration_api.get(f"/v1/registrations/{reg['id']}/history", headers=headers)).json()
    assert history["items"][-1]["data"]["answers_info_request"] is True


async def test_withdraw_then_every_action_is_409_with_the_status(registration_api, partner):
    program, partner_id, headers = partner
    reg = await register(registration_api, program, partner_id)
    url = f"/v1/registrations/{reg['id']}"
    r = await registration_api.post(f"{url}/withdraw", json={"reason": "customer went elsewhere"}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "withdrawn" and r.headers["etag"] == '"2"'
    refused = [
        await registration_api.post(f"{url}/withdraw", headers=headers),
        await registration_api.post(f"{url}/extension", json={"reason": "more time"}, headers=headers),
        await registration_api.post(
            f"{url}/outcome", json={"result": "won", "closed_on": "2027-01-05"}, headers=headers
        ),
        await registration_api.post(
            f"{url}/outcome", json={"result": "lost", "closed_on": "2027-01-05"}, headers=headers
        ),
        await registration_api.post(f"{url}/appeal", json={"reason": "please"}, headers=headers),
        await registration_api.patch(url, json={"notes": "x"}, headers={**headers, "If-Match": '"2"'}),
    ]
    for r in refused:
        assert r.status_code == 409, (r.request.url, r.text)
        problem = r.json()
        assert problem["registration_status"] == "withdrawn"
        assert problem["type"].endswith("/transition-forbidden")
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (await _get(registration_api, reg["id"], headers)).json()["version"] == 2


async def test_withdraw_without_a_body(registration_api, partner):
    program, partner_id, headers = partner
    reg = await register(registration_api, program, partner_id)
    r = await registration_api.post(f"/v1/registrations/{reg['id']}/withdraw", headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"


async def test_extension_outcome_and_appeal_follow_the_status(registration_api, nc, partner):
    program, partner_id, headers = partner
    reg = await register(registration_api, program, partner_id)
    url = f"/v1/registrations/{reg['id']}"
    r = await registration_api.post(f"{url}/extension", json={"reason": "long cycle"}, headers=headers)
    assert r.status_code == 409 and r.json()["registration_status"] == "pending"
    r = await registration_api.post(
        f"{url}/outcome", json={"result": "won", "closed_on": "2027-01-05"}, headers=headers
    )
    assert r.status_code == 409 and r.json()["registration_status"] == "pending"
    r = await registration_api.post(f"{url}/appeal", json={"reason": "unfair"}, headers=headers)
    assert r.status_code == 409 and r.json()["registration_status"] == "pending"

    await set_status(registration_api, nc, reg, "approved", protected_until="2027-06-01T00:00:00Z")
    r = await registration_api.post(f"{url}/extension", json={"reason": "long cycle"}, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "approved"
    r = await registration_api.post(
        f"{url}/outcome",
        json={"result": "won", "amount": "130000.00", "closed_on": "2027-01-05"},
        headers=headers,
    )
    assert r.status_code == 200 and r.json()["status"] == "won"
    r = await registration_api.get(f"{url}/history", headers=headers)
    items = r.json()["items"]
    assert [i["type"] for i in items] == [
        "registration.submitted", "registration.approved", "registration.extension_requested",
        "registration.outcome_reported",
    ]  # fmt: skip
    assert [i["version"] for i in items] == [1, 2, 3, 4]
    assert items[3]["data"]["amount"] == "130000.00" and items[3]["data"]["closed_on"] == "2027-01-05"
    assert r.headers["etag"] == '"4"'

    rejected = await register(registration_api, program, partner_id)
    await set_status(registration_api, nc, rejected, "rejected", reason="protected_by_other_claim")
    r = await registration_api.post(
        f"/v1/registrations/{rejected['id']}/appeal", json={"reason": "we met them first"}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rejected"  # the conflict service decides what follows
    r = await registration_api.post(f"/v1/registrations/{rejected['id']}/appeal", json={}, headers=headers)
    assert r.status_code == 422  # an appeal gives its reason

    lost = await register(registration_api, program, partner_id)
    r = await registration_api.post(
        f"/v1/registrations/{lost['id']}/outcome",
        json={"result": "lost", "closed_on": "2027-01-05"},
        headers=headers,
    )
    assert r.status_code == 200 and r.json()["status"] == "lost"


async def test_external_ref_is_unique_among_the_partners_live_registrations(registration_api, partner):
    program, partner_id, headers = partner
    first = await register(registration_api, program, partner_id, external_ref="opp-7")
    r = await registration_api.post("/v1/registrations", json=registration_body(external_ref="opp-7"), headers=headers)
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["existing_registration_id"] == first["id"]
    assert first["id"] in problem["detail"]
    # another partner may use the same reference
    await enrol(registration_api, program, "beta")
    await register(registration_api, program, "beta", external_ref="opp-7")
    # once the first is no longer live, the reference is free again
    await registration_api.post(f"/v1/registrations/{first['id']}/withdraw", json={}, headers=headers)
    again = await register(registration_api, program, partner_id, external_ref="opp-7")
    r = await registration_api.get("/v1/registrations?external_ref=opp-7", headers=headers)
    assert [i["id"] for i in r.json()["items"]] == [first["id"], again["id"]]


async def test_history_shows_each_fact_oldest_first(registration_api, nc, partner):
    program, partner_id, headers = partner
    reg = await register(registration_api, program, partner_id)
    url = f"/v1/registrations/{reg['id']}"
    await registration_api.patch(url, json={"notes": "n2"}, headers={**headers, "If-Match": '"1"'})
    await set_status(registration_api, nc, reg, "waitlisted", reason="protected_by_other_claim",
                     protected_until="2027-02-01T00:00:00Z")  # fmt: skip
    await registration_api.post(f"{url}/appeal", json={"reason": "we were first"}, headers=headers)
    r = await registration_api.get(f"{url}/history", headers=headers)
    items = r.json()["items"]
    assert [i["type"] for i in items] == [
        "registration.submitted", "registration.amended", "registration.waitlisted", "registration.appealed",
    ]  # fmt: skip
    times = [i["time"] for i in items]
    assert times == sorted(times)
    assert items[0]["data"]["customer"]["name"] == "Acme Corporation"
    assert "partner_tier" not in items[0]["data"] and "source_event_id" not in items[2]["data"]
    assert items[2]["data"]["protected_until"] == "2027-02-01T00:00:00Z"
    assert items[3]["actor"] == f"partner:{program}:{partner_id}"


async def test_a_decision_is_recorded_even_after_the_partner_reused_the_reference(registration_api, nc, partner):
    """Rejected, then registered anew under the same external_ref, then the first one's appeal is
    granted: the conflict service's decision stands, and both registrations are live."""
    program, partner_id, headers = partner
    old = await register(registration_api, program, partner_id, external_ref="opp-x")
    await set_status(registration_api, nc, old, "rejected", reason="protected_by_other_claim")
    new = await register(registration_api, program, partner_id, external_ref="opp-x")
    r = await registration_api.post(f"/v1/registrations/{old['id']}/appeal", json={"reason": "r"}, headers=headers)
    assert r.status_code == 200
    revived = await set_status(registration_api, nc, old, "under_review")
    assert revived["status"] == "under_review"
    r = await registration_api.get("/v1/registrations?external_ref=opp-x&status=under_review", headers=headers)
    assert [i["id"] for i in r.json()["items"]] == [old["id"]]
    # a third submission names one of the live holders
    r = await registration_api.post("/v1/registrations", json=registration_body(external_ref="opp-x"), headers=headers)
    assert r.status_code == 409 and r.json()["existing_registration_id"] in (old["id"], new["id"])
