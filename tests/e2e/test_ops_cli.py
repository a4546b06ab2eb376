"""`dealreg trace`, `tail` and `replay`, run as an operator runs them: the installed console script,
pointed at the test session's PostgreSQL and NATS by the same variables the services read."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import unique_id
from tests.e2e.helpers import ADMIN, enrol, partner_token, registration_body, wait_until

pytestmark = pytest.mark.e2e

DEALREG = Path(sys.executable).parent / "dealreg"
TIE_POLICY = {"tie_window_minutes": 0.02, "tiers": ["platinum", "gold", "silver"]}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
    return {**env, "DEALREG_HOME": str(tmp_path / "no-stack"), "COLUMNS": "200", **extra}


async def dealreg(env: dict[str, str], *args: str, within: float = 60) -> tuple[int, str, str]:
    """Run the command without blocking the event loop (the in-process services keep working)."""
    proc = await asyncio.create_subprocess_exec(
        str(DEALREG), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), within)
    return proc.returncode, out.decode(), err.decode()


async def _approved(api, program: str) -> str:
    r = await api.post("/v1/registrations", json=registration_body(), headers=partner_token(program, "p1"))
    assert r.status_code == 201, r.text
    rid = r.json()["id"]

    async def decided():
        got = await api.get(f"/v1/registrations/{rid}", headers=partner_token(program, "p1"))
        return got.json()["status"] == "approved"

    await wait_until(decided, deadline=15, what=f"{rid} to be approved")
    return rid


async def test_trace_shows_a_decided_registration_as_a_tree_and_as_json(
    registration_api, conflict_api, pg_dsn, tmp_path
):
    program = unique_id("ops")
    await enrol(registration_api, program, "p1")
    rid = await _approved(registration_api, program)
    env = _env(tmp_path, DEALREG_DATABASE_URL=pg_dsn)

    code, out, err = await dealreg(env, "trace", rid, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["kind"], doc["id"], doc["program_id"]) == ("registration", rid, program)
    types = [(e["service"], e["type"]) for e in doc["events"]]
    assert types[0] == ("registration", "registration.submitted")
    assert ("conflict", "registration.approved") in types and ("conflict", "ownership.granted") in types
    approved = next(e for e in doc["events"] if e["type"] == "registration.approved")
    assert (approved["actor"], approved["data"]["reason"], approved["stream"]) == (
        "rules",
        "no_collision",
        f"claim-{rid}",
    )
    assert len(doc["trace_ids"]) == 1 and approved["trace_id"] == doc["events"][0]["trace_id"] == doc["trace_ids"][0]

    code, out, err = await dealreg(env, "trace", rid)
    assert code == 0, err
    assert rid in out and program in out and f"trace {doc['trace_ids'][0]}" in out
    for line in ("registration.submitted", "registration.approved", "reason=no_collision", "by rules", "├──"):
        assert line in out, out

    code, out, err = await dealreg(env, "trace", "no-such-thing")
    assert code == 1 and "no-such-thing" in err and not out


async def test_trace_of_a_conflict_shows_its_claims_and_rule_trail(
    registration_api, conflict_api, pool, pg_dsn, tmp_path
):
    program = unique_id("ops")
    await enrol(registration_api, program, "p1", "p2")
    assert (await conflict_api.put(f"/v1/programs/{program}/policy", json=TIE_POLICY, headers=ADMIN)).status_code == 200
    ids = []
    for p in ("p1", "p2"):
        r = await registration_api.post(
            "/v1/registrations", json=registration_body(), headers=partner_token(program, p)
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])

    async def conflict_id():
        async with pool.acquire() as conn:
            return await conn.fetchval("SELECT conflict_id FROM conflict.claims WHERE claim_id = $1", ids[0])

    cid = await wait_until(conflict_id, deadline=15, what="the tie to open a conflict")
    env = _env(tmp_path, DEALREG_DATABASE_URL=pg_dsn)
    code, out, err = await dealreg(env, "trace", cid, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["kind"] == "conflict" and {f"registration-{i}" for i in ids} <= set(doc["streams"])
    opened = next(e for e in doc["events"] if e["type"] == "conflict.opened")
    assert opened["data"]["rule_trail"]
    code, out, err = await dealreg(env, "trace", cid)
    assert code == 0 and "rule trail" in out and "conflict.opened" in out, err


async def test_tail_prints_conflict_events_as_they_are_published(registration_api, conflict_api, nats_url, tmp_path):
    program = unique_id("ops")
    await enrol(registration_api, program, "p1")
    proc = await asyncio.create_subprocess_exec(
        str(DEALREG),
        "tail",
        "--program",
        program,
        env=_env(tmp_path, DEALREG_NATS_URL=nats_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        ready = await asyncio.wait_for(proc.stderr.readline(), 20)
        assert b"following dealreg.conflict." in ready, ready
        rid = await _approved(registration_api, program)
        lines = []
        while not any("registration.approved" in line for line in lines):
            lines.append((await asyncio.wait_for(proc.stdout.readline(), 15)).decode())
        line = next(line for line in lines if "registration.approved" in line)
        assert rid in line and "reason=no_collision" in line and re.search(r"trace=[0-9a-f]{32}", line)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 15)
    assert code == 0


async def test_replay_rebuilds_and_prints_its_rate(registration_api, conflict_api, pool, pg_dsn, tmp_path):
    program = unique_id("ops")
    await enrol(registration_api, program, "p1")
    rid = await _approved(registration_api, program)
    code, out, err = await dealreg(_env(tmp_path, DEALREG_DATABASE_URL=pg_dsn), "replay", "conflict", within=120)
    assert code == 0, err
    assert re.fullmatch(r"replayed \d+ events in [\d.]+ s \([\d,]+ events/s\)\n", out), out
    async with pool.acquire() as conn:
        status = await conn.fetchval("SELECT status FROM conflict.claims WHERE claim_id = $1", rid)
    assert status == "approved"  # rebuilt from the logs


async def test_without_a_stack_or_variables_the_commands_say_what_to_set(tmp_path):
    code, _, err = await dealreg(_env(tmp_path), "trace", "anything")
    assert code == 1 and "DEALREG_DATABASE_URL" in err and "dealreg up" in err
    code, _, err = await dealreg(_env(tmp_path), "tail", "--program", "acme")
    assert code == 1 and "DEALREG_NATS_URL" in err


async def test_the_commands_find_the_local_stack_with_no_flags(
    registration_api, conflict_api, pg_dsn, nats_url, tmp_path
):
    import psutil

    from services.stackfile import write_stack

    program = unique_id("ops")
    await enrol(registration_api, program, "p1")
    rid = await _approved(registration_api, program)
    home = tmp_path / "home"
    home.mkdir()
    me = psutil.Process()  # a live supervisor is what makes stack.json count
    write_stack(home, {"database_url": pg_dsn, "nats_url": nats_url, "pid": me.pid, "pid_created": me.create_time()})
    env = {**_env(tmp_path), "DEALREG_HOME": str(home)}
    code, out, err = await dealreg(env, "trace", rid, "--json")
    assert code == 0, err
    assert json.loads(out)["id"] == rid
