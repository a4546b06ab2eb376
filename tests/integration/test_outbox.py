"""The outbox relay against a real PostgreSQL and a real NATS JetStream.

Each test has a database of its own: the relay takes a lock per database, and a relay of a
service running elsewhere in the session must not publish (or hold back) these events.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
from collections.abc import AsyncIterator

import asyncpg
import pytest

from contracts.envelope import JETSTREAM_STREAMS
from deploy.nats import NatsServer
from deploy.ports import free_tcp_port
from services.eventlog.db import create_pool
from services.eventlog.events import ANY_VERSION, NewEvent
from services.eventlog.jetstream import connect, ensure_streams
from services.eventlog.outbox import OutboxRelay
from services.eventlog.store import EventStore
from tests.conftest import unique_id
from tests.e2e.helpers import JetStreamReader, fresh_database, wait_until

pytestmark = pytest.mark.integration

STORE = EventStore("registration")
NOW = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
async def db(server_dsn):
    async with fresh_database(server_dsn) as (_, pool):
        yield pool


def event(n: int, stream: str) -> NewEvent:
    data = json.dumps({"program_id": "p", "name": f"n{n}", "updated_at": NOW.isoformat()}).encode()
    return NewEvent("program.updated", data, subject=stream, occurred_at=NOW + dt.timedelta(seconds=n))


async def append(pool, program: str, stream: str, n: int) -> NewEvent:
    e = event(n, stream)
    async with pool.acquire() as conn:
        await STORE.append(conn, stream, ANY_VERSION, [e], program_id=program)
    return e


async def pending(pool) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM registration.outbox")


@contextlib.asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[OutboxRelay]:
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield relay
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def reader(nc, program: str) -> JetStreamReader:
    return JetStreamReader(nc, JETSTREAM_STREAMS["registration"], f"dealreg.registration.{program}.>")


def in_effect(received) -> list[str]:
    """Event ids in arrival order, each counted once (a consumer dedupes by event id)."""
    seen: dict[str, None] = {}
    for m in received:
        seen.setdefault(m.event.id, None)
    return list(seen)


async def test_publishes_each_event_in_order_per_stream_with_its_id(db, nc):
    program = unique_id("prog")
    streams = [unique_id("s") for _ in range(3)]
    appended: dict[str, list[NewEvent]] = {s: [] for s in streams}
    for n in range(30):
        stream = streams[n % 3]
        appended[stream].append(await append(db, program, stream, n))
    async with reader(nc, program) as crm, running(OutboxRelay(db, nc.jetstream(), STORE, batch_size=7)) as relay:
        received = await crm.until(30)
        await wait_until(lambda: outbox_empty(db), what="the outbox to empty")
    assert relay.published == 30
    for stream in streams:
        got = [m for m in received if m.event.subject == stream]
        assert [m.event.id for m in got] == [str(e.event_id) for e in appended[stream]]
    for m in received:
        assert m.msg_id == m.event.id
        assert m.msg.subject == f"dealreg.registration.{program}.program.updated"
        assert m.event.type == "io.dealreg.program.updated.v1"
        assert m.event.source == f"/dealreg/registration/{program}"
    first_appended = appended[streams[0]][0]
    first = next(m for m in received if m.event.id == str(first_appended.event_id))
    assert json.loads(bytes(first.event.data)) == json.loads(first_appended.data)
    assert first.event.time == first_appended.occurred_at


async def outbox_empty(pool) -> bool:
    return await pending(pool) == 0


class SettingsSeen(OutboxRelay):
    """The relay, noting its session's `synchronous_commit` before each batch."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[str] = []

    async def _send_batch(self, conn: asyncpg.Connection, in_flight):
        self.seen.append(await conn.fetchval("SHOW synchronous_commit"))
        return await super()._send_batch(conn, in_flight)


async def test_the_relay_deletes_without_waiting_for_the_disk_and_gives_its_connection_back_durable(db, nc):
    program = unique_id("prog")
    async with reader(nc, program) as crm, running(SettingsSeen(db, nc.jetstream(), STORE, batch_size=2)) as relay:
        for n in range(5):
            await append(db, program, unique_id("s"), n)
        await crm.until(5)
        await wait_until(lambda: outbox_empty(db), what="the outbox to empty")
    assert relay.seen and set(relay.seen) == {"off"}
    # every connection of the pool, the relay's among them, commits durably again
    conns = [await db.acquire() for _ in range(db.get_max_size())]
    try:
        assert {await c.fetchval("SHOW synchronous_commit") for c in conns} == {"on"}
    finally:
        for c in conns:
            await db.release(c)


