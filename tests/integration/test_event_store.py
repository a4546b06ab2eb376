"""The event store's guarantees, each against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from services.eventlog.db import NOTIFIER
from services.eventlog.events import ANY_VERSION, NO_STREAM, ConcurrencyError, Metadata, NewEvent, Position
from services.eventlog.migrate import migrate
from services.eventlog.store import EventStore, PreparedAppend
from tests.conftest import unique_id
from tests.integration.scratch_database import scratch_database

pytestmark = pytest.mark.integration

store = EventStore("registration")
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def ev(n: int = 0, event_type: str = "program.updated") -> NewEvent:
    return NewEvent(event_type=event_type, data=b'{"n": %d}' % n, subject="s", occurred_at=NOW)


async def count(conn: asyncpg.Connection, stream_id: str) -> int:
    return await conn.fetchval("SELECT count(*) FROM registration.events WHERE stream_id = $1", stream_id)


async def test_append_many_atomically_with_expected_version(pool):
    stream = unique_id("stream")
    async with pool.acquire() as conn:
        assert await store.append(conn, stream, NO_STREAM, [ev(1), ev(2)], program_id="p") == 2
        assert await store.append(conn, stream, 2, [ev(3)], program_id="p") == 3
        events = await store.read_stream(conn, stream)
    assert [e.stream_version for e in events] == [1, 2, 3]
    assert [e.data for e in events] == ['{"n": 1}', '{"n": 2}', '{"n": 3}']


async def test_wrong_expected_version_raises_and_writes_nothing(pool):
    stream = unique_id("stream")
    async with pool.acquire() as conn:
        await store.append(conn, stream, NO_STREAM, [ev(1)], program_id="p")
        with pytest.raises(ConcurrencyError) as err:
            await store.append(conn, stream, 0, [ev(2), ev(3)], program_id="p")
        assert err.value.actual == 1
        with pytest.raises(ConcurrencyError):
            await store.append(conn, stream, 5, [ev(2)], program_id="p")
        assert await count(conn, stream) == 1
        assert await store.stream_version(conn, stream) == 1


# fails when evaluated, never when planned (random() is volatile: nothing is folded ahead)
_FAILING = "1 / ({0}::int + floor(random())::int)"


async def test_what_is_written_with_the_events_commits_with_them_or_undoes_them(pool):
    """`also` runs in the append's own statement, once, after the stream head moved: outside a
    transaction too, its error leaves neither the head, the events nor the outbox rows."""
    stream, other = unique_id("stream"), unique_id("stream")
    async with pool.acquire() as conn:
        outbox = "SELECT count(*) FROM registration.outbox o JOIN registration.events e USING (global_position)"
        with pytest.raises(asyncpg.DivisionByZeroError):
            await store.append(conn, stream, NO_STREAM, [ev(1), ev(2)], program_id="p", also=(_FAILING, [0]))
        assert await store.stream_version(conn, stream) == 0 and await count(conn, stream) == 0
        assert await conn.fetchval(f"{outbox} WHERE e.stream_id = $1", stream) == 0
        version = await store.append(
            conn, other, NO_STREAM, [ev(1), ev(2)], program_id="p", also=("{0}::int + {1}::int", [1, 2])
        )
        assert version == 2 and await count(conn, other) == 2
        assert await conn.fetchval(f"{outbox} WHERE e.stream_id = $1", other) == 2
        with pytest.raises(ConcurrencyError):  # the head does not move: `also` is not evaluated
            await store.append(conn, other, 0, [ev(3)], program_id="p", also=(_FAILING, [0]))


def test_an_append_joined_with_an_expression_is_the_one_prepared_with_it():
    """`joined` gives a prepared append the `also` expression `prepare` would have given it (the same
    statement, so appends of one expression stay one pipeline), and refuses a second one."""
    for expected in (NO_STREAM, ANY_VERSION, 3):
        plain = store.prepare("s-1", expected, [ev(1)], program_id="p")
        made = store.prepare("s-1", expected, [ev(1)], program_id="p", also=("{0}::int + {1}::int", [1, 2]))
        joined = store.joined(plain, ("{0}::int + {1}::int", [1, 2]))
        assert (joined.statement, joined.args[-2:]) == (made.statement, [1, 2])
        assert joined.args[:-2] == plain.args and joined.statement != plain.statement
        with pytest.raises(ValueError):
            store.joined(joined, ("{0}::int", [1]))


def _run(tag: str) -> list[PreparedAppend]:
    """Appends of a run: a stream written by three of them (one existing), a new one, another
    existing one, each with its own metadata."""
    streams = {name: f"{tag}-{name}" for name in ("a", "b", "c")}
    shape = [("a", 2), ("b", 1), ("a", 1), ("c", 3), ("a", 2)]
    return [
        store.prepare(
            streams[name],
            ANY_VERSION,
            [ev(10 * n + i, f"thing.{name}{i}") for i in range(size)],
            program_id=f"p{n % 2}",
            metadata=Metadata(correlation_id=f"corr-{n}", causation_id=f"cause-{n}", actor=f"actor-{n}"),
        )
        for n, (name, size) in enumerate(shape)
    ]


async def _written_by(conn: asyncpg.Connection, tag: str) -> list[tuple]:
    """The events of the streams of `tag`, in the global order, with their outbox rows' subjects."""
    rows = await conn.fetch(
        "SELECT e.stream_id, e.stream_version, e.event_type, e.program_id, e.subject, e.data::text,"
        " e.correlation_id, e.causation_id, e.actor, e.occurred_at, o.subject"
        " FROM registration.events e LEFT JOIN registration.outbox o USING (global_position)"
        " WHERE e.stream_id LIKE $1 || '-%' ORDER BY e.global_position",
        tag,
    )
    return [(r[0].removeprefix(tag), *r[1:]) for r in rows]


