"""Tokens, roles and scopes: who may see and do what, and that nothing leaks across partners or programs."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest

from tests.conftest import unique_id
from tests.e2e.conftest import SIGNING_KEY, token
from tests.e2e.helpers import ADMIN, enrol, partner_token, register, registration_body

pytestmark = pytest.mark.e2e


def _bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def _expired() -> str:
    return jwt.encode(
        {"iss": "dealreg", "sub": "x", "role": "admin", "iat": 0, "exp": 1}, SIGNING_KEY, algorithm="HS256"
    )


def _forged() -> str:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    return jwt.encode(
        {"iss": "dealreg", "sub": "x", "role": "admin", "iat": now, "exp": now + 60},
        "another-signing-key-0123456789abcdef",
        algorithm="HS256",
    )


def _unsigned() -> str:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    return jwt.encode(
        {"iss": "dealreg", "sub": "x", "role": "admin", "iat": now, "exp": now + 60}, None, algorithm="none"
    )


def _signed(**claims) -> str:
    """A token signed with the right key whose claims are not ours to accept."""
    now = int(dt.datetime.now(dt.UTC).timestamp())
    base = {"iss": "dealreg", "sub": "x", "role": "admin", "iat": now, "exp": now + 60}
    return jwt.encode({k: v for k, v in {**base, **claims}.items() if v is not None}, SIGNING_KEY, algorithm="HS256")


BAD_AUTH = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Basic YWRtaW46YWRtaW4="},
    _bearer("not-a-jwt"),
    _bearer(_expired()),
    _bearer(_forged()),
    _bearer(_unsigned()),
    _bearer(_signed(iss="someone-else")),
    _bearer(_signed(role="superuser")),
    _bearer(_signed(exp=None)),
    _bearer(_signed(sub=None)),
    _bearer(_signed(role="authority", level="1")),
    _bearer(jwt.encode({"role": "admin"}, SIGNING_KEY, algorithm="HS512")),
]


@pytest.fixture
async def world(registration_api):
    """Two programs; partners a and b in the first, c in the second; one registration each."""
    p1, p2 = unique_id("prog"), unique_id("prog")
    await enrol(registration_api, p1, "a", "b")
    await enrol(registration_api, p2, "c")
    ra = await register(registration_api, p1, "a", external_ref="shared-ref")
    rb = await register(registration_api, p1, "b", external_ref="shared-ref")
    rc = await register(registration_api, p2, "c", external_ref="shared-ref")
    return {"p1": p1, "p2": p2, "a": ra, "b": rb, "c": rc}


@pytest.mark.parametrize("headers", BAD_AUTH, ids=lambda h: str(h)[:40])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/registrations"),
        ("GET", "/v1/registrations/x"),
        ("POST", "/v1/registrations"),
        ("PATCH", "/v1/registrations/x"),
        ("POST", "/v1/registrations/x/withdraw"),
        ("PUT", "/v1/programs/p"),
        ("PUT", "/v1/programs/p/partners/q"),
    ],
)
async def test_no_or_bad_token_is_401(registration_api, headers, method, path):
    r = await registration_api.request(method, path, headers=headers, json={"name": "x"})
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_wrong_role_is_403(registration_api, world):
    p1 = world["p1"]
    body = registration_body()
    for role_headers in (
        token("ops", program=p1),
        token("admin"),
        token("authority", program=p1, level=1),
        token("integration", program=p1),
    ):
        r = await registration_api.post("/v1/registrations", json=body, headers=role_headers)
        assert r.status_code == 403, r.text
    for role_headers in (partner_token(p1, "a"), token("ops", program=p1), token("integration", program=p1)):
        r = await registration_api.put(f"/v1/programs/{p1}", json={"name": "x"}, headers=role_headers)
        assert r.status_code == 403, r.text
        r = await registration_api.put(
            f"/v1/programs/{p1}/partners/z",
            json={"name": "z", "tier": "gold", "type": "msp"},
            headers=role_headers,
        )
        assert r.status_code == 403, r.text
    rid = world["a"]["id"]
    ops = token("ops", program=p1)
    r = await registration_api.patch(
        f"/v1/registrations/{rid}", json={"notes": "x"}, headers={**ops, "If-Match": '"1"'}
    )
    assert r.status_code == 403
    r = await registration_api.post(f"/v1/registrations/{rid}/withdraw", json={}, headers=ops)
    assert r.status_code == 403
    r = await registration_api.get("/v1/registrations", headers=token("integration", program=p1))
    assert r.status_code == 403


async def test_a_partner_never_sees_or_touches_another_partners_registration(registration_api, world):
    """Partner b of the same program, and partner c (same partner id space, other program), get 404
    for everything about a's registration, exactly as for an id that does not exist."""
    rid = world["a"]["id"]
    p1, p2 = world["p1"], world["p2"]
    outsiders = [partner_token(p1, "b"), partner_token(p2, "c"), partner_token(p2, "a")]
    missing = "00000000-0000-0000-0000-000000000000"
    for headers in outsiders:
        seen: dict[str, list] = {}
        for target in (rid, missing):
            answers = [
                await registration_api.get(f"/v1/registrations/{target}", headers=headers),
                await registration_api.get(f"/v1/registrations/{target}/decision", headers=headers),
                await registration_api.get(f"/v1/registrations/{target}/history", headers=headers),
                await registration_api.patch(
                    f"/v1/registrations/{target}",
                    json={"notes": "mine"},
                    headers={**headers, "If-Match": '"1"'},
                ),
                await registration_api.patch(f"/v1/registrations/{target}", json={"notes": "mine"}, headers=headers),
                await registration_api.post(f"/v1/registrations/{target}/withdraw", json={}, headers=headers),
                await registration_api.post(f"/v1/registrations/{target}/extension", json={}, headers=headers),
                await registration_api.post(
                    f"/v1/registrations/{target}/outcome",
                    json={"result": "lost", "closed_on": "2027-01-01"},
                    headers=headers,
                ),
                await registration_api.post(
                    f"/v1/registrations/{target}/appeal", json={"reason": "x"}, headers=headers
                ),
            ]
            for r in answers:
                assert r.status_code == 404, (r.request.method, r.request.url, r.text)
                assert r.json()["type"].endswith("/not-found")
            # the answer about a's registration is the answer about an id that does not exist
            seen[target] = [
                ({k: v for k, v in r.json().items() if k != "instance"}, r.headers.get("etag")) for r in answers
            ]
        assert seen[rid] == seen[missing]
        listed = await registration_api.get("/v1/registrations?external_ref=shared-ref", headers=headers)
        assert rid not in listed.text
    r = await registration_api.get(f"/v1/registrations/{rid}", headers=partner_token(p1, "a"))
    assert r.status_code == 200
    assert r.json()["version"] == 1


