"""The in-memory replay leaves exactly the rows that applying every logged event statement by
statement through the live projector leaves, over random logs with every event the projections read."""

from __future__ import annotations

import pytest

from services.conflict.replay import rebuild
from tests.integration.replay_logs import LogWriter
from tests.integration.scratch_database import scratch_database
from tests.statement_replay import first_difference, rebuild_by_statements, snapshot

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def pool(server_dsn):
    """A database of the module's own: its logs are only what these tests write."""
    async with scratch_database(server_dsn, max_size=2) as p:
        yield p


@pytest.mark.parametrize("seed", range(8))
async def test_the_in_memory_replay_leaves_the_rows_the_statements_leave(pool, seed):
    async with pool.acquire() as conn:
        await LogWriter(seed).build(events=350).append(conn)  # the logs grow test after test
        async with conn.transaction():
            events = await rebuild_by_statements(conn)
        expected = await snapshot(conn)
    told: list[int] = []
    stats = await rebuild(pool, progress=told.append)
    async with pool.acquire() as conn:
        got = await snapshot(conn)
    assert stats.events == events and sum(told) == events
    assert first_difference(expected, got) is None
    assert expected["conflict.claims"] and expected["conflict.conflicts"] and expected["conflict.timers"]


async def test_a_failed_replay_leaves_the_projections_as_they_were(pool, monkeypatch):
    async with pool.acquire() as conn:
        await LogWriter(99).build(events=50).append(conn)
        await rebuild(pool)
        before = await snapshot(conn)

    def broken(self, name, e):
        raise RuntimeError("cannot apply")

    monkeypatch.setattr("services.conflict.replay_state.ReplayState.conflict_event", broken)
    with pytest.raises(RuntimeError, match="cannot apply"):
        await rebuild(pool)
    async with pool.acquire() as conn:
        assert await snapshot(conn) == before


async def test_the_claims_it_writes_fire_the_insert_triggers(pool):
    """Whatever a trigger on conflict.claims keeps (a side table for name search, say) stays in step."""
    async with pool.acquire() as conn:
        await LogWriter(7).build(events=60).append(conn)
        await conn.execute("""
            CREATE TABLE IF NOT EXISTS public.claims_seen (claim_id text, name_key text);
            CREATE OR REPLACE FUNCTION public.claims_seen() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO public.claims_seen VALUES (NEW.claim_id, NEW.name_key); RETURN NULL; END $$;
            CREATE OR REPLACE TRIGGER claims_seen AFTER INSERT ON conflict.claims
                FOR EACH ROW EXECUTE FUNCTION public.claims_seen();
            TRUNCATE public.claims_seen;
        """)
        try:
            await rebuild(pool)
            claims = await conn.fetch("SELECT claim_id, name_key FROM conflict.claims ORDER BY claim_id")
            seen = await conn.fetch("SELECT claim_id, name_key FROM public.claims_seen ORDER BY claim_id")
        finally:
            await conn.execute("DROP TRIGGER claims_seen ON conflict.claims")
    assert claims and seen == claims