async def test_appends_together_write_what_they_write_one_after_the_other(server_dsn):
    """`append_together` writes, in one statement, the events, stream versions, global order,
    metadata and outbox rows of the same appends run one after the other (`append_pipelined`), with
    `also` evaluated once; a retry writes nothing and answers the same versions. (In a database of
    its own: no relay publishes, and deletes, the outbox rows compared.)"""
    pipelined, together = unique_id("run"), unique_id("run")
    async with scratch_database(server_dsn) as pool, pool.acquire() as conn:
        for tag in (pipelined, together):  # streams a and c exist already
            await store.append(conn, f"{tag}-a", NO_STREAM, [ev(0)], program_id="p0")
            await store.append(conn, f"{tag}-c", NO_STREAM, [ev(0), ev(1)], program_id="p0")
        one_after_the_other = _run(pipelined)
        async with conn.transaction():
            expected = await store.append_pipelined(conn, one_after_the_other)
        sent: list[str] = []

        def log(query: asyncpg.connection.LoggedQuery) -> None:
            sent.append(query.query)

        conn.add_query_logger(log)
        appends = _run(together)
        before = await conn.fetchval("SELECT max(global_position) FROM registration.events")
        async with conn.transaction():
            versions = await store.append_together(conn, appends, ("{0}::int + {1}::int", [1, 2]))
        await asyncio.sleep(0)  # query loggers are called through the loop
        conn.remove_query_logger(log)
        assert versions == expected == [3, 1, 4, 5, 6]
        assert len([q for q in sent if "INSERT INTO registration.events" in q]) == 1, sent
        assert await _written_by(conn, together) == await _written_by(conn, pipelined)
        # each event with its append's traceparent (the span each was prepared in, when tracing)
        traceparents = await conn.fetch(
            "SELECT traceparent FROM registration.events WHERE global_position > $1 ORDER BY global_position", before
        )
        assert [r[0] for r in traceparents] == [a.args[5] for a in appends for _ in a.event_ids]
        async with conn.transaction():  # a retry: nothing moves, and the answers are the same
            retried = await store.append_pipelined(conn, one_after_the_other)
            assert await store.append_together(conn, appends, (_FAILING, [0])) == retried == [6, 1, 6, 5, 6]
        assert await _written_by(conn, together) == await _written_by(conn, pipelined)
        with pytest.raises(RuntimeError):
            await store.append_together(conn, _run(unique_id("run")))
        async with conn.transaction():
            with pytest.raises(ValueError):
                await store.append_together(conn, [store.prepare("s", NO_STREAM, [ev(1)], program_id="p")])


