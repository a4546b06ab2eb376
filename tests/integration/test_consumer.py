"""The exactly-once consumer against a real NATS JetStream and PostgreSQL.

Messages go to `dealreg.conflict.<program>.conflict.escalated`, which no service consumes, so the
test's consumer is the only one applying them. The handler's effect is a row in a table of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest

from contracts.conflict_events import ConflictEscalated
from contracts.envelope import DEAD_LETTER_STREAM, JETSTREAM_STREAMS, encode, envelope, subject_for
from services.eventlog.consumer import EventConsumer, PoisonMessage
from tests.conftest import unique_id
from tests.e2e.helpers import JetStreamReader, wait_until

pytestmark = pytest.mark.integration

T = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)
STREAM = JETSTREAM_STREAMS["conflict"]


@pytest.fixture(scope="module")
async def effects_table(pool) -> str:
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS public.consumer_test_effects"
            " (consumer text NOT NULL, event_id text NOT NULL, level integer NOT NULL)"
        )
    return "public.consumer_test_effects"


class Subject:
    """One test's program: publishes its events, counts its consumer's effects."""

    def __init__(self, nc, pool) -> None:
        self.nc, self.pool = nc, pool
        self.program = unique_id("prog")
        self.durable = unique_id("consumer")
        self.subject = subject_for("conflict", self.program, "conflict.escalated")

    def event(self, level: int = 1, event_id: str | None = None) -> bytes:
        data = ConflictEscalated(
            conflict_id="c1", program_id=self.program, level=level, authority_role="cm", due_at=T, escalated_at=T
        )
        ce = envelope(
            service="conflict", event_name="conflict.escalated", event_id=event_id or str(uuid.uuid4()),
            subject="c1", time=T, data=encode(data), program_id=self.program,
        )  # fmt: skip
        return encode(ce)

    async def publish(self, payload: bytes, msg_id: str | None = None):
        return await self.nc.jetstream().publish(
            self.subject, payload, headers={"Nats-Msg-Id": msg_id or str(uuid.uuid4())}
        )

    async def effects(self) -> list[tuple[str, int]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT event_id, level FROM public.consumer_test_effects WHERE consumer = $1 ORDER BY level",
                self.durable,
            )
        return [(r[0], r[1]) for r in rows]

    async def processed(self) -> int:
        async with self.pool.acquire() as conn:
            return await conn.fetchval("SELECT count(*) FROM registration.processed WHERE consumer = $1", self.durable)

    def consumer(self, handle=None, **options) -> EventConsumer:
        async def record(conn, ce, data) -> None:
            await conn.execute(
                "INSERT INTO public.consumer_test_effects (consumer, event_id, level) VALUES ($1, $2, $3)",
                self.durable, ce.id, data.level,
            )  # fmt: skip

        return EventConsumer(
            nc=self.nc, pool=self.pool, schema="registration", durable=self.durable, stream=STREAM,
            filter_subject=f"dealreg.conflict.{self.program}.>", handle=handle or record, **options,
        )  # fmt: skip


@pytest.fixture
async def subject(nc, pool, effects_table):
    s = Subject(nc, pool)
    yield s
    with contextlib.suppress(Exception):
        await nc.jetstream().delete_consumer(STREAM, s.durable)


@contextlib.asynccontextmanager
async def running(consumer: EventConsumer) -> AsyncIterator[EventConsumer]:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield consumer
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_applies_each_message_once_with_its_effect(subject):
    ids = [str(uuid.uuid4()) for _ in range(10)]
    for level, event_id in enumerate(ids):
        await subject.publish(subject.event(level, event_id))
    async with running(subject.consumer()) as consumer:
        await wait_until(lambda: _count(subject, 10), what="ten effects")
    assert await subject.effects() == [(event_id, level) for level, event_id in enumerate(ids)]
    assert await subject.processed() == 10 and consumer.applied == 10


async def _count(subject: Subject, n: int) -> bool:
    return len(await subject.effects()) >= n


async def test_a_redelivery_after_applying_changes_nothing(subject):
    """Applied and committed, then the ack is lost (a crash): the redelivered message is acked only."""
    await subject.publish(subject.event(7))
    consumer = subject.consumer()
    sub = await consumer.subscribe()
    try:
        (msg,) = await sub.fetch(1, timeout=5)

        msg.ack = _no_ack
        await consumer.process(msg)
        assert len(await subject.effects()) == 1
        await msg.nak()  # the server hands it out again, as after ack_wait
        (again,) = await sub.fetch(1, timeout=5)
        assert again.metadata.num_delivered == 2
        await consumer.process(again)
        assert len(await subject.effects()) == 1 and consumer.applied == 1
        with pytest.raises(Exception):  # noqa: B017 - acked: nothing is left to deliver
            await sub.fetch(1, timeout=0.5)
    finally:
        await sub.unsubscribe()


async def test_an_unacked_message_redelivered_after_ack_wait_is_not_applied_twice(subject):
    await subject.publish(subject.event(3))
    consumer = subject.consumer(ack_wait=1.0)
    sub = await consumer.subscribe()
    try:
        (msg,) = await sub.fetch(1, timeout=5)
        msg.ack = _no_ack
        await consumer.process(msg)
        (again,) = await sub.fetch(1, timeout=5)  # handed out again once ack_wait passed
        assert again.metadata.num_delivered == 2
        await consumer.process(again)
        assert len(await subject.effects()) == 1 and consumer.applied == 1
    finally:
        await sub.unsubscribe()


async def _no_ack() -> None:
    pass


async def test_a_republication_with_a_new_stream_sequence_is_applied_once(subject):
    event_id = str(uuid.uuid4())
    payload = subject.event(5, event_id)
    first = await subject.publish(payload, msg_id=event_id)
    inside_window = await subject.publish(payload, msg_id=event_id)
    assert inside_window.duplicate and inside_window.seq == first.seq  # JetStream dropped it
    # as after the duplicate window: the same event under another Nats-Msg-Id is stored again
    again = await subject.publish(payload, msg_id=str(uuid.uuid4()))
    assert not again.duplicate and again.seq > first.seq
    marker = str(uuid.uuid4())
    await subject.publish(subject.event(6, marker))
    async with running(subject.consumer()):
        await wait_until(lambda: _count(subject, 2), what="the marker to be applied")
    assert await subject.effects() == [(event_id, 5), (marker, 6)]


async def test_undecodable_messages_are_dead_lettered_and_the_consumer_goes_on(subject, nc):
    bad = {
        "not json": b"\xff\x00 not json",
        "not utf-8": b'{"specversion": "1.0", "id": "\xff\xfe"}',
        "no envelope": b'{"hello": "world"}',
        "unknown type": subject.event().replace(b"conflict.escalated.v1", b"conflict.unheard_of.v1"),
        "bad data": subject.event().replace(b'"level":1', b'"level":"one"'),
        "not a uuid": subject.event(event_id="event-42"),
    }
    for payload in bad.values():
        await subject.publish(payload)
    good = str(uuid.uuid4())
    await subject.publish(subject.event(9, good))
    async with (
        JetStreamReader(nc, DEAD_LETTER_STREAM, f"dealreg.deadletter.{subject.durable}") as dead,
        running(subject.consumer()) as consumer,
    ):
        received = await dead.until(len(bad), deadline=5)
        await wait_until(lambda: _count(subject, 1), what="the good message to be applied")
    assert sorted(m.msg.data for m in received) == sorted(bad.values())
    for m in received:
        assert m.msg.headers["Dealreg-Reason"].startswith("undecodable")
        assert m.msg.headers["Dealreg-Original-Subject"] == subject.subject
    assert await subject.effects() == [(good, 9)]
    assert consumer.dead_lettered == len(bad)


async def test_a_transient_failure_is_retried_and_then_succeeds(subject):
    failures = {"left": 2}

    async def flaky(conn, ce, data) -> None:
        # the effect is written first: it must vanish with the failed attempt's transaction
        await conn.execute(
            "INSERT INTO public.consumer_test_effects (consumer, event_id, level) VALUES ($1, $2, $3)",
            subject.durable, ce.id, data.level,
        )  # fmt: skip
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("the database went away for a moment")

    event_id = str(uuid.uuid4())
    await subject.publish(subject.event(4, event_id))
    async with running(subject.consumer(handle=flaky)) as consumer:
        await wait_until(lambda: _count(subject, 1), what="the effect after retries")
    assert failures["left"] == 0
    assert await subject.effects() == [(event_id, 4)]
    assert await subject.processed() == 1 and consumer.applied == 1


async def test_a_failure_in_a_batch_applies_the_others_and_retries_only_the_failing_one(subject):
    attempts: dict[int, int] = {}

    async def fails_once_on_level_2(conn, ce, data) -> None:
        attempts[data.level] = attempts.get(data.level, 0) + 1
        await conn.execute(
            "INSERT INTO public.consumer_test_effects (consumer, event_id, level) VALUES ($1, $2, $3)",
            subject.durable, ce.id, data.level,
        )  # fmt: skip
        if data.level == 2 and attempts[2] <= 2:  # once in the batch, once on its own
            raise ConnectionError("transient")

    for level in range(5):
        await subject.publish(subject.event(level))
    async with running(subject.consumer(handle=fails_once_on_level_2)):
        await wait_until(lambda: _count(subject, 5), what="all five effects")
    assert [level for _, level in await subject.effects()] == [0, 1, 2, 3, 4]


async def test_poison_and_exhausted_retries_are_dead_lettered(subject, nc):
    async def refuse(conn, ce, data) -> None:
        if data.level == 1:
            raise PoisonMessage("never applicable")
        if data.level == 2:
            raise RuntimeError("always failing")
        await conn.execute(
            "INSERT INTO public.consumer_test_effects (consumer, event_id, level) VALUES ($1, $2, $3)",
            subject.durable, ce.id, data.level,
        )  # fmt: skip

    for level in (1, 2, 3):
        await subject.publish(subject.event(level))
    async with (
        JetStreamReader(nc, DEAD_LETTER_STREAM, f"dealreg.deadletter.{subject.durable}") as dead,
        running(subject.consumer(handle=refuse, max_deliver=2)),
    ):
        received = await dead.until(2, deadline=10)
        await wait_until(lambda: _count(subject, 1))
    reasons = sorted(m.msg.headers["Dealreg-Reason"] for m in received)
    assert reasons[0].startswith("failed 2 times") and reasons[1].startswith("poison: never applicable")
    assert [level for _, level in await subject.effects()] == [3]


async def test_several_subjects_are_filtered_by_jetstream(subject):
    """Given several subjects, the consumer is delivered those only: what else the stream holds
    never reaches it (the conflict intake is not sent the statuses it would ignore)."""
    escalated, elsewhere = subject.event(1), subject.event(2)
    await subject.publish(escalated)
    await subject.nc.jetstream().publish(
        subject_for("conflict", subject.program, "conflict.sla_breached"),
        elsewhere,
        headers={"Nats-Msg-Id": str(uuid.uuid4())},
    )
    await subject.publish(subject.event(3))
    consumer = subject.consumer()
    consumer.filter_subject = [subject.subject, subject_for("conflict", subject.program, "conflict.decided")]
    async with running(consumer):
        await wait_until(lambda: _count(subject, 2), what="two effects")
    assert [level for _, level in await subject.effects()] == [1, 3]
    info = await subject.nc.jetstream().consumer_info(STREAM, subject.durable)
    assert info.num_pending == 0 and info.config.filter_subjects == consumer.filter_subject


async def test_a_batch_handler_applies_a_fetched_batch_together_or_else_one_by_one(subject):
    """`handle_batch` gets the new messages of a batch together, in order, within the consumer's
    transaction; when it fails, nothing of it stays and each message is applied alone by `handle`."""
    batches: list[list[int]] = []

    async def together(conn, delivered) -> None:
        batches.append([d.data.level for d in delivered])
        for d in delivered:
            with d.handling():
                await conn.execute(
                    "INSERT INTO public.consumer_test_effects (consumer, event_id, level) VALUES ($1, $2, $3)",
                    subject.durable, d.ce.id, d.data.level,
                )  # fmt: skip
        if any(d.data.level == 13 for d in delivered):
            raise RuntimeError("this batch cannot be applied together")

    for level in (10, 11, 12):
        await subject.publish(subject.event(level))
    async with running(subject.consumer(handle_batch=together)) as first:
        await wait_until(lambda: _count(subject, 3), what="three effects")
    assert batches == [[10, 11, 12]] and first.applied == 3  # given together, in order
    for level in (13, 14, 15):
        await subject.publish(subject.event(level))
    async with running(subject.consumer(handle_batch=together)) as second:
        await wait_until(lambda: _count(subject, 6), what="six effects")
    # refused together (what the first fetch brought: 13 and what arrived with it, in order), then
    # one by one; nothing of the refused batch stayed (each effect once, below)
    refused = batches[1]
    assert refused == list(range(13, 13 + len(refused))) and len(refused) >= 2 and second.applied == 3
    assert [level for _, level in await subject.effects()] == list(range(10, 16))


async def test_lingering_gathers_what_arrives_meanwhile_into_one_batch(subject):
    """With `linger`, after a batch smaller than `batch_size` the consumer waits before fetching
    again: what was published meanwhile comes as one batch, in order."""
    batches: list[list[int]] = []

    async def together(conn, delivered) -> None:
        batches.append([d.data.level for d in delivered])
        for d in delivered:
            await conn.execute(
                "INSERT INTO public.consumer_test_effects (consumer, event_id, level) VALUES ($1, $2, $3)",
                subject.durable, d.ce.id, d.data.level,
            )  # fmt: skip

    async def alone(conn, ce, data) -> None:
        batches.append([data.level])
        await conn.execute(
            "INSERT INTO public.consumer_test_effects (consumer, event_id, level) VALUES ($1, $2, $3)",
            subject.durable, ce.id, data.level,
        )  # fmt: skip

    async with running(subject.consumer(handle=alone, handle_batch=together, linger=2.0)):
        await subject.publish(subject.event(1))
        await wait_until(lambda: _count(subject, 1), what="the first effect")
        for level in range(2, 7):  # while the consumer lingers
            await subject.publish(subject.event(level))
        await wait_until(lambda: _count(subject, 6), what="six effects")
    assert batches == [[1], [2, 3, 4, 5, 6]]


async def test_a_batch_marker_marks_each_transactions_events_and_says_which_are_new(subject):
    """With `mark_batch`, a partition's transaction marks its events through it (told the
    partition's key) in place of the consumer's own statement, and only the ids it returns as
    marked now are applied."""
    calls: list[tuple[str, int]] = []
    ids = [str(uuid.uuid4()) for _ in range(3)]

    async def marker(conn, consumer, event_ids, key, data) -> set[str]:
        calls.append((key, len(event_ids), [d.level for d in data]))
        rows = await conn.fetch(
            "INSERT INTO registration.processed (consumer, event_id) SELECT $1, unnest($2::uuid[])"
            " ON CONFLICT DO NOTHING RETURNING event_id::text",
            consumer, event_ids,
        )  # fmt: skip
        return {r[0] for r in rows} - {ids[1]}  # as if the second had been marked before

    async def together(conn, delivered) -> None:
        for d in delivered:
            await conn.execute(
                "INSERT INTO public.consumer_test_effects (consumer, event_id, level) VALUES ($1, $2, $3)",
                subject.durable, d.ce.id, d.data.level,
            )  # fmt: skip

    for level, event_id in zip((30, 31, 32), ids, strict=True):
        await subject.publish(subject.event(level, event_id))
    consumer = subject.consumer(handle_batch=together, mark_batch=marker, partition=lambda ce: ce.program_id)
    async with running(consumer):
        await wait_until(lambda: _count(subject, 2), what="two effects")
    assert calls == [(subject.program, 3, [30, 31, 32])]
    assert [level for _, level in await subject.effects()] == [30, 32]
    assert await subject.processed() == 3
