"""Arbitrary JSON (and arbitrary bytes) against POST and PATCH: a clear 4xx problem or success, never a 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from services.registration.app import bootstrap
from tests.conftest import unique_id
from tests.e2e.helpers import ADMIN, partner_token, registration_body

pytestmark = pytest.mark.e2e

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "\x00", "US", "USD", "2027-03-31", "125000.00", "new", "acme.com", "NaN", "-1"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False), text
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5),
    max_leaves=25,
)
FIELDS = list(registration_body())


@st.composite
def near_valid_bodies(draw) -> dict:
    """A valid registration with some fields replaced, dropped or added: reaches the deeper checks."""
    body = registration_body()
    for name in draw(
        st.lists(
            st.sampled_from(
                [
                    *FIELDS,
                    "customer.name",
                    "customer.country",
                    "customer.domain",
                    "estimated_value.amount",
                    "estimated_value.currency",
                ]
            ),
            max_size=3,
        )
    ):
        outer, _, inner = name.partition(".")
        action = draw(st.sampled_from(["replace", "drop"]))
        target = body if not inner else body.get(outer)
        key = inner or outer
        if not isinstance(target, dict):
            continue
        if action == "drop":
            target.pop(key, None)
        else:
            target[key] = draw(json_values)
    if draw(st.booleans()):
        body[draw(text)] = draw(json_values)
    return body


bodies = st.one_of(json_values, near_valid_bodies())


def _encode(body: object) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


@pytest.fixture(scope="module")
def client(settings):
    """The real app, without background workers, for synchronous property tests."""
    with TestClient(app=bootstrap(settings, background=False)) as c:
        yield c


@pytest.fixture(scope="module")
def enrolled(client):
    program = unique_id("fuzz")
    assert client.put(f"/v1/programs/{program}", json={"name": "fuzz"}, headers=ADMIN).status_code == 200
    r = client.put(
        f"/v1/programs/{program}/partners/a", json={"name": "a", "tier": "gold", "type": "msp"}, headers=ADMIN
    )
    assert r.status_code == 200
    return partner_token(program, "a")


def _assert_problem(r, allowed: set[int]) -> None:
    event(f"status {r.status_code}")
    assert r.status_code in allowed, r.text
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json"), r.text
        problem = r.json()
        assert problem["status"] == r.status_code and problem["type"] and problem["detail"]
        if r.status_code == 422:
            assert problem["errors"] and all(isinstance(e["field"], str) and e["message"] for e in problem["errors"])


@FUZZ
@given(body=bodies)
def test_post_any_json_never_500(client, enrolled, body):
    r = client.post(
        "/v1/registrations", content=_encode(body), headers={**enrolled, "Content-Type": "application/json"}
    )
    _assert_problem(r, {201, 400, 409, 422})
    if r.status_code == 201:
        got = client.get(r.headers["location"], headers=enrolled)
        assert got.status_code == 200 and got.json() == r.json()


@FUZZ
@given(raw=st.binary(max_size=200))
def test_post_any_bytes_never_500(client, enrolled, raw):
    r = client.post("/v1/registrations", content=raw, headers={**enrolled, "Content-Type": "application/json"})
    _assert_problem(r, {201, 400, 409, 422})


@pytest.fixture(scope="module")
def registration(client, enrolled):
    r = client.post("/v1/registrations", json=registration_body(external_ref=None), headers=enrolled)
    assert r.status_code == 201
    return r.json()["id"]


@st.composite
def patches(draw) -> object:
    if draw(st.integers(0, 3)) == 0:
        return draw(json_values)
    valid = {
        "customer": registration_body()["customer"], "products": ["fw"], "notes": "n",
        "estimated_value": {"amount": "1.00", "currency": "EUR"}, "expected_close": "2027-09-30",
    }  # fmt: skip
    names = draw(st.lists(st.sampled_from([*valid, "external_ref", "status"]), max_size=3, unique=True))
    return {n: (draw(json_values) if draw(st.booleans()) else valid.get(n)) for n in names}


@FUZZ
@given(patch=patches())
def test_patch_any_json_never_500(client, enrolled, registration, patch):
    url = f"/v1/registrations/{registration}"
    version = client.get(url, headers=enrolled).json()["version"]
    r = client.patch(
        url,
        content=_encode(patch),
        headers={**enrolled, "If-Match": f'"{version}"', "Content-Type": "application/json"},
    )
    _assert_problem(r, {200, 400, 409, 422})
    after = client.get(url, headers=enrolled).json()
    assert after["version"] == (version + 1 if r.status_code == 200 else version)
