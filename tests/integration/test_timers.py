"""Durable timers: a restart loses none and fires none twice; replicas share them; a failing one
never holds up the others."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from services.conflict import scheduler, timers
from services.conflict.scheduler import Scheduler
from tests.conftest import unique_id
from tests.integration.scratch_database import scratch_database

pytestmark = pytest.mark.integration
T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
async def pool(server_dsn):
    """A database of the module's own: the running services' schedulers never see these timers."""
    async with scratch_database(server_dsn) as p:
        yield p


@pytest.fixture
def fired(monkeypatch):
    calls: list[str] = []

    async def echo(conn, t: timers.Timer) -> None:
        if t.payload.get("fail") and calls.count(f"fail:{t.ref_id}") == 0:
            calls.append(f"fail:{t.ref_id}")
            raise RuntimeError("the firing failed this time")
        calls.append(t.ref_id)

    monkeypatch.setitem(scheduler.FIRINGS, "test_echo", echo)
    return calls


async def _schedule(pool, program: str, names_due: dict[str, dt.datetime], payload=None) -> None:
    async with pool.acquire() as conn:
        for name, due in names_due.items():
            await timers.schedule(conn, f"test:{program}:{name}", program, "test_echo", name, due, payload)


def _mine(calls: list[str], names) -> list[str]:
    return [c for c in calls if c in names]


async def test_a_restart_loses_none_and_fires_none_twice(pool, fired):
    program = unique_id("prog")
    names = [f"{program}-a", f"{program}-b", f"{program}-later"]
    await _schedule(pool, program, {names[0]: T0, names[1]: T0 + dt.timedelta(seconds=1),
                                    names[2]: T0 + dt.timedelta(hours=1)})  # fmt: skip
    first = Scheduler(pool, clock=lambda: T0 + dt.timedelta(seconds=2))
    await first.tick()
    assert _mine(fired, names) == names[:2]
    # the process stops; a new one starts on the same database
    second = Scheduler(pool, clock=lambda: T0 + dt.timedelta(seconds=3))
    await second.tick()
    assert _mine(fired, names) == names[:2]  # none twice
    await second.tick(T0 + dt.timedelta(hours=1, seconds=1))
    assert _mine(fired, names) == names  # none lost


async def test_two_replicas_fire_each_timer_once(pool, fired):
    program = unique_id("prog")
    names = [f"{program}-{i}" for i in range(30)]
    await _schedule(pool, program, dict.fromkeys(names, T0))
    replicas = [Scheduler(pool, clock=lambda: T0 + dt.timedelta(seconds=1)) for _ in range(2)]
    await asyncio.gather(*(r.tick() for r in replicas), *(r.tick() for r in replicas))
    assert sorted(_mine(fired, names)) == sorted(names)


async def test_a_failing_timer_is_retried_later_and_holds_up_no_other(pool, fired):
    program = unique_id("prog")
    bad, good = f"{program}-bad", f"{program}-good"
    await _schedule(pool, program, {bad: T0}, {"fail": True})
    await _schedule(pool, program, {good: T0 + dt.timedelta(seconds=1)})
    s = Scheduler(pool, clock=lambda: T0 + dt.timedelta(seconds=2))
    await s.tick()
    assert _mine(fired, [bad, good]) == [good]
    await s.tick(T0 + dt.timedelta(seconds=2) + scheduler.RETRY_AFTER)
    assert _mine(fired, [bad, good]) == [good, bad]


async def test_expiry_timers_written_together_are_those_the_statement_writes(pool):
    """`conflict.insert_expiry_timers` (a run's timers, written with its events) sets the same timers
    as `timers.EXPIRY` one window at a time: the warning under the program's latest policy, or the
    default without one, and none when the warning is past."""
    from contracts.conflict_events import OwnershipChanged

    with_policy, without = unique_id("prog"), unique_id("prog")
    windows = [
        OwnershipChanged(claim_id=unique_id("c"), program_id=program, valid_from=T0, valid_until=until, at=T0)
        for program in (with_policy, without)
        for until in (T0 + dt.timedelta(days=90, microseconds=7), T0 + dt.timedelta(days=3))
    ]
    query = (
        "SELECT timer_id, program_id, kind, ref_id, due_at FROM conflict.timers WHERE program_id = ANY($1) ORDER BY 1"
    )
    async with pool.acquire() as conn:
        for version, days in ((1, 30), (2, 12.5)):
            await conn.execute(
                "INSERT INTO conflict.policies (program_id, version, policy, published_at)"
                " VALUES ($1, $2, $3::jsonb, $4)",
                with_policy, version, f'{{"expiry_warning_days": {days}}}', T0,
            )  # fmt: skip
        for w in windows:
            await conn.execute(timers.EXPIRY, *timers.expiry_args(w))
        one_at_a_time = await conn.fetch(query, [with_policy, without])
        await conn.execute("DELETE FROM conflict.timers WHERE program_id = ANY($1)", [with_policy, without])
        rows = timers.expiry_rows([timers.expiry_args(w) for w in windows])
        assert await conn.fetchval("SELECT conflict.insert_expiry_timers($1::jsonb)", rows) == len(one_at_a_time)
        together = await conn.fetch(query, [with_policy, without])
        assert await conn.fetchval("SELECT conflict.insert_expiry_timers($1::jsonb)", rows) == 0  # set already
        assert await conn.fetchval("SELECT conflict.insert_expiry_timers('[]'::jsonb)") == 0
    assert [tuple(r) for r in together] == [tuple(r) for r in one_at_a_time]
    kinds = [r["kind"] for r in together]
    assert kinds.count("expiry") == 4 and kinds.count("expiring") == 2  # the 3-day windows warn in the past
    warned = {r["program_id"]: r["due_at"] for r in together if r["kind"] == "expiring"}
    assert warned[with_policy] == T0 + dt.timedelta(days=90 - 12.5, microseconds=7)
