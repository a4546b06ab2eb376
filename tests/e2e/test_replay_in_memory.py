"""The in-memory replay over the logs the running services wrote (a dispute decided, appealed and
decided again, and whatever else this session ran before) leaves every projection row exactly as
applying each event with the live projector's statements does."""

from __future__ import annotations

import pytest

from services.conflict.replay import rebuild
from tests.e2e.dispute_support import authority, crm, shown
from tests.e2e.test_disputes import appeal, disputed
from tests.integration.scratch_database import scratch_database
from tests.statement_replay import first_difference, rebuild_by_statements, snapshot

pytestmark = pytest.mark.e2e
COLUMNS = ("global_position", "event_id", "stream_id", "stream_version", "event_type", "program_id", "data",
           "subject", "correlation_id", "causation_id", "actor", "traceparent", "occurred_at", "recorded_at")  # fmt: skip


async def _appealed_dispute(registration_api, conflict_api, nc) -> None:
    program, first, second, cid = await disputed(registration_api, conflict_api, nc)
    award = {"outcome": "award", "winner": first, "rationale": "first contact"}
    r = await conflict_api.post(f"/v1/conflicts/{cid}/decision", headers=authority(program, 1), json=award)
    assert r.status_code == 200, r.text
    await shown(registration_api, program, "p2", second, status="rejected")
    async with crm(nc, program) as crm_:
        await appeal(registration_api, program, "p2", second)
        await crm_.wait("conflict.escalated", lambda d: d["level"] == 2)
        award = {"outcome": "award", "winner": second, "rationale": "p2 had the RFP"}
        r = await conflict_api.post(f"/v1/conflicts/{cid}/decision", headers=authority(program, 2), json=award)
        assert r.status_code == 200, r.text
        await crm_.wait("ownership.released", lambda d: d["claim_id"] == first)


async def test_the_replay_of_the_services_logs_leaves_the_rows_the_statements_leave(
    registration_api, conflict_api, nc, pool, server_dsn
):
    await _appealed_dispute(registration_api, conflict_api, nc)
    select = ", ".join(c if c != "data" else "data::text" for c in COLUMNS)
    async with pool.acquire() as conn:
        logs = {log: await conn.fetch(f"SELECT {select} FROM {log}.events") for log in ("registration", "conflict")}
    # in a database of the test's own: the services keep running on theirs
    async with scratch_database(server_dsn, max_size=2) as scratch:
        async with scratch.acquire() as conn:
            for log, rows in logs.items():
                await conn.copy_records_to_table("events", schema_name=log, columns=list(COLUMNS), records=rows)
            async with conn.transaction():
                events = await rebuild_by_statements(conn)
            expected = await snapshot(conn)
        stats = await rebuild(scratch)
        async with scratch.acquire() as conn:
            got = await snapshot(conn)
    assert stats.events == events
    assert first_difference(expected, got) is None
    kinds = {r["event_type"] for r in logs["conflict"]}
    assert {"conflict.opened", "conflict.escalated", "conflict.resolved", "conflict.reopened"} <= kinds
