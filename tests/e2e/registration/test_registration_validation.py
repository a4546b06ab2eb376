"""Bad input gets a clear problem (422 with field errors, 400 not JSON, 413 too large), never a 500,
and changes nothing."""

from __future__ import annotations

import json

import pytest

from tests.conftest import unique_id
from tests.e2e.helpers import ADMIN, enrol, partner_token, register, registration_body

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024


@pytest.fixture
async def partner(registration_api):
    program = unique_id("prog")
    await enrol(registration_api, program, "alpha")
    return program, "alpha", partner_token(program, "alpha")


def _customer(**changes) -> dict:
    customer = registration_body()["customer"]
    customer.update(changes)
    return customer


def _without(*names: str) -> dict:
    body = registration_body()
    for name in names:
        del body[name]
    return body


# (body, the field the first error names)
INVALID = [
    (_without("customer"), "customer"),
    (_without("products"), "products"),
    (_without("deal_type"), "deal_type"),
    (_without("estimated_value"), "estimated_value"),
    (_without("expected_close"), "expected_close"),
    (registration_body(customer={"country": "US"}), "customer.name"),
    (registration_body(customer={"name": "Acme"}), "customer.country"),
    (registration_body(customer=_customer(country="USA")), "customer.country"),
    (registration_body(customer=_customer(country="us")), "customer.country"),
    (registration_body(customer=_customer(country="XX")), "customer.country"),
    (registration_body(customer=_customer(name="")), "customer.name"),
    (registration_body(customer=_customer(name="   ")), "customer.name"),
    (registration_body(customer=_customer(name="x" * 201)), "customer.name"),
    (registration_body(customer=_customer(domain="not a domain")), "customer.domain"),
    (registration_body(customer=_customer(domain="localhost")), "customer.domain"),
    (registration_body(customer=_customer(domain="http://10.0.0.1/")), "customer.domain"),
    (registration_body(customer=_customer(duns="12-34")), "customer.duns"),
    (registration_body(customer=_customer(tax_id="'; DROP TABLE x;--")), "customer.tax_id"),
    (registration_body(customer=_customer(shoe_size=44)), "customer.shoe_size"),
    (registration_body(customer="Acme"), "customer"),
    (registration_body(customer=["Acme"]), "customer"),
    (registration_body(products=[]), "products"),
    (registration_body(products="firewall"), "products"),
    (registration_body(products=[1, 2]), "products[0]"),
    (registration_body(products=[""]), "products[0]"),
    (registration_body(products=["x" * 65]), "products[0]"),
    (registration_body(products=["fw"] * 51), "products"),
    (registration_body(products=["fw", "fw"]), "products"),
    (registration_body(products=["fw", "  "]), "products"),
    (registration_body(products=[{"$gt": ""}]), "products[0]"),
    (registration_body(deal_type="upsell"), "deal_type"),
    (registration_body(deal_type=5), "deal_type"),
    (registration_body(deal_type=None), "deal_type"),
    (registration_body(estimated_value={"amount": 125000.0, "currency": "USD"}), "estimated_value.amount"),
    (registration_body(estimated_value={"amount": 125000, "currency": "USD"}), "estimated_value.amount"),
    (registration_body(estimated_value={"amount": "1,000", "currency": "USD"}), "estimated_value.amount"),
    (registration_body(estimated_value={"amount": "-5", "currency": "USD"}), "estimated_value.amount"),
    (registration_body(estimated_value={"amount": "NaN", "currency": "USD"}), "estimated_value.amount"),
    (registration_body(estimated_value={"amount": "Infinity", "currency": "USD"}), "estimated_value.amount"),
    (registration_body(estimated_value={"amount": "1e9", "currency": "USD"}), "estimated_value.amount"),
    (registration_body(estimated_value={"amount": "10", "currency": "usd"}), "estimated_value.currency"),
    (registration_body(estimated_value={"amount": "10", "currency": "ABC"}), "estimated_value.currency"),
    (registration_body(estimated_value={"amount": "10"}), "estimated_value.currency"),
    (registration_body(estimated_value="125000 USD"), "estimated_value"),
    (registration_body(expected_close="2027-13-45"), "expected_close"),
    (registration_body(expected_close="next quarter"), "expected_close"),
    (registration_body(expected_close="2027-03-31T00:00:00Z"), "expected_close"),
    (registration_body(expected_close=20270331), "expected_close"),
    (registration_body(notes="n" * 10_001), "notes"),
    (registration_body(notes=["a"]), "notes"),
    (registration_body(external_ref=""), "external_ref"),
    (registration_body(external_ref="r" * 129), "external_ref"),
    (registration_body(external_ref={"nested": {"junk": [1, 2, {"x": None}]}}), "external_ref"),
    (registration_body(partner_id="someone-else"), "partner_id"),
    (registration_body(status="approved"), "status"),
    ([], ""),
    ("a string", ""),
    (42, ""),
    (True, ""),
]