async def test_a_partner_lists_only_its_own(registration_api, world):
    p1 = world["p1"]
    r = await registration_api.get("/v1/registrations", headers=partner_token(p1, "a"))
    assert [i["id"] for i in r.json()["items"]] == [world["a"]["id"]]
    r = await registration_api.get(f"/v1/registrations?program_id={world['p2']}", headers=partner_token(p1, "a"))
    assert [i["id"] for i in r.json()["items"]] == [world["a"]["id"]]


async def test_program_staff_never_see_another_programs_data(registration_api, world):
    p1, p2 = world["p1"], world["p2"]
    ops = token("ops", program=p1)
    r = await registration_api.get("/v1/registrations", headers=ops)
    assert {i["id"] for i in r.json()["items"]} == {world["a"]["id"], world["b"]["id"]}
    r = await registration_api.get(f"/v1/registrations?program_id={p2}", headers=ops)
    assert r.status_code == 200 and r.json()["items"] == []
    rc = world["c"]["id"]
    for path in (
        f"/v1/registrations/{rc}",
        f"/v1/registrations/{rc}/decision",
        f"/v1/registrations/{rc}/history",
    ):
        assert (await registration_api.get(path, headers=ops)).status_code == 404
        assert (await registration_api.get(path, headers=token("authority", program=p1, level=2))).status_code == 404
        assert (await registration_api.get(path, headers=token("admin", program=p1))).status_code == 404
    # a program-scoped admin cannot change another program's directory (404: not its to know)
    r = await registration_api.put(f"/v1/programs/{p2}", json={"name": "x"}, headers=token("admin", program=p1))
    assert r.status_code == 404
    r = await registration_api.put(
        f"/v1/programs/{p2}/partners/z",
        json={"name": "z", "tier": "gold", "type": "msp"},
        headers=token("admin", program=p1),
    )
    assert r.status_code == 404
    # ops see every registration of their own program, with its history
    ra = world["a"]["id"]
    assert (await registration_api.get(f"/v1/registrations/{ra}/history", headers=ops)).status_code == 200


async def test_a_global_admin_sees_every_program(registration_api, world):
    r = await registration_api.get(f"/v1/registrations?program_id={world['p2']}", headers=ADMIN)
    assert [i["id"] for i in r.json()["items"]] == [world["c"]["id"]]
    r = await registration_api.get(f"/v1/registrations/{world['a']['id']}", headers=ADMIN)
    assert r.status_code == 200