async def test_what_is_written_with_appends_together_undoes_them(pool):
    """`also`'s error undoes the whole statement: no head, event or outbox row of any stream."""
    tag = unique_id("run")
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with conn.transaction():
                await store.append_together(conn, _run(tag), (_FAILING, [0]))
        assert await _written_by(conn, tag) == []
        assert [await store.stream_version(conn, f"{tag}-{name}") for name in "abc"] == [0, 0, 0]


async def test_concurrent_writers_one_wins(pool):
    import asyncio

    stream = unique_id("stream")
    async with pool.acquire() as conn:
        await store.append(conn, stream, NO_STREAM, [ev(0)], program_id="p")

    async def write(i: int) -> bool:
        async with pool.acquire() as conn:
            try:
                await store.append(conn, stream, 1, [ev(i)], program_id="p")
                return True
            except ConcurrencyError:
                return False

    results = await asyncio.gather(*(write(i) for i in range(5)))
    assert results.count(True) == 1
    async with pool.acquire() as conn:
        assert await count(conn, stream) == 2


async def test_same_event_id_is_recorded_once(pool):
    stream = unique_id("stream")
    event = ev(1)
    async with pool.acquire() as conn:
        assert await store.append(conn, stream, NO_STREAM, [event], program_id="p") == 1
        # a retry of the same append (say, after a lost reply) is a no-op, whatever version it expected
        assert await store.append(conn, stream, NO_STREAM, [event], program_id="p") == 1
        assert await store.append(conn, stream, ANY_VERSION, [event], program_id="p") == 1
        assert await count(conn, stream) == 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE registration.events SET event_type = 'x' WHERE stream_id = $1",
        "DELETE FROM registration.events WHERE stream_id = $1",
    ],
)
async def test_database_refuses_update_and_delete(pool, statement):
    stream = unique_id("stream")
    async with pool.acquire() as conn:
        await store.append(conn, stream, NO_STREAM, [ev(1)], program_id="p")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute(statement, stream)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("TRUNCATE registration.events")
        assert await count(conn, stream) == 1


async def test_metadata_is_recorded(pool):
    stream = unique_id("stream")
    meta = Metadata(
        correlation_id="corr-1",
        causation_id="cause-1",
        actor="alice",
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    )
    async with pool.acquire() as conn:
        await store.append(conn, stream, NO_STREAM, [ev(1)], program_id="p", metadata=meta)
        (event,) = await store.read_stream(conn, stream)
    assert event.metadata == meta
    assert event.program_id == "p"
    assert event.occurred_at == NOW
    assert event.recorded_at.tzinfo is not None


async def _head(conn: asyncpg.Connection) -> Position:
    position = Position()
    while batch := await store.read_all(conn, position, limit=10_000):
        position = batch[-1].position
    return position