@pytest.mark.parametrize(("body", "field"), INVALID, ids=[f"{i}-{f or 'body'}" for i, (_, f) in enumerate(INVALID)])
async def test_invalid_bodies_are_422_with_field_errors(registration_api, partner, body, field):
    _, _, headers = partner
    r = await registration_api.post("/v1/registrations", json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["type"].endswith("/validation-error") and problem["status"] == 422 and problem["detail"]
    assert problem["errors"] and all(set(e) == {"field", "message"} and e["message"] for e in problem["errors"])
    assert problem["errors"][0]["field"] == field
    listed = await registration_api.get("/v1/registrations", headers=headers)
    assert listed.json()["items"] == []  # nothing was recorded


async def test_every_invalid_term_is_reported(registration_api, partner):
    _, _, headers = partner
    body = registration_body(
        customer=_customer(country="XX", domain="nope"),
        estimated_value={"amount": "10", "currency": "ABC"},
    )
    r = await registration_api.post("/v1/registrations", json=body, headers=headers)
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"customer.country", "customer.domain", "estimated_value.currency"}


@pytest.mark.parametrize(
    "edge",
    [
        {"notes": "n" * 10_000},
        {"customer": _customer(name="Ünïcødé GmbH 株式会社 🚀", city="Zürich", country="CH")},
        {"customer": _customer(domain="bücher.de")},
        {"customer": _customer(domain="ACME.COM")},
        {"estimated_value": {"amount": "0", "currency": "JPY"}},
        {"estimated_value": {"amount": "999999999999999.9999", "currency": "EUR"}},
        {"products": [f"p{i}" for i in range(50)]},
        {"external_ref": "r" * 128},
        {"notes": None, "external_ref": None},
        {"customer": _customer(name="Robert'); DROP TABLE registration.events;--")},
        {"customer": _customer(name='Acme", "partner_id": "other')},
        {"notes": "\\u0000 is not a NUL when escaped twice"},
    ],
)
async def test_edge_values_within_the_rules_are_accepted(registration_api, partner, edge):
    _, _, headers = partner
    body = registration_body(**edge)
    r = await registration_api.post("/v1/registrations", json=body, headers=headers)
    assert r.status_code == 201, r.text
    got = await registration_api.get(r.headers["location"], headers=headers)
    for name, value in edge.items():
        if name != "customer":
            assert got.json()[name] == value
    assert got.json()["customer"]["name"] == body["customer"]["name"]


RAW_BODIES = [
    b"",
    b"   ",
    b"not json",
    b"{",
    b'{"customer": }',
    b"{'single': 'quotes'}",
    b'{"amount": NaN}',
    b'{"amount": Infinity}',
    b'{"a": 1} trailing',
    b"\xff\xfe\x00{",
    b'{"customer": {"name": "\xc3\x28"}}',  # invalid UTF-8 inside a string
    b'{"notes": "\xed\xa0\x80"}',  # a UTF-8-encoded surrogate
    b'{"notes": "\\ud800"}',  # a lone surrogate escape
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
]


