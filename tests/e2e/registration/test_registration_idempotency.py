"""Idempotency-Key on POST /v1/registrations, and races between concurrent requests."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.conftest import unique_id
from tests.e2e.helpers import (
    ADMIN,
    at_once,
    enrol,
    partner_token,
    register,
    registration_body,
    sync_client,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
async def program(registration_api):
    program = unique_id("prog")
    await enrol(registration_api, program, "a", "b")
    return program


async def _facts(pool, program: str) -> int:
    """How many registration facts the program's log holds."""
    async with pool.acquire() as conn:
        return await conn.fetchval(
            "SELECT count(*) FROM registration.events WHERE program_id = $1 AND event_type LIKE 'registration.%'",
            program,
        )


async def test_same_key_and_body_replays_the_stored_response(registration_api, pool, program):
    headers = {**partner_token(program, "a"), "Idempotency-Key": "key-1"}
    body = registration_body()
    first = await registration_api.post("/v1/registrations", json=body, headers=headers)
    assert first.status_code == 201
    # the same JSON value, written differently, is the same body
    same = json.dumps(dict(reversed(list(body.items()))), indent=2).encode()
    second = await registration_api.post(
        "/v1/registrations", content=same, headers={**headers, "Content-Type": "application/json"}
    )
    assert second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["etag"] == first.headers["etag"]
    assert await _facts(pool, program) == 1
    listed = await registration_api.get("/v1/registrations", headers=partner_token(program, "a"))
    assert [i["id"] for i in listed.json()["items"]] == [first.json()["id"]]


