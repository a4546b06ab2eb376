"""The wire contract: every event round-trips, the checked-in schemas are current, old payloads
still decode, and subjects and CloudEvent types follow the naming rules."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import msgspec
import pytest

from contracts.envelope import (
    EVENTS_BY_SERVICE,
    CloudEvent,
    UnknownEventType,
    cloudevent_type,
    decode_data,
    decode_envelope,
    decode_event,
    encode,
    envelope,
    event_name_of,
    subject_for,
)
from contracts.schemas import SCHEMA_DIR, all_schemas, render

pytestmark = pytest.mark.contract

T = dt.datetime(2027, 1, 4, 9, 30, 15, 123000, tzinfo=dt.UTC)
ALL_EVENTS = [(service, name, cls) for service, events in EVENTS_BY_SERVICE.items() for name, cls in events.items()]
IDS = [f"{service}:{name}" for service, name, _ in ALL_EVENTS]

# SPEC section 6: what each service publishes
SPEC_EVENTS = {
    "registration": {
        "registration.submitted", "registration.amended", "registration.withdrawn",
        "registration.extension_requested", "registration.outcome_reported", "registration.appealed",
        "program.updated", "partner.enrolled",
    },
    "conflict": {
        "registration.approved", "registration.pending_review", "registration.info_requested",
        "registration.waitlisted", "registration.under_review", "registration.rejected", "registration.expired",
        "registration.appeal_refused", "registration.extension_denied", "conflict.opened", "conflict.escalated",
        "conflict.resolved", "conflict.reopened", "ownership.granted", "ownership.extended", "ownership.expiring",
        "ownership.released", "sla.breached", "policy.published", "direct_deal.recorded", "direct_deal.released",
    },
}  # fmt: skip


def sample(t: msgspec.inspect.Type, full: bool, name: str = "x") -> Any:
    """A value of type `t`; `full` fills optional fields too (otherwise only the required ones)."""
    match t:
        case msgspec.inspect.StructType():
            return t.cls(**{f.name: sample(f.type, full, f.name) for f in t.fields if f.required or full})
        case msgspec.inspect.UnionType():
            options = [o for o in t.types if not isinstance(o, msgspec.inspect.NoneType)]
            return sample(options[0], full, name) if options and full else None
        case msgspec.inspect.ListType():
            return [sample(t.item_type, full, name)] if full or name != "x" else []
        case msgspec.inspect.DictType():
            return {"k": sample(t.value_type, full, name)}
        case msgspec.inspect.StrType():
            return f"{name}-value"
        case msgspec.inspect.IntType():
            return 3
        case msgspec.inspect.FloatType():
            return 0.75
        case msgspec.inspect.BoolType():
            return True
        case msgspec.inspect.DateTimeType():
            return T
        case msgspec.inspect.DateType():
            return T.date()
        case msgspec.inspect.AnyType():
            return {"nested": [1, "two", None]}
    raise AssertionError(f"no sample for {t!r}")


def instance(cls: type[msgspec.Struct], full: bool) -> msgspec.Struct:
    return sample(msgspec.inspect.type_info(cls), full)


def test_every_event_the_spec_names_has_a_contract():
    for service, names in SPEC_EVENTS.items():
        assert names <= set(EVENTS_BY_SERVICE[service]), names - set(EVENTS_BY_SERVICE[service])


@pytest.mark.parametrize(("service", "name", "cls"), ALL_EVENTS, ids=IDS)
@pytest.mark.parametrize("full", [False, True], ids=["required-only", "every-field"])
def test_every_event_round_trips_through_its_cloudevent(service, name, cls, full):
    data = instance(cls, full)
    event_id = str(uuid.uuid4())
    ce = envelope(
        service=service, event_name=name, event_id=event_id, subject="subject-1", time=T, data=encode(data),
        program_id="acme-eu", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    )  # fmt: skip
    wire = encode(ce)
    decoded_ce, decoded = decode_event(wire)
    assert decoded == data
    assert type(decoded) is cls
    assert decoded_ce.id == event_id and decoded_ce.time == T and decoded_ce.subject == "subject-1"
    assert (decoded_ce.service, decoded_ce.program_id, decoded_ce.event_name) == (service, "acme-eu", name)
    raw = json.loads(wire)
    assert raw["specversion"] == "1.0" and raw["datacontenttype"] == "application/json"
    assert raw["type"] == f"io.dealreg.{name}.v1" and raw["source"] == f"/dealreg/{service}/acme-eu"
    assert isinstance(raw["data"], dict)  # structured mode: data is JSON, not a string


def test_schemas_on_disk_are_current():
    """Regenerate with `dealreg schemas` (contracts.schemas.write_schemas) when this fails."""
    expected = {rel: render(schema) for rel, schema in all_schemas().items()}
    on_disk = {str(p.relative_to(SCHEMA_DIR)): p.read_text() for p in SCHEMA_DIR.rglob("*.json")}
    assert sorted(on_disk) == sorted(expected), "schema files missing or left over"
    stale = [rel for rel in expected if on_disk[rel] != expected[rel]]
    assert not stale, f"stale schemas: {stale}"


def test_a_changed_contract_makes_its_schema_stale(monkeypatch):
    """The staleness check really compares contents: a new field changes the rendered schema."""
    from contracts import registration_events, schemas

    class Submitted(registration_events.RegistrationSubmitted, frozen=True, kw_only=True):
        new_field: str = "x"

    changed = {**EVENTS_BY_SERVICE["registration"], "registration.submitted": Submitted}
    monkeypatch.setitem(schemas.EVENTS_BY_SERVICE, "registration", changed)
    rel = "registration/registration.submitted.v1.json"
    assert render(schemas.all_schemas()[rel]) != (SCHEMA_DIR / rel).read_text()


def test_every_schema_describes_its_cloudevent():
    for rel, schema in all_schemas().items():
        service, file = rel.split("/")
        name = file.removesuffix(".v1.json")
        assert schema["title"] == cloudevent_type(name)
        assert schema["properties"]["type"] == {"const": cloudevent_type(name)}
        assert {"id", "source", "type", "subject", "time", "data"} <= set(schema["required"])
        assert schema["properties"]["source"]["pattern"].startswith(f"^/dealreg/{service}/")


def test_an_older_submission_without_later_fields_still_decodes():
    old = {
        "registration_id": "r1", "program_id": "acme", "partner_id": "p1", "partner_tier": "gold",
        "partner_type": "msp", "submitted_by": "jane",
        "customer": {"name": "Acme", "country": "US"}, "products": ["firewall"], "deal_type": "new",
        "estimated_value": {"amount": "10.00", "currency": "USD"}, "expected_close": "2027-03-31",
        "submitted_at": "2027-01-04T09:30:00Z",
    }  # fmt: skip
    event = decode_data("registration", "registration.submitted", json.dumps(old).encode())
    assert event.notes is None and event.external_ref is None and event.customer.domain is None


def test_older_status_and_conflict_payloads_still_decode():
    status = {
        "registration_id": "r1", "program_id": "acme", "partner_id": "p1", "status": "approved",
        "reason": "no_collision", "decided_at": "2027-01-04T09:30:00Z",
    }  # fmt: skip
    event = decode_data("conflict", "registration.approved", json.dumps(status).encode())
    assert event.policy_version == 0 and event.protected_until is None and event.attribution_percent is None
    opened = {
        "conflict_id": "c1", "program_id": "acme", "policy_version": 1, "opened_at": "2027-01-04T09:30:00Z",
        "claims": [{"claim_id": "k1", "kind": "registration", "submitted_at": "2027-01-04T09:00:00Z"}],
    }  # fmt: skip
    event = decode_data("conflict", "conflict.opened", json.dumps(opened).encode())
    assert event.evidence == [] and event.rule_trail == [] and event.cause == "collision"


def test_a_newer_payload_with_fields_this_version_does_not_know_still_decodes():
    data = msgspec.to_builtins(instance(EVENTS_BY_SERVICE["registration"]["registration.withdrawn"], True))
    data["added_in_a_later_version"] = {"anything": [1, 2]}
    event = decode_data("registration", "registration.withdrawn", json.dumps(data).encode())
    assert event.registration_id == "registration_id-value"


@pytest.mark.parametrize(
    ("service", "program", "event", "subject"),
    [
        ("registration", "acme", "registration.submitted", "dealreg.registration.acme.registration.submitted"),
        ("conflict", "acme", "conflict.escalated", "dealreg.conflict.acme.conflict.escalated"),
        ("conflict", "a-b_c9", "ownership.granted", "dealreg.conflict.a-b_c9.ownership.granted"),
        ("conflict", "p" * 64, "sla.breached", f"dealreg.conflict.{'p' * 64}.sla.breached"),
    ],
)
def test_subjects_name_service_program_and_event(service, program, event, subject):
    assert subject_for(service, program, event) == subject


@pytest.mark.parametrize(
    "program", ["", "Acme", "-acme", "_acme", "ac.me", "ac me", "acme*", "acme>", "ac\u00e9", "p" * 65, "acme\n"]
)
def test_an_invalid_program_id_is_refused_by_subject_for(program):
    with pytest.raises(ValueError):
        subject_for("registration", program, "registration.submitted")


def test_cloudevent_types_round_trip_and_foreign_types_are_refused():
    for _, name, _ in ALL_EVENTS:
        assert event_name_of(cloudevent_type(name)) == name
    for foreign in ("com.example.thing", "io.dealreg.registration.submitted.v2", "registration.submitted"):
        with pytest.raises(UnknownEventType):
            event_name_of(foreign)
    ce = envelope(
        service="registration", event_name="registration.unheard_of", event_id="e", subject="s", time=T,
        data=b"{}", program_id="acme",
    )  # fmt: skip
    with pytest.raises(UnknownEventType):
        decode_event(encode(ce))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"{}",
        b'{"id": "x"}',
        b"\xff\xfe",
        b'{"id": "\xff"}',
        b"[]",
        b'{"specversion": "1.0", "id": 5}',
    ],
)
def test_a_malformed_envelope_is_a_decode_error(payload):
    with pytest.raises(msgspec.DecodeError):
        decode_envelope(payload)


def test_data_that_is_not_utf8_is_a_decode_error():
    with pytest.raises(msgspec.DecodeError):
        decode_data("registration", "program.updated", b'{"program_id": "\xff"}')


def test_cloudevent_fields_are_the_structured_mode_attributes():
    assert set(CloudEvent.__struct_fields__) == {
        "specversion", "id", "source", "type", "subject", "time", "datacontenttype", "traceparent", "data",
    }  # fmt: skip