async def test_the_tokens_subject_is_recorded_as_the_actor(registration_api):
    program = unique_id("prog")
    await enrol(registration_api, program, "a")
    headers = partner_token(program, "a", subject="jane@partner-a.example")
    r = await registration_api.post("/v1/registrations", json=registration_body(), headers=headers)
    assert r.json()["submitted_by"] == "jane@partner-a.example"
    history = (await registration_api.get(f"/v1/registrations/{r.json()['id']}/history", headers=headers)).json()
    assert history["items"][0]["actor"] == "jane@partner-a.example"


# --- directory ----------------------------------------------------------------------------------


async def test_admin_creates_and_renames_a_program_and_enrols_partners(registration_api):
    program = unique_id("prog")
    r = await registration_api.put(f"/v1/programs/{program}", json={"name": "Acme Partners"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["name"] == "Acme Partners"
    r = await registration_api.put(f"/v1/programs/{program}", json={"name": "Acme Partner Network"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["name"] == "Acme Partner Network"
    r = await registration_api.put(
        f"/v1/programs/{program}/partners/p-1",
        json={"name": "Partner One", "tier": "gold", "type": "msp"},
        headers=ADMIN,
    )
    assert r.status_code == 200
    assert r.json() == {
        "program_id": program,
        "partner_id": "p-1",
        "name": "Partner One",
        "tier": "gold",
        "type": "msp",
    }
    # a program-scoped admin may manage its own program
    r = await registration_api.put(
        f"/v1/programs/{program}/partners/p-1",
        json={"name": "Partner One", "tier": "platinum", "type": "si"},
        headers=token("admin", program=program),
    )
    assert r.status_code == 200 and r.json()["tier"] == "platinum"


@pytest.mark.parametrize(
    "bad_id",
    ["Upper", "-lead", "_lead", "a" * 65, "a.b", "a*b", "a>b", "%C3%A9t%C3%A9", "a%20b", "a%00", "a%0A", "a%0D%0A"],
)
async def test_directory_ids_are_subject_tokens(registration_api, bad_id):
    r = await registration_api.put(f"/v1/programs/{bad_id}", json={"name": "x"}, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "program_id"
    ok = unique_id("prog")
    r = await registration_api.put(
        f"/v1/programs/{ok}/partners/{bad_id}",
        json={"name": "x", "tier": "gold", "type": "msp"},
        headers=ADMIN,
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "partner_id"


async def test_longest_allowed_id_is_accepted(registration_api):
    program = unique_id("p").ljust(64, "x")
    assert len(program) == 64
    assert (await registration_api.put(f"/v1/programs/{program}", json={"name": "x"}, headers=ADMIN)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": 5}, {"name": "x", "extra": 1}, {"name": "x" * 201}],
)
async def test_directory_bodies_are_validated(registration_api, body):
    program = unique_id("prog")
    r = await registration_api.put(f"/v1/programs/{program}", json=body, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert r.json()["errors"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "tier": "gold"},
        {"name": "x", "tier": "gold", "type": "vendor"},
        {"name": "x", "tier": "", "type": "msp"},
        {"name": "x", "tier": "gold", "type": "msp", "level": 3},
    ],
)
async def test_partner_bodies_are_validated(registration_api, body):
    program = unique_id("prog")
    r = await registration_api.put(f"/v1/programs/{program}/partners/a", json=body, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] in ("type", "tier", "level", "")


async def test_a_partner_that_is_not_enrolled_is_refused(registration_api):
    program = unique_id("prog")
    await enrol(registration_api, program, "a")
    r = await registration_api.post(
        "/v1/registrations", json=registration_body(), headers=partner_token(program, "ghost")
    )
    assert r.status_code == 403
    problem = r.json()
    assert problem["type"].endswith("/partner-not-enrolled")
    assert "ghost" in problem["detail"] and program in problem["detail"]
    # a partner of a program that does not exist at all is refused the same way
    r = await registration_api.post(
        "/v1/registrations", json=registration_body(), headers=partner_token(unique_id("nope"), "a")
    )
    assert r.status_code == 403
    assert r.json()["type"].endswith("/partner-not-enrolled")


async def test_health_and_openapi_need_no_token(registration_api):
    for path in ("/health/live", "/health/ready", "/schema/openapi.json"):
        r = await registration_api.get(path)
        assert r.status_code == 200, (path, r.text)
    spec = (await registration_api.get("/schema/openapi.json")).json()
    assert "/v1/registrations" in spec["paths"] and "/v1/programs/{program_id}" in spec["paths"]


async def test_unknown_routes_and_methods_are_problems(registration_api):
    r = await registration_api.get("/v1/nothing-here", headers=ADMIN)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = await registration_api.delete("/v1/registrations", headers=ADMIN)
    assert r.status_code == 405 and r.headers["content-type"].startswith("application/problem+json")