async def test_global_order_never_skips_a_slow_commit(pool):
    """A transaction that started first and commits last is still delivered, exactly once."""
    slow_stream, fast_stream = unique_id("slow"), unique_id("fast")
    reader = await pool.acquire()
    slow = await pool.acquire()
    try:
        checkpoint = await _head(reader)
        tx = slow.transaction()
        await tx.start()
        await store.append(slow, slow_stream, NO_STREAM, [ev(1)], program_id="p")  # takes the lower position
        async with pool.acquire() as fast:
            await store.append(fast, fast_stream, NO_STREAM, [ev(2)], program_id="p")  # commits first

        seen: list[str] = []
        first = await store.read_all(reader, checkpoint)
        seen += [e.stream_id for e in first if e.stream_id in (slow_stream, fast_stream)]
        if first:
            checkpoint = first[-1].position
        assert slow_stream not in seen

        await tx.commit()
        second = await store.read_all(reader, checkpoint)
        seen += [e.stream_id for e in second if e.stream_id in (slow_stream, fast_stream)]
        if second:
            checkpoint = second[-1].position
        third = await store.read_all(reader, checkpoint)
        seen += [e.stream_id for e in third if e.stream_id in (slow_stream, fast_stream)]
        assert sorted(seen) == sorted([slow_stream, fast_stream])
    finally:
        await pool.release(slow)
        await pool.release(reader)


async def test_checkpoints_round_trip(pool):
    name = unique_id("cp")
    async with pool.acquire() as conn:
        assert await store.load_checkpoint(conn, name) == Position()
        await store.save_checkpoint(conn, name, Position(123, 456))
        assert await store.load_checkpoint(conn, name) == Position(123, 456)


async def test_migrations_are_idempotent(pg_dsn):
    assert await migrate(pg_dsn) == []


async def test_append_schedules_publication_in_the_same_transaction(pool):
    stream = unique_id("stream")
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await store.append(conn, stream, NO_STREAM, [ev(1)], program_id="p")
                raise RuntimeError("handler failed after the append")
        assert await count(conn, stream) == 0
        async with conn.transaction():  # seen before commit: a running relay may publish it right after
            await store.append(conn, stream, NO_STREAM, [ev(1, "partner.enrolled")], program_id="acme")
            subject = await conn.fetchval(
                "SELECT o.subject FROM registration.outbox o JOIN registration.events e USING (global_position)"
                " WHERE e.stream_id = $1",
                stream,
            )
    assert subject == "dealreg.registration.acme.partner.enrolled"


async def test_the_relay_is_woken_after_the_commit_and_never_for_a_rollback(pool):
    woken: list[object] = []

    def wake(*_: object) -> None:
        woken.append(1)

    async def woken_more_than(n: int) -> None:
        for _ in range(250):
            if len(woken) > n:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("no NOTIFY reached the listener")

    listener = await pool.acquire()
    await listener.add_listener(store.notify_channel, wake)
    sent: list[str] = []
    try:
        async with pool.acquire() as conn:
            with conn.query_logger(lambda q: sent.append(q.query)):
                with pytest.raises(RuntimeError):
                    async with conn.transaction():
                        await store.append(conn, unique_id("s"), NO_STREAM, [ev(1)], program_id="p")
                        raise RuntimeError("rolled back")
                await asyncio.sleep(0.2)
                assert woken == []  # nothing committed: nobody is woken
                async with conn.transaction():
                    await store.append(conn, unique_id("s"), NO_STREAM, [ev(2)], program_id="p")
                    async with conn.transaction():  # a savepoint: one wake-up, after the outer commit
                        await store.append(conn, unique_id("s"), NO_STREAM, [ev(3)], program_id="p")
                await woken_more_than(0)
                seen = len(woken)
                # on its own, the append is one statement (its own transaction), then the wake-up
                await store.append(conn, unique_id("s"), NO_STREAM, [ev(4)], program_id="p")
                await woken_more_than(seen)
        # the NOTIFY is never part of an appending transaction (it would serialise every commit), nor
        # sent by the appender at all: the pool's notifier sends it in the background
        assert not any("notify" in q.lower() for q in sent)
    finally:
        await listener.remove_listener(store.notify_channel, wake)
        await pool.release(listener)


async def test_concurrent_commits_share_their_notifies(pool):
    async with pool.acquire() as conn:
        notifier = conn.shared[NOTIFIER]
    before = notifier.sent

    async def one(n: int) -> None:
        async with pool.acquire() as conn:
            await store.append(conn, unique_id("s"), NO_STREAM, [ev(n)], program_id="p")

    await asyncio.gather(*(one(n) for n in range(40)))
    for _ in range(100):
        if notifier.sent > before:
            break
        await asyncio.sleep(0.02)
    assert 1 <= notifier.sent - before < 40


