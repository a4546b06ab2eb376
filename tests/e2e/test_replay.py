"""Replay: the conflict projections rebuild from the logs, and the same history decides the same."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec
import pytest

from contracts.envelope import CloudEvent, cloudevent_type, decode_data, source_for
from services.conflict import intake
from services.conflict.replay import rebuild
from services.eventlog import db
from services.eventlog.migrate import migrate
from tests.e2e.conftest import token
from tests.e2e.test_conflict_flow import registration, setup_program, status_of, wait_for

pytestmark = pytest.mark.e2e

SNAPSHOT = """
    SELECT claim_id, kind, status, protected_until, approved_at, conflict_id, attribution_percent, extensions,
           decided_at, policy_version, name_key, domain, products
    FROM conflict.claims WHERE program_id = $1 ORDER BY claim_id
"""


async def _scenario(api, conflict_api) -> tuple[str, list[str]]:
    program = await setup_program(api, {"p1": "gold", "p2": "silver", "p3": "gold"})
    policy = {
        "protection_days": 30,
        "tiers": ["gold", "silver"],
        "tier_protection_days": {},
        "review": {"enabled": False, "sla_hours": 48, "on_breach": "approve"},
    }
    assert (
        await conflict_api.put(f"/v1/programs/{program}/policy", json=policy, headers=token("admin"))
    ).status_code == 200
    p = {n: token("partner", program=program, partner=n) for n in ("p1", "p2", "p3")}
    ids = []
    r = await api.post("/v1/registrations", json=registration("Globex Corporation", "globex.com"), headers=p["p1"])
    ids.append(r.json()["id"])
    await status_of(api, ids[0], p["p1"], "approved")
    r = await api.post("/v1/registrations", json=registration("Globex Corp", "www.globex.com"), headers=p["p2"])
    ids.append(r.json()["id"])
    await status_of(api, ids[1], p["p2"], "waitlisted")
    r = await api.post("/v1/registrations", json=registration("Initech", "initech.io"), headers=p["p3"])
    ids.append(r.json()["id"])
    await status_of(api, ids[2], p["p3"], "approved")
    await api.post(f"/v1/registrations/{ids[0]}/withdraw", headers=p["p1"])
    await status_of(api, ids[1], p["p2"], "approved")
    return program, ids


async def test_rebuild_gives_the_same_projections(registration_api, conflict_api, pool):
    program, _ = await _scenario(registration_api, conflict_api)
    async with pool.acquire() as conn:
        before = [dict(r) for r in await conn.fetch(SNAPSHOT, program)]
        conflicts_before = await conn.fetch("SELECT * FROM conflict.conflicts WHERE program_id = $1", program)
    stats = await rebuild(pool)
    assert stats.events > 0
    async with pool.acquire() as conn:
        after = [dict(r) for r in await conn.fetch(SNAPSHOT, program)]
        conflicts_after = await conn.fetch("SELECT * FROM conflict.conflicts WHERE program_id = $1", program)
    assert after == before

    def strip(rows):
        return [{k: v for k, v in dict(r).items() if k != "seq"} for r in rows]

    assert strip(conflicts_after) == strip(conflicts_before)


async def test_the_same_history_decides_the_same_byte_for_byte(registration_api, conflict_api, pool, server_dsn):
    """Feed the recorded registration facts into a fresh database: the decisions are identical."""
    program, _ = await _scenario(registration_api, conflict_api)

    async def decisions(conn: asyncpg.Connection) -> list[tuple]:
        rows = await conn.fetch(
            "SELECT event_id, stream_id, event_type, data::text, occurred_at FROM conflict.events"
            " WHERE program_id = $1 AND event_type <> 'policy.published' ORDER BY global_position",
            program,
        )
        return [tuple(r) for r in rows]

    async with pool.acquire() as conn:
        await wait_for(lambda: _quiet(conn, program))
        original = await decisions(conn)
        facts = await conn.fetch(
            "SELECT event_id::text, event_type, subject, data::text, occurred_at, traceparent FROM registration.events"
            " WHERE program_id = $1 ORDER BY global_position",
            program,
        )
        policies = await conn.fetch("SELECT * FROM conflict.policies WHERE program_id = $1", program)

    fresh_name = f"dealreg_replay_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'CREATE DATABASE "{fresh_name}"')
    await admin.close()
    from urllib.parse import urlsplit, urlunsplit

    dsn = urlunsplit(urlsplit(server_dsn)._replace(path=f"/{fresh_name}"))
    await migrate(dsn)
    conn = await db.connect(dsn)
    try:
        for p in policies:
            await conn.execute("INSERT INTO conflict.policies VALUES ($1, $2, $3, $4)", *p)
        for event_id, name, subject, data, occurred_at, traceparent in facts:
            ce = CloudEvent(
                id=event_id,
                source=source_for("registration", program),
                type=cloudevent_type(name),
                subject=subject,
                time=occurred_at,
                traceparent=traceparent,
                data=msgspec.Raw(data.encode()),
            )
            async with conn.transaction():
                await intake.handle(conn, ce, decode_data("registration", name, data.encode()))
        replayed = await decisions(conn)
    finally:
        await conn.close()
    assert replayed == original
    assert len(original) >= 6


async def _quiet(conn: asyncpg.Connection, program: str) -> bool:
    pending = await conn.fetchval(
        "SELECT count(*) FROM conflict.claims WHERE program_id = $1 AND status = 'pending'", program
    )
    return pending == 0
