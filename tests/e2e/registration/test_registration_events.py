"""The registration service on NATS: the CloudEvents a CRM receives, and statuses flowing back from
the conflict service exactly once in effect."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from contracts.envelope import DEAD_LETTER_STREAM, JETSTREAM_STREAMS, decode_data
from contracts.registration_events import RegistrationAmended, RegistrationSubmitted
from tests.conftest import unique_id
from tests.e2e.helpers import (
    ADMIN,
    JetStreamReader,
    enrol,
    partner_token,
    publish_status,
    register,
    registration_body,
    set_status,
    wait_until,
)

pytestmark = pytest.mark.e2e

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _crm(nc, program: str) -> JetStreamReader:
    return JetStreamReader(nc, JETSTREAM_STREAMS["registration"], f"dealreg.registration.{program}.>")


async def test_a_crm_receives_the_submission_as_a_cloudevent(registration_api, nc):
    program = unique_id("prog")
    await enrol(registration_api, program, "alpha", tier="platinum", type_="si")
    body = registration_body(external_ref="opp-0042")
    r = await registration_api.post(
        "/v1/registrations", json=body, headers={**partner_token(program, "alpha"), "traceparent": TRACEPARENT}
    )
    reg = r.json()
    async with _crm(nc, program) as crm:
        received = await crm.until(3)
    by_subject = {m.msg.subject: m for m in received}
    assert set(by_subject) == {
        f"dealreg.registration.{program}.program.updated",
        f"dealreg.registration.{program}.partner.enrolled",
        f"dealreg.registration.{program}.registration.submitted",
    }
    got = by_subject[f"dealreg.registration.{program}.registration.submitted"]
    ce = got.event
    assert ce.specversion == "1.0"
    assert ce.id == got.msg_id and uuid.UUID(ce.id)
    assert ce.type == "io.dealreg.registration.submitted.v1"
    assert ce.source == f"/dealreg/registration/{program}"
    assert ce.subject == reg["id"]
    assert ce.datacontenttype == "application/json"
    assert ce.traceparent.split("-")[1] == TRACEPARENT.split("-")[1]  # the caller's trace continues
    assert ce.time.tzinfo is not None
    data = decode_data("registration", "registration.submitted", ce.data)
    assert isinstance(data, RegistrationSubmitted)
    assert data.registration_id == reg["id"] and data.program_id == program and data.partner_id == "alpha"
    assert data.customer.name == "Acme Corporation" and data.customer.country == "US"
    assert data.customer.domain == "https://www.acme.com" and data.customer.duns == "123456789"
    assert data.customer.tax_id == "US-12-3456789" and data.customer.city == "Austin"
    assert data.products == ["firewall", "support"]
    assert data.deal_type == "new"
    assert (data.estimated_value.amount, data.estimated_value.currency) == ("125000.00", "USD")
    assert data.expected_close == dt.date(2027, 3, 31)
    assert data.submitted_at.isoformat().replace("+00:00", "Z") == reg["submitted_at"]
    assert (data.partner_tier, data.partner_type) == ("platinum", "si")
    assert data.submitted_by == f"partner:{program}:alpha"
    assert data.external_ref == "opp-0042" and data.notes == "Met CISO at summit"


async def test_the_partners_tier_is_the_one_at_submission(registration_api, nc):
    program = unique_id("prog")
    await enrol(registration_api, program, "alpha", tier="silver", type_="reseller")
    first = await register(registration_api, program, "alpha")
    await enrol(registration_api, program, "alpha", tier="gold", type_="msp")
    second = await register(registration_api, program, "alpha")
    async with _crm(nc, program) as crm:
        received = await crm.until(6)
    submitted = {
        m.event.subject: decode_data("registration", "registration.submitted", m.event.data)
        for m in received
        if m.msg.subject.endswith(".registration.submitted")
    }
    assert (submitted[first["id"]].partner_tier, submitted[first["id"]].partner_type) == ("silver", "reseller")
    assert (submitted[second["id"]].partner_tier, submitted[second["id"]].partner_type) == ("gold", "msp")


async def test_every_fact_is_published_in_order_per_registration(registration_api, nc):
    """Every fact the registration service accepts reaches its stream, in order per registration;
    a status the conflict service decided is recorded in the registration's history but not
    published again (the conflict service published it, on its own stream)."""
    program = unique_id("prog")
    await enrol(registration_api, program, "alpha")
    headers = partner_token(program, "alpha")
    reg = await register(registration_api, program, "alpha")
    url = f"/v1/registrations/{reg['id']}"
    await registration_api.patch(url, json={"products": ["firewall"]}, headers={**headers, "If-Match": '"1"'})
    await set_status(registration_api, nc, reg, "approved", protected_until="2027-06-01T00:00:00Z")
    await registration_api.post(f"{url}/extension", json={"reason": "long cycle"}, headers=headers)
    await registration_api.post(f"{url}/outcome", json={"result": "won", "closed_on": "2027-02-01"}, headers=headers)
    other = await register(registration_api, program, "alpha")
    await registration_api.post(f"/v1/registrations/{other['id']}/withdraw", json={}, headers=headers)
    rejected = await register(registration_api, program, "alpha")
    await set_status(registration_api, nc, rejected, "rejected", reason="protected_by_other_claim")
    await registration_api.post(f"/v1/registrations/{rejected['id']}/appeal", json={"reason": "x"}, headers=headers)

    async with _crm(nc, program) as crm:
        await crm.until(2 + 4 + 2 + 2)
        received = await crm.quiet(1.0)
        assert len(received) == 10  # nothing more: no recorded status
    names = [
        m.event.type.removeprefix("io.dealreg.").removesuffix(".v1") for m in received if m.event.subject == reg["id"]
    ]
    assert names == [
        "registration.submitted", "registration.amended",
        "registration.extension_requested", "registration.outcome_reported",
    ]  # fmt: skip
    for m in received:
        assert m.msg.subject == f"dealreg.registration.{program}.{m.event.type[11:-3]}"
        assert m.msg_id == m.event.id
        decode_data("registration", m.event.type[11:-3], m.event.data)  # every payload matches its contract
    kinds = {m.msg.subject.split(".", 3)[3] for m in received}
    assert {"registration.withdrawn", "registration.appealed"} <= kinds
    amended = next(m for m in received if m.msg.subject.endswith(".registration.amended"))
    data = decode_data("registration", "registration.amended", amended.event.data)
    assert isinstance(data, RegistrationAmended) and data.changed == ["products"] and data.rematch is True
    assert data.customer.name == "Acme Corporation"  # the whole amended terms travel with it
    # the history the partner sees lists the same facts in the same order, and the approval among them
    history = (await registration_api.get(f"{url}/history", headers=headers)).json()["items"]
    assert [h["type"] for h in history] == [
        "registration.submitted", "registration.amended", "registration.approved",
        "registration.extension_requested", "registration.outcome_reported",
    ]  # fmt: skip
    told = [h["event_id"] for h in history if h["type"] != "registration.approved"]
    assert told == [m.event.id for m in received if m.event.subject == reg["id"]]


async def test_an_approval_flows_back_exactly_once(registration_api, nc):
    program = unique_id("prog")
    await enrol(registration_api, program, "alpha")
    headers = partner_token(program, "alpha")
    reg = await register(registration_api, program, "alpha")
    until = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)
    ce = await publish_status(
        nc, reg, "approved", protected_until=until, attribution_percent=100, rule="first_to_register",
        policy_version=2, decided_by="channel-manager@vendor",
    )  # fmt: skip
    url = f"/v1/registrations/{reg['id']}"

    async def approved():
        r = await registration_api.get(url, headers=headers)
        return r.json() if r.json()["status"] == "approved" else None

    got = await wait_until(approved, what="the approval to flow back")
    assert got["status_reason"] == "no_collision"
    assert got["protected_until"] == "2027-06-01T00:00:00Z"
    assert got["attribution_percent"] == 100 and got["version"] == 2

    # the same event again: inside the duplicate window (same Nats-Msg-Id) and, as after the
    # window, re-published under a new Nats-Msg-Id so that JetStream stores it once more
    await publish_status(nc, reg, "approved", event_id=ce.id, protected_until=until)
    await publish_status(nc, reg, "approved", event_id=ce.id, msg_id=str(uuid.uuid4()), protected_until=until)
    # a later decision, applied after the re-publication (one consumer, stream order), marks the point
    await publish_status(nc, reg, "extension_denied", reason="extension_limit_reached")

    async def denied():
        r = await registration_api.get(url, headers=headers)
        return r.json() if r.json()["status_reason"] == "extension_limit_reached" else None

    after = await wait_until(denied, what="the marker decision")
    assert after["version"] == 3 and after["status"] == "approved"
    history = (await registration_api.get(f"{url}/history", headers=headers)).json()["items"]
    assert [h["type"] for h in history] == [
        "registration.submitted", "registration.approved", "registration.extension_denied",
    ]  # fmt: skip
    approval = history[1]
    assert approval["actor"] == "channel-manager@vendor"
    assert approval["data"]["protected_until"] == "2027-06-01T00:00:00Z"
    assert approval["data"]["status_reason"] == "no_collision"


async def test_a_status_for_an_unknown_registration_is_dead_lettered_and_the_consumer_goes_on(registration_api, nc):
    program = unique_id("prog")
    await enrol(registration_api, program, "alpha")
    real = await register(registration_api, program, "alpha")
    ghost = {**real, "id": str(uuid.uuid4())}
    elsewhere = {**real, "program_id": unique_id("prog")}  # right id, wrong program
    async with JetStreamReader(nc, DEAD_LETTER_STREAM, "dealreg.deadletter.registration-status") as dead:
        bad = [await publish_status(nc, ghost, "approved"), await publish_status(nc, elsewhere, "approved")]
        await set_status(registration_api, nc, real, "pending_review")

        async def both_dead():
            got = await dead.poll()
            return {m.event.id for m in got if m.event} >= {ce.id for ce in bad}

        await wait_until(both_dead, what="both to be dead-lettered")
    reason = next(m.msg.headers["Dealreg-Reason"] for m in dead.received if m.event and m.event.id == bad[0].id)
    assert ghost["id"] in reason
    r = await registration_api.get(f"/v1/registrations/{real['id']}", headers=partner_token(program, "alpha"))
    assert r.json()["status"] == "pending_review" and r.json()["version"] == 2


async def test_directory_changes_are_published(registration_api, nc):
    program = unique_id("prog")
    await registration_api.put(f"/v1/programs/{program}", json={"name": "First"}, headers=ADMIN)
    await registration_api.put(f"/v1/programs/{program}", json={"name": "Second"}, headers=ADMIN)
    await registration_api.put(
        f"/v1/programs/{program}/partners/p1", json={"name": "P1", "tier": "gold", "type": "distributor"},
        headers=ADMIN,
    )  # fmt: skip
    async with _crm(nc, program) as crm:
        received = await crm.until(3)
    names = [decode_data("registration", m.event.type[11:-3], m.event.data) for m in received]
    assert [type(n).__name__ for n in names] == ["ProgramUpdated", "ProgramUpdated", "PartnerEnrolled"]
    assert [names[0].name, names[1].name] == ["First", "Second"]
    assert (names[2].partner_id, names[2].tier, names[2].type) == ("p1", "gold", "distributor")
    assert all(m.event.source == f"/dealreg/registration/{program}" for m in received)