async def test_a_replay_returns_the_original_response_even_after_changes(registration_api, pool, program):
    headers = {**partner_token(program, "a"), "Idempotency-Key": "key-2"}
    body = registration_body()
    first = await registration_api.post("/v1/registrations", json=body, headers=headers)
    url = first.headers["location"]
    await registration_api.patch(url, json={"notes": "later"}, headers={**headers, "If-Match": '"1"'})
    again = await registration_api.post("/v1/registrations", json=body, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    assert await _facts(pool, program) == 2  # the submission and the amendment, nothing more


async def test_same_key_with_another_body_is_422(registration_api, pool, program):
    headers = {**partner_token(program, "a"), "Idempotency-Key": "key-3"}
    first = await registration_api.post("/v1/registrations", json=registration_body(), headers=headers)
    assert first.status_code == 201
    r = await registration_api.post("/v1/registrations", json=registration_body(notes="other"), headers=headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("/idempotency-key-reused")
    assert await _facts(pool, program) == 1


async def test_keys_are_per_partner(registration_api, pool, program):
    body = registration_body()
    a = await registration_api.post(
        "/v1/registrations", json=body, headers={**partner_token(program, "a"), "Idempotency-Key": "shared"}
    )
    b = await registration_api.post(
        "/v1/registrations", json=body, headers={**partner_token(program, "b"), "Idempotency-Key": "shared"}
    )
    other_program = unique_id("prog")
    await enrol(registration_api, other_program, "a")
    c = await registration_api.post(
        "/v1/registrations", json=body, headers={**partner_token(other_program, "a"), "Idempotency-Key": "shared"}
    )
    assert [r.status_code for r in (a, b, c)] == [201, 201, 201]
    assert len({a.json()["id"], b.json()["id"], c.json()["id"]}) == 3
    assert b.json()["partner_id"] == "b"
    assert await _facts(pool, program) == 2


async def test_a_refused_request_does_not_use_up_its_key(registration_api, program):
    headers = {**partner_token(program, "a"), "Idempotency-Key": "key-4"}
    bad = await registration_api.post("/v1/registrations", json=registration_body(products=[]), headers=headers)
    assert bad.status_code == 422
    good = await registration_api.post("/v1/registrations", json=registration_body(), headers=headers)
    assert good.status_code == 201


async def test_a_duplicate_external_ref_under_a_new_key_is_still_409(registration_api, program):
    body = registration_body(external_ref="opp-9")
    headers = partner_token(program, "a")
    first = await registration_api.post("/v1/registrations", json=body, headers={**headers, "Idempotency-Key": "k1"})
    other = await registration_api.post("/v1/registrations", json=body, headers={**headers, "Idempotency-Key": "k2"})
    assert other.status_code == 409 and other.json()["existing_registration_id"] == first.json()["id"]
    replay = await registration_api.post("/v1/registrations", json=body, headers={**headers, "Idempotency-Key": "k1"})
    assert replay.status_code == 201 and replay.json()["id"] == first.json()["id"]


@pytest.mark.parametrize("key", ["", "k" * 256, "tab\there"])
async def test_a_malformed_key_is_422(registration_api, program, key):
    headers = {**partner_token(program, "a"), "Idempotency-Key": key}
    r = await registration_api.post("/v1/registrations", json=registration_body(), headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "Idempotency-Key"


def test_a_key_expires_after_24_hours(settings):
    now = [dt.datetime(2027, 1, 1, 9, 0, tzinfo=dt.UTC)]
    with sync_client(settings, clock=lambda: now[0]) as client:
        program = unique_id("prog")
        client.put(f"/v1/programs/{program}", json={"name": "p"}, headers=ADMIN)
        client.put(
            f"/v1/programs/{program}/partners/a", json={"name": "a", "tier": "gold", "type": "msp"}, headers=ADMIN
        )
        headers = {**partner_token(program, "a"), "Idempotency-Key": "daily"}
        body = registration_body(external_ref=None)
        first = client.post("/v1/registrations", json=body, headers=headers)
        now[0] += dt.timedelta(hours=23, minutes=59)
        assert client.post("/v1/registrations", json=body, headers=headers).json()["id"] == first.json()["id"]
        now[0] += dt.timedelta(minutes=2)
        later = client.post("/v1/registrations", json=body, headers=headers)
        assert later.status_code == 201 and later.json()["id"] != first.json()["id"]
        # and the key now stands for the new registration
        assert client.post("/v1/registrations", json=body, headers=headers).json()["id"] == later.json()["id"]


# --- races: requests that really run at the same time -------------------------------------------


@pytest.fixture(scope="module")
def racing(settings):
    with sync_client(settings) as client:
        program = unique_id("race")
        client.put(f"/v1/programs/{program}", json={"name": "p"}, headers=ADMIN)
        client.put(
            f"/v1/programs/{program}/partners/a", json={"name": "a", "tier": "gold", "type": "msp"}, headers=ADMIN
        )
        yield client, program, partner_token(program, "a")


def _list(client, headers, **query) -> list[dict]:
    return client.get("/v1/registrations", params={"limit": 500, **query}, headers=headers).json()["items"]


def test_concurrent_requests_with_one_key_record_one_registration(racing):
    client, _, headers = racing
    key = unique_id("key")
    body = registration_body()
    replies = at_once(
        *[lambda: client.post("/v1/registrations", json=body, headers={**headers, "Idempotency-Key": key})] * 8
    )
    assert [r.status_code for r in replies] == [201] * 8, [r.text for r in replies]
    assert len({r.json()["id"] for r in replies}) == 1
    assert len(_list(client, headers, external_ref=body["external_ref"])) == 1


def test_concurrent_requests_with_one_key_and_different_bodies(racing):
    client, _, headers = racing
    key = unique_id("key")
    bodies = [registration_body(notes=f"variant {i}") for i in range(6)]
    replies = at_once(
        *[
            (lambda b=b: client.post("/v1/registrations", json=b, headers={**headers, "Idempotency-Key": key}))
            for b in bodies
        ]
    )
    codes = sorted(r.status_code for r in replies)
    assert codes == [201, 422, 422, 422, 422, 422], [r.text for r in replies]
    created = {b["external_ref"] for b in bodies} & {i["external_ref"] for i in _list(client, headers)}
    assert len(created) == 1


def test_concurrent_submissions_with_one_external_ref_record_one(racing):
    client, _, headers = racing
    ref = unique_id("ref")
    replies = at_once(
        *[lambda: client.post("/v1/registrations", json=registration_body(external_ref=ref), headers=headers)] * 6
    )
    codes = sorted(r.status_code for r in replies)
    assert codes == [201, 409, 409, 409, 409, 409], [r.text for r in replies]
    winner = next(r.json()["id"] for r in replies if r.status_code == 201)
    assert all(r.json()["existing_registration_id"] == winner for r in replies if r.status_code == 409)
    assert [i["id"] for i in _list(client, headers, external_ref=ref)] == [winner]


def test_concurrent_amendments_of_one_version_let_one_win(racing):
    client, _, headers = racing
    reg = client.post("/v1/registrations", json=registration_body(), headers=headers).json()
    url = f"/v1/registrations/{reg['id']}"
    replies = at_once(
        *[
            (lambda i=i: client.patch(url, json={"notes": f"edit {i}"}, headers={**headers, "If-Match": '"1"'}))
            for i in range(6)
        ]
    )
    codes = sorted(r.status_code for r in replies)
    assert codes == [200, 412, 412, 412, 412, 412], [r.text for r in replies]
    winner = next(r.json()["notes"] for r in replies if r.status_code == 200)
    after = client.get(url, headers=headers).json()
    assert after["version"] == 2 and after["notes"] == winner


async def test_a_registration_submitted_concurrently_by_two_partners_is_theirs_each(registration_api, program):
    a = await register(registration_api, program, "a", external_ref="same")
    b = await register(registration_api, program, "b", external_ref="same")
    assert a["id"] != b["id"] and (a["partner_id"], b["partner_id"]) == ("a", "b")