@pytest.mark.parametrize("raw", RAW_BODIES, ids=range(len(RAW_BODIES)))
async def test_a_body_that_is_not_json_is_400(registration_api, partner, raw):
    _, _, headers = partner
    r = await registration_api.post(
        "/v1/registrations", content=raw, headers={**headers, "Content-Type": "application/json"}
    )
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    if raw[:1] not in (b"[", b"{") or raw.count(b"[") > 1000 or raw.count(b"{") > 1000:
        assert r.status_code == 400, r.text


HOSTILE = [
    registration_body(customer=_customer(name="a\u0000b")),
    registration_body(notes="before\u0000after"),
    registration_body(external_ref="ref\u0000"),
    registration_body(products=["fw\u0000"]),
    registration_body(customer=_customer(city="\u0000")),
    registration_body(notes="\u202e\ufeff\u200b\U0010ffff"),
    registration_body(customer=_customer(name="x" * 900_000)),
    registration_body(notes="\U0001f600" * 2_000),
    registration_body(estimated_value={"amount": "1" * 1000, "currency": "USD"}),
    registration_body(estimated_value={"amount": 1e308, "currency": "USD"}),
    registration_body(estimated_value={"amount": 10**40, "currency": "USD"}),
    registration_body(expected_close="9999-12-31"),
    registration_body(expected_close="0001-01-01"),
    registration_body(customer=_customer(domain="http://" + "a" * 2000 + ".com")),
    registration_body(customer=_customer(domain="http://[::1")),
    registration_body(customer=_customer(domain="https://xn--zz.com")),
    registration_body(customer=_customer(domain="https://" + "a." * 120 + "com")),
    registration_body(customer=_customer(domain="http://acme.com:99999999999")),
    registration_body(external_ref="' OR '1'='1"),
    registration_body(notes='"},"status":"approved","x":{"'),
    {"__proto__": {"admin": True}, **registration_body()},
    {"customer": {"name": {"name": {"name": {"name": "deep"}}}}},
]


