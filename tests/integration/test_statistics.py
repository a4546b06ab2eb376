"""The statistics keeper analyzes a table that grew faster than autovacuum looks, and the planner
then reads the claims of a probe's keys through their indexes again."""

from __future__ import annotations

import asyncio

import pytest

from services.conflict import claims_repo, name_index
from services.eventlog.statistics import StatisticsKeeper
from tests.conftest import unique_id
from tests.integration.scratch_database import scratch_database
from tests.integration.test_identity_matching import plans_of

pytestmark = pytest.mark.integration

_GROW = """
    INSERT INTO conflict.claims (claim_id, kind, program_id, partner_id, name_key, country, domain, products,
                                 submitted_at, status)
    SELECT $1 || '-' || i, 'registration', $1, 'p1', 'firm ' || i, 'US', 'firm' || i || '.com', ARRAY['firewall'],
           now(), 'approved'
    FROM generate_series(1, $2::int) AS i
"""


def _index_names(plan: dict) -> set[str]:
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        found |= _index_names(child)
    return found


async def test_a_table_grown_from_empty_is_analyzed_and_planned_through_its_key_indexes(server_dsn):
    program = unique_id("stats")
    async with scratch_database(server_dsn) as pool:
        keeper = StatisticsKeeper(pool, "conflict", every=0.2)
        async with pool.acquire() as conn:
            await conn.execute("ANALYZE conflict.claims")  # statistics of the empty table, as after deployment
            await conn.execute(_GROW, program, 20_000)
        analyzed: list[str] = []
        for _ in range(50):  # the server publishes a backend's counts within a second or so
            analyzed += await keeper.analyze_stale()
            if "conflict.claims" in analyzed:
                break
            await asyncio.sleep(0.2)
        assert "conflict.claims" in analyzed
        assert await keeper.analyze_stale() == []  # nothing changed since
        async with pool.acquire() as conn:
            args = (program, "x", claims_repo.RIVAL_STATUSES, "firm77.com", None, None, "US", ["firm 77"], None)
            _, plans = await plans_of(conn, lambda: conn.fetch(f"SELECT 1 FROM {name_index.CANDIDATES}", *args))
        used = set().union(*(_index_names(plan) for plan in plans))  # the function's plan is nested
        assert {"claims_domain", "claims_program_name"} <= used, used
        assert "claims_program_status" not in used, used


async def _changed_since_analysis(conn, table: str) -> int:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return await conn.fetchval(
        "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE schemaname || '.' || relname = $1", table
    )


async def _counted(conn, rows: int) -> None:
    for _ in range(100):  # the server publishes a backend's counts within a second or so
        if await _changed_since_analysis(conn, "conflict.claims") >= rows:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the server never counted {rows} rows changed in conflict.claims")


async def test_a_large_table_is_analyzed_again_once_it_has_doubled_not_at_each_tenth(server_dsn):
    program = unique_id("stats")
    async with scratch_database(server_dsn) as pool:
        keeper = StatisticsKeeper(pool, "conflict")
        async with pool.acquire() as conn:
            await conn.execute("ALTER TABLE conflict.claims SET (autovacuum_enabled = false)")  # no race
            await conn.execute(_GROW, program, 10_000)
            await _counted(conn, 10_000)  # else the counts published after the ANALYZE are added to it
            await conn.execute("ANALYZE conflict.claims")
            await conn.execute(_GROW, program + "-b", 3_000)  # 30% more: a tenth's rule analyzes now
            await _counted(conn, 3_000)
            assert "conflict.claims" not in await keeper.analyze_stale()
            await conn.execute(_GROW, program + "-c", 8_000)  # 11,000 since: more than the 10,000 counted
            analyzed: list[str] = []
            for _ in range(100):
                analyzed += await keeper.analyze_stale()
                if "conflict.claims" in analyzed:
                    break
                await asyncio.sleep(0.1)
            assert "conflict.claims" in analyzed
            assert await _changed_since_analysis(conn, "conflict.claims") == 0


async def test_the_keeper_looks_every_second_by_default(server_dsn):
    """Until a new table's first ANALYZE its plans are made as for an empty table; doubling bounds the
    ANALYZEs however often the keeper looks, so it looks often (it waited 5 s before: at 1,000
    registrations a second the candidate query read 400-900 buffers a call until then)."""
    async with scratch_database(server_dsn) as pool:
        assert StatisticsKeeper(pool, "conflict").every <= 1.0
        assert StatisticsKeeper(pool, "conflict").fraction == 1.0


async def test_the_keeper_keeps_looking_until_stopped(server_dsn):
    async with scratch_database(server_dsn) as pool:
        keeper = StatisticsKeeper(pool, "conflict", every=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(keeper.run(stop))
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, timeout=5)