async def test_appending_on_a_plain_asyncpg_connection_is_refused(pg_dsn):
    conn = await asyncpg.connect(pg_dsn)
    stream = unique_id("s")
    try:
        with pytest.raises(AttributeError):  # it could not wake the relay after the commit
            async with conn.transaction():
                await store.append(conn, stream, NO_STREAM, [ev(1)], program_id="p")
        assert await count(conn, stream) == 0
    finally:
        await conn.close()


async def test_events_of_unpublished_types_are_logged_without_outbox_rows(server_dsn):
    """A store's unpublished event types are written as any other (stream versions, global order,
    read back) but get no outbox row, by every kind of append; an append of such events alone does
    not wake the relay, one with any other does. (In a database of its own: no relay deletes rows.)"""
    keeping = EventStore("registration", unpublished=frozenset({"thing.kept", "thing.also_kept"}))
    tag = unique_id("run")
    woken: list[int] = []
    async with scratch_database(server_dsn) as pool, pool.acquire() as conn:
        conn.shared[keeping.notify_channel] = lambda: woken.append(1)  # as an in-process relay is woken
        await keeping.append(conn, f"{tag}-a", NO_STREAM, [ev(1, "thing.kept")], program_id="p")
        assert woken == []
        await keeping.append(conn, f"{tag}-a", 1, [ev(2, "thing.told"), ev(3, "thing.also_kept")], program_id="p")
        assert woken == [1]
        async with conn.transaction():
            await keeping.append_pipelined(
                conn, [keeping.prepare(f"{tag}-b", NO_STREAM, [ev(4, "thing.kept")], program_id="p")]
            )
        assert woken == [1]
        async with conn.transaction():
            together = [
                keeping.prepare(f"{tag}-c", ANY_VERSION, [ev(5, "thing.kept"), ev(6, "thing.told")], program_id="q"),
                keeping.prepare(f"{tag}-a", ANY_VERSION, [ev(7, "thing.kept")], program_id="p"),
            ]
            assert await keeping.append_together(conn, together) == [2, 4]
        assert woken == [1, 1]
        async with conn.transaction():  # kept events alone, together: no wake-up
            await keeping.append_together(
                conn, [keeping.prepare(f"{tag}-b", ANY_VERSION, [ev(8, "thing.kept")], program_id="p")]
            )
        assert await keeping.append_many(
            conn, [keeping.prepare(f"{tag}-d", NO_STREAM, [ev(9, "thing.kept")], program_id="p")]
        ) == [1]
        assert woken == [1, 1]
        await keeping.append_many(
            conn, [keeping.prepare(f"{tag}-e", NO_STREAM, [ev(10, "thing.told")], program_id="p")]
        )
        assert woken == [1, 1, 1]
        written = [
            (stream, version, kind, subject) for stream, version, kind, *_, subject in await _written_by(conn, tag)
        ]
        assert written == [
            ("-a", 1, "thing.kept", None),
            ("-a", 2, "thing.told", "dealreg.registration.p.thing.told"),
            ("-a", 3, "thing.also_kept", None),
            ("-b", 1, "thing.kept", None),
            ("-c", 1, "thing.kept", None),
            ("-c", 2, "thing.told", "dealreg.registration.q.thing.told"),
            ("-a", 4, "thing.kept", None),
            ("-b", 2, "thing.kept", None),
            ("-d", 1, "thing.kept", None),
            ("-e", 1, "thing.told", "dealreg.registration.p.thing.told"),
        ]
        assert [e.event_type for e in await keeping.read_stream(conn, f"{tag}-a")] == [
            "thing.kept", "thing.told", "thing.also_kept", "thing.kept",
        ]  # fmt: skip