class PlansSeen(OutboxRelay):
    """The relay, noting the plan of its read (in its own session) before each batch."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.plans: list[str] = []

    async def _send_batch(self, conn: asyncpg.Connection, in_flight):
        skip = in_flight.positions if in_flight is not None else []
        plan = await conn.fetch(f"EXPLAIN {self._sql_batch}", self.batch_size, self._sent, skip)
        self.plans.append("\n".join(r[0] for r in plan))
        return await super()._send_batch(conn, in_flight)


async def test_the_relay_reads_an_outbox_emptied_after_a_burst_through_its_index(db, nc):
    """A burst leaves the outbox's heap large and nearly empty, and so do its statistics: the planner
    would read every page of it for each batch (measured after a benchmark's burst: 520 pages, a
    fifth of the database's statement time), where the primary key finds the few rows at once."""
    program = unique_id("prog")
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO registration.outbox SELECT -g, 'x' FROM generate_series(1, 50000) AS g")
        # a few rows left all over the heap (rows with no event: the read's join drops them), so that
        # vacuum cannot truncate it; its statistics then count a few rows on many pages
        await conn.execute("DELETE FROM registration.outbox WHERE global_position < 0 AND global_position % 2000 <> 0")
        await conn.execute("VACUUM (ANALYZE) registration.outbox")
    for n in range(3):
        await append(db, program, unique_id("s"), n)
    async with reader(nc, program) as crm, running(PlansSeen(db, nc.jetstream(), STORE)) as relay:
        await crm.until(3)
    assert relay.plans
    for plan in relay.plans:
        assert "Seq Scan on outbox" not in plan and "outbox_pkey" in plan, plan


class DeletesCounted(OutboxRelay):
    """The relay, counting the deletes it sends on their own (not with the next batch's read)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.alone = 0

    async def _delete_sent(self, conn: asyncpg.Connection) -> None:
        self.alone += bool(self._sent)
        await super()._delete_sent(conn)


async def test_a_batch_is_deleted_by_the_read_of_the_next_or_soon_after_the_last(db, nc):
    program = unique_id("prog")
    async with db.acquire() as conn:
        for n in range(9):
            await STORE.append(conn, unique_id("s"), ANY_VERSION, [event(n, "s")], program_id=program)
    relay = DeletesCounted(db, nc.jetstream(), STORE, batch_size=2, poll_interval=30.0)
    async with reader(nc, program) as crm, running(relay):
        received = await crm.until(9)
        # five batches, one round trip each: only the last one's rows are deleted on their own,
        # a moment after it (not at the next poll, 30 s away)
        await wait_until(lambda: outbox_empty(db), deadline=2, what="the outbox to empty")
        assert relay.alone == 1
    assert len(in_effect(received)) == 9 and relay.published == 9


async def test_an_event_stays_in_the_outbox_until_its_puback(db, nc):
    """No stream captures these subjects, so no PubAck comes back: nothing is marked sent."""
    program = unique_id("prog")
    nowhere = EventStore("registration", service="nowhere")
    async with db.acquire() as conn:
        await nowhere.append(conn, unique_id("s"), ANY_VERSION, [event(1, "s")], program_id=program)
        relay = OutboxRelay(db, nc.jetstream(), nowhere)
        with pytest.raises(Exception):  # noqa: B017 - no responders, or no answer at all
            await asyncio.wait_for(relay.publish_batch(conn), 15)
    assert relay.published == 0
    assert await pending(db) == 1


async def test_every_event_arrives_when_nats_was_down_between_append_and_publish(db, tmp_path):
    program = unique_id("prog")
    server = NatsServer(tmp_path / "nats", port=free_tcp_port())
    url = server.start()
    nc = await connect(url, name="outbox-restart")
    try:
        await ensure_streams(nc)
        stream = unique_id("s")
        relay = OutboxRelay(db, nc.jetstream(), STORE, poll_interval=0.2, standby_interval=0.2)
        async with reader(nc, program) as crm, running(relay):
            first = await append(db, program, stream, 1)
            await crm.until(1)
            await wait_until(lambda: outbox_empty(db), what="the first event to be marked sent")
            server.stop()
            later = [await append(db, program, stream, n) for n in (2, 3, 4)]
            # while NATS is down the events wait in the outbox
            assert await pending(db) == 3
            server.start()
            received = await crm.until(4, deadline=30)
            await wait_until(lambda: outbox_empty(db), deadline=30, what="the outbox to empty")
            received = await crm.quiet(0.3)
        assert in_effect(received) == [str(e.event_id) for e in [first, *later]]
    finally:
        await nc.close()
        server.stop()


async def test_a_batch_whose_pubacks_died_with_the_server_is_sent_again(db, tmp_path):
    """NATS killed while a batch is in flight: its PubAcks never come; the relay gives the batch up
    after `ack_timeout` and sends it again once NATS is back. Every event arrives, once in effect."""
    program = unique_id("prog")
    server = NatsServer(tmp_path / "nats", port=free_tcp_port())
    nc = await connect(server.start(), name="outbox-kill")
    try:
        await ensure_streams(nc)
        streams = [unique_id("s") for _ in range(20)]
        async with db.acquire() as conn:
            for stream in streams:
                await STORE.append(
                    conn, stream, ANY_VERSION, [event(n, stream) for n in range(100)], program_id=program
                )
        relay = OutboxRelay(db, nc.jetstream(), STORE, batch_size=400, poll_interval=0.2, ack_timeout=2.0)
        async with running(relay):
            await wait_until(lambda: relay.published > 0, deadline=10, interval=0.001)
            os.kill(server.pid, signal.SIGKILL)
            server.stop()
            assert await pending(db) > 0
            server.start()
            await wait_until(lambda: outbox_empty(db), deadline=20, what="the outbox to empty")
        async with reader(nc, program) as crm:
            received = await crm.until(2000, deadline=20)
        ids = in_effect(received)
        assert len(ids) == 2000
        for stream in streams:  # per stream, first arrivals keep the append order
            names = [json.loads(bytes(m.event.data))["name"] for m in received if m.event.subject == stream]
            assert list(dict.fromkeys(names)) == [f"n{n}" for n in range(100)]
    finally:
        await nc.close()
        server.stop()


async def test_two_relays_at_once_publish_each_event_once_and_in_order(db, nc, server_dsn):
    program = unique_id("prog")
    stream = unique_id("s")
    one = OutboxRelay(db, nc.jetstream(), STORE, batch_size=5, standby_interval=0.1)
    other = OutboxRelay(db, nc.jetstream(), STORE, batch_size=5, standby_interval=0.1)
    async with reader(nc, program) as crm:
        async with running(one), running(other):
            appended = [await append(db, program, stream, n) for n in range(20)]
            await crm.until(20)
            await wait_until(lambda: outbox_empty(db), what="the outbox to empty")
            # exactly one of them publishes while both run
            assert sorted([one.published, other.published]) == [0, 20]
            holder, standby = (one, other) if one.published else (other, one)
        # the one that held the lock is gone; the other takes over
        async with running(standby):
            appended += [await append(db, program, stream, n) for n in range(20, 25)]
            received = await crm.until(25)
        assert standby.published == 5 and holder.published == 20
    assert [m.event.id for m in received] == [str(e.event_id) for e in appended]


@pytest.mark.parametrize("appender", ["same pool", "another replica"])
async def test_an_append_wakes_the_relay_long_before_its_poll_interval(server_dsn, nc, appender):
    program = unique_id("prog")
    async with fresh_database(server_dsn) as (dsn, pool):
        # the relay's own process wakes it directly; another replica's append wakes it by NOTIFY
        other = await create_pool(dsn, min_size=1, max_size=2) if appender == "another replica" else None
        relay = OutboxRelay(pool, nc.jetstream(), STORE, poll_interval=30.0)
        notified: list[object] = []
        listener = await asyncpg.connect(dsn)
        await listener.add_listener(STORE.notify_channel, lambda *_: notified.append(1))
        try:
            async with reader(nc, program) as crm, running(relay):
                await append(pool, program, unique_id("s"), 0)
                await crm.until(1, deadline=5)  # the relay starts with a pass over the outbox, then waits 30 s
                notified.clear()
                for n in range(1, 4):
                    await append(other or pool, program, unique_id("s"), n)
                    await crm.until(n + 1, deadline=3)
            assert (len(notified) > 0) == (other is not None)  # in its own process: no NOTIFY needed
        finally:
            await listener.close()
            if other is not None:
                await other.close()


class InFlightSeen(OutboxRelay):
    """The relay, noting for each batch it sends whether another one's PubAcks were still awaited."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.while_in_flight: list[bool] = []

    async def _send_batch(self, conn: asyncpg.Connection, in_flight):
        batch = await super()._send_batch(conn, in_flight)
        if batch is not None:
            self.while_in_flight.append(in_flight is not None)
        return batch


async def test_a_batch_goes_out_while_the_pubacks_of_the_one_before_are_awaited(db, nc):
    """Full batches, and those appended while a batch's PubAcks are awaited, are published without
    waiting for them: the next one skips the rows in flight, and every event still arrives once, in
    its stream's order, and leaves the outbox."""
    program = unique_id("prog")
    streams = [unique_id("s") for _ in range(2)]
    appended: dict[str, list[str]] = {s: [] for s in streams}
    for n in range(20):
        appended[streams[n % 2]].append(str((await append(db, program, streams[n % 2], n)).event_id))
    relay = InFlightSeen(db, nc.jetstream(), STORE, batch_size=3)
    async with reader(nc, program) as crm, running(relay):
        for n in range(20, 40):  # appended while the relay publishes
            appended[streams[n % 2]].append(str((await append(db, program, streams[n % 2], n)).event_id))
        received = await crm.until(40)
        await wait_until(lambda: outbox_empty(db), what="the outbox to empty")
    assert relay.published == 40 and len(in_effect(received)) == 40
    assert any(relay.while_in_flight), relay.while_in_flight
    for stream in streams:
        assert [i for i in in_effect(received) if i in set(appended[stream])] == appended[stream]
