"""Group commit against a real PostgreSQL: pipelined appends that commit together, and the
GroupAppender that gathers concurrent callers' appends into them, each caller with its own answer."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from services.eventlog.events import NO_STREAM, ConcurrencyError, NewEvent
from services.eventlog.group_commit import GroupAppender
from services.eventlog.store import EventStore
from tests.conftest import unique_id
from tests.integration.scratch_database import scratch_database

pytestmark = pytest.mark.integration

store = EventStore("registration")
NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
# fails when evaluated for 0, never when planned (random() is volatile: nothing is folded ahead)
_FAILING = "1 / ({0}::int + floor(random())::int)"
_OUTBOX = "SELECT count(*) FROM registration.outbox o JOIN registration.events e USING (global_position)"


def ev(n: int = 0) -> NewEvent:
    return NewEvent(event_type="program.updated", data=b'{"n": %d}' % n, subject="s", occurred_at=NOW)


async def written(conn: asyncpg.Connection, streams: list[str]) -> int:
    return await conn.fetchval("SELECT count(*) FROM registration.events WHERE stream_id = ANY($1)", streams)


async def test_appends_run_together_commit_together_with_their_outbox_rows(server_dsn):
    streams = [unique_id("gc") for _ in range(5)]
    # a database of its own: no relay of the session's services publishes (and deletes) the rows
    async with scratch_database(server_dsn) as pool, pool.acquire() as conn:
        await store.append(conn, streams[0], NO_STREAM, [ev(0)], program_id="p")
        prepared = [
            store.prepare(s, NO_STREAM, [ev(i), ev(i + 10)], program_id="p", also=("{0}::int", [i]))
            for i, s in enumerate(streams)
        ]
        # the first stream exists already: its head does not move and nothing of it is written
        assert await store.append_many(conn, prepared) == [None, 2, 2, 2, 2]
        assert await written(conn, streams) == 1 + 8
        assert await conn.fetchval(f"{_OUTBOX} WHERE e.stream_id = ANY($1)", streams[1:]) == 8
        # one transaction: the four appends share one transaction id
        assert (
            await conn.fetchval(
                "SELECT count(DISTINCT tx_id) FROM registration.events WHERE stream_id = ANY($1)", streams[1:]
            )
            == 1
        )


async def test_one_failing_append_leaves_nothing_of_the_others(pool):
    streams = [unique_id("gc") for _ in range(3)]
    async with pool.acquire() as conn:
        prepared = [
            store.prepare(s, NO_STREAM, [ev(i)], program_id="p", also=(_FAILING, [i])) for i, s in enumerate(streams)
        ]
        with pytest.raises(asyncpg.DivisionByZeroError):
            await store.append_many(conn, prepared[::-1])  # the failing one (0) last: the others ran first
        assert await written(conn, streams) == 0
        assert await conn.fetchval("SELECT count(*) FROM registration.streams WHERE stream_id = ANY($1)", streams) == 0


async def test_append_many_refuses_a_transaction_and_mixed_statements(pool):
    a, b = unique_id("gc"), unique_id("gc")
    async with pool.acquire() as conn:
        with pytest.raises(ValueError, match="one statement"):
            await store.append_many(
                conn, [store.prepare(a, NO_STREAM, [ev()], program_id="p"), store.prepare(b, 3, [ev()], program_id="p")]
            )
        async with conn.transaction():
            with pytest.raises(RuntimeError, match="outside a transaction"):
                await store.append_many(conn, [store.prepare(a, NO_STREAM, [ev()], program_id="p")])
        assert await written(conn, [a, b]) == 0


async def test_concurrent_callers_share_commits_and_each_gets_its_own_answer(pool):
    appender = GroupAppender(store, lambda: pool, slots=1)
    streams = [unique_id("gc") for _ in range(40)]
    existing, retried = streams[0], streams[1]
    retry_event = ev(1)
    async with pool.acquire() as conn:
        await store.append(conn, existing, NO_STREAM, [ev(0)], program_id="p")
        await store.append(conn, retried, NO_STREAM, [retry_event], program_id="p")

    async def one(i: int, stream: str):
        if stream == retried:  # the same event again (a lost reply, say): its version, nothing new
            return await appender.append(stream, NO_STREAM, [retry_event], program_id="p")
        also = (_FAILING, [0 if i == 7 else i])
        return await appender.append(stream, NO_STREAM, [ev(i), ev(i + 100)], program_id="p", also=also)

    results = await asyncio.gather(*(one(i, s) for i, s in enumerate(streams)), return_exceptions=True)
    assert isinstance(results[0], ConcurrencyError) and results[0].actual == 1
    assert results[1] == 1
    assert isinstance(results[7], asyncpg.DivisionByZeroError)
    assert all(r == 2 for i, r in enumerate(results) if i not in (0, 1, 7))
    # one slot: the first append went alone, the rest waited for it and went in far fewer commits
    assert appender.flushes < len(streams) / 4
    async with pool.acquire() as conn:
        assert await written(conn, [streams[7]]) == 0
        assert await written(conn, streams[2:7] + streams[8:]) == 2 * (len(streams) - 3)


async def test_an_append_alone_waits_for_nothing(pool):
    appender = GroupAppender(store, lambda: pool)
    stream = unique_id("gc")
    assert await appender.append(stream, NO_STREAM, [ev()], program_id="p") == 1
    assert appender.flushes == 1
    async with pool.acquire() as conn:
        assert await store.stream_version(conn, stream) == 1


async def test_a_submission_is_refused_when_its_partner_is_not_as_it_states(pool):
    """The partner may come from the service's cache: the statement checks the tier and type the
    event states, and refuses (PartnerChanged) without writing anything when they changed."""
    from dataclasses import replace

    from services.registration import repository
    from services.registration.domain import decide
    from tests.unit.test_registration_domain import TERMS

    program, appender = unique_id("prog"), GroupAppender(repository.STORE, lambda: pool)
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO registration.partners (program_id, partner_id, name, tier, type, enrolled_at)"
            " VALUES ($1, 'p1', 'P1', 'gold', 'msp', $2)",
            program,
            NOW,
        )
    terms = replace(TERMS, external_ref=None)
    stale = decide.submit(unique_id("r"), decide.Partner(program, "p1", "silver", "msp"), terms, "jane", NOW)
    with pytest.raises(repository.PartnerChanged):
        await repository.submit(appender, stale, repository.Metadata())
    current = decide.submit(unique_id("r"), decide.Partner(program, "p1", "gold", "msp"), terms, "jane", NOW)
    assert (await repository.submit(appender, current, repository.Metadata())).version == 1
    async with pool.acquire() as conn:
        ids = await conn.fetch("SELECT registration_id FROM registration.registrations WHERE program_id = $1", program)
        assert [r[0] for r in ids] == [current.registration_id]
        assert await written(conn, [repository.stream_of(stale.registration_id)]) == 0