@pytest.mark.parametrize("body", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_bodies_never_cause_a_500(registration_api, partner, body):
    _, _, headers = partner
    r = await registration_api.post("/v1/registrations", json=body, headers=headers)
    assert r.status_code in (201, 400, 422), r.text
    if r.status_code != 201:
        assert r.headers["content-type"].startswith("application/problem+json")
        return
    got = await registration_api.get(r.headers["location"], headers=headers)
    assert got.status_code == 200
    assert got.json()["notes"] == body["notes"] and got.json()["customer"] == body["customer"]


async def test_duplicate_keys_are_never_a_500(registration_api, partner):
    _, _, headers = partner
    good = json.dumps(registration_body())
    raw = good[:-1] + ', "deal_type": "bogus"}'
    r = await registration_api.post(
        "/v1/registrations", content=raw.encode(), headers={**headers, "Content-Type": "application/json"}
    )
    assert r.status_code in (400, 422), r.text


async def test_oversized_bodies_are_413(registration_api, partner):
    program, partner_id, headers = partner
    reg = await register(registration_api, program, partner_id)
    big = registration_body(notes="n" * (MIB + 10))
    r = await registration_api.post("/v1/registrations", json=big, headers=headers)
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith("application/problem+json")

    url = f"/v1/registrations/{reg['id']}"
    r = await registration_api.patch(url, json={"notes": "n" * (MIB + 10)}, headers={**headers, "If-Match": '"1"'})
    assert r.status_code == 413
    for action in ("withdraw", "extension", "appeal"):
        r = await registration_api.post(f"{url}/{action}", json={"reason": "r" * (MIB + 10)}, headers=headers)
        assert r.status_code == 413, (action, r.text)
    r = await registration_api.get(url, headers=headers)
    assert r.json()["version"] == 1


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"customer": {"name": "x"}}, "customer.country"),
        ({"products": []}, "products"),
        ({"estimated_value": {"amount": 1.5, "currency": "USD"}}, "estimated_value.amount"),
        ({"expected_close": "soon"}, "expected_close"),
        ({"notes": "n" * 10_001}, "notes"),
        ({"external_ref": "new-ref"}, "external_ref"),
        ({"status": "approved"}, "status"),
        ({"deal_type": "renewal"}, "deal_type"),
        ([], ""),
    ],
)
async def test_invalid_amendments_are_422_and_change_nothing(registration_api, partner, patch, field):
    program, partner_id, headers = partner
    reg = await register(registration_api, program, partner_id)
    url = f"/v1/registrations/{reg['id']}"
    r = await registration_api.patch(url, json=patch, headers={**headers, "If-Match": '"1"'})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert (await registration_api.get(url, headers=headers)).json() == reg


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("outcome", {"result": "draw", "closed_on": "2027-01-01"}, "result"),
        ("outcome", {"result": "lost"}, "closed_on"),
        ("outcome", {"result": "lost", "closed_on": "2027-01-01", "amount": 5}, "amount"),
        ("outcome", {"result": "lost", "closed_on": "2027-01-01", "amount": "-1"}, "amount"),
        ("appeal", {"reason": ""}, "reason"),
        ("appeal", {"reason": "r" * 2001}, "reason"),
        ("withdraw", {"reason": 5}, "reason"),
        ("withdraw", {"why": "x"}, "why"),
        ("extension", [], ""),
    ],
)
async def test_invalid_action_bodies_are_422(registration_api, partner, action, body, field):
    program, partner_id, headers = partner
    reg = await register(registration_api, program, partner_id)
    r = await registration_api.post(f"/v1/registrations/{reg['id']}/{action}", json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field


async def test_a_non_json_action_body_is_400(registration_api, partner):
    program, partner_id, headers = partner
    reg = await register(registration_api, program, partner_id)
    for action in ("withdraw", "outcome", "appeal"):
        r = await registration_api.post(
            f"/v1/registrations/{reg['id']}/{action}", content=b"{oops", headers={**headers, "Content-Type": "text/x"}
        )
        assert r.status_code == 400, (action, r.text)


@pytest.mark.parametrize(
    "query",
    [
        "external_ref=%00", "status=%00", "program_id=%00", "cursor=%00", "external_ref=%ED%A0%80",
        "external_ref=%FF", "cursor=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkw", "cursor=LTE",
        "status=%27%20OR%201%3D1%20--", "limit=99999999999999999999999",
    ],
)  # fmt: skip
async def test_hostile_query_parameters_are_never_a_500(registration_api, partner, query):
    _, _, headers = partner
    for who in (headers, ADMIN):
        r = await registration_api.get(f"/v1/registrations?{query}", headers=who)
        assert r.status_code in (200, 400), r.text
        if r.status_code == 200:
            assert r.json()["items"] == []


@pytest.mark.parametrize("rid", ["%00", "%ED%A0%80", "%FF", "x" * 5000, "%27%20OR%201%3D1", ".."])
async def test_hostile_registration_ids_are_404(registration_api, partner, rid):
    _, _, headers = partner
    for suffix in ("", "/decision", "/history"):
        r = await registration_api.get(f"/v1/registrations/{rid}{suffix}", headers=headers)
        assert r.status_code == 404, r.text
    r = await registration_api.post(f"/v1/registrations/{rid}/withdraw", headers=headers)
    assert r.status_code == 404, r.text
    r = await registration_api.patch(
        f"/v1/registrations/{rid}", json={"notes": "x"}, headers={**headers, "If-Match": '"1"'}
    )
    assert r.status_code == 404, r.text
