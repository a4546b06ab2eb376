"""The `Puller` against a real NATS JetStream: one request open for many messages, batches that
gather while the consumer is busy, requests renewed when they expire or die, messages not taken
handed back on stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from deploy.nats import NatsServer
from deploy.ports import free_tcp_port
from services.eventlog.jetstream import connect
from services.eventlog.puller import Puller
from tests.conftest import unique_id

pytestmark = pytest.mark.integration

STREAM = "PULLER_TEST"


@pytest.fixture
async def js(nc):
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=["pullertest.>"]))
    return js


async def _durable(js, subject: str, ack_wait: float = 30.0) -> str:
    durable = unique_id("puller")
    config = ConsumerConfig(
        durable_name=durable, ack_policy=AckPolicy.EXPLICIT, filter_subject=subject, ack_wait=ack_wait
    )
    await js.add_consumer(STREAM, config=config)
    return durable


@contextlib.asynccontextmanager
async def _started(nc, js, **options) -> AsyncIterator[tuple[Puller, str]]:
    """A puller of a durable of its own on a subject of its own, stopped afterwards."""
    subject = f"pullertest.{unique_id('s')}"
    puller = Puller(nc, STREAM, await _durable(js, subject), **options)
    await puller.start()
    try:
        yield puller, subject
    finally:
        await puller.stop()


async def _take_all(puller: Puller, count: int, wait: float = 5.0) -> list:
    got: list = []
    async with asyncio.timeout(wait):
        while len(got) < count:
            got += await puller.take(count - len(got), wait=0.5)
    return got


async def test_one_request_carries_many_messages_published_one_at_a_time(nc, js):
    async with _started(nc, js, batch=100) as (puller, subject):
        for i in range(40):
            await js.publish(subject, str(i).encode())
            (msg,) = await _take_all(puller, 1)
            assert msg.data == str(i).encode()
            await msg.ack()
        # fetch() would have sent two requests per message; one stays open for all 40
        assert puller.requests == 1


async def test_messages_that_arrive_meanwhile_come_as_one_batch_in_order_and_more_is_asked_for(nc, js):
    async with _started(nc, js, batch=20) as (puller, subject):
        for i in range(15):
            await js.publish(subject, str(i).encode())
        await asyncio.sleep(0.3)  # the consumer busy with something else
        batch = await puller.take(100, wait=1.0)
        assert [m.data for m in batch] == [str(i).encode() for i in range(15)]
        # half of the first request delivered: a second one is open, so 25 more still flow
        for i in range(15, 40):
            await js.publish(subject, str(i).encode())
        rest = await _take_all(puller, 25)
        assert [m.data for m in rest] == [str(i).encode() for i in range(15, 40)]
        assert puller.requests >= 2
        assert len(await puller.take(10, wait=0.2)) == 0


async def test_a_consumer_that_falls_behind_is_never_sent_more_than_one_and_a_half_batches(nc, js):
    async with _started(nc, js, batch=20) as (puller, subject):
        for i in range(200):
            await js.publish(subject, str(i).encode())
        await asyncio.sleep(0.5)  # the consumer busy: what it has not taken waits on the server
        assert 20 <= puller.waiting <= 30
        got = []
        while len(got) < 200:
            batch = await _take_all(puller, min(7, 200 - len(got)))
            assert puller.waiting <= 30
            got += batch
        assert [m.data for m in got] == [str(i).encode() for i in range(200)]


async def test_an_expired_request_is_renewed(nc, js):
    async with _started(nc, js, batch=10, expires=0.5, heartbeat=0.2) as (puller, subject):
        assert await puller.take(1, wait=1.5) == []  # the first request expired meanwhile
        assert puller.requests >= 2
        await js.publish(subject, b"late")
        (msg,) = await _take_all(puller, 1)
        assert msg.data == b"late"


async def test_asking_before_the_consumer_exists_does_not_loop_and_recovers_once_it_does(nc, js):
    subject = f"pullertest.{unique_id('s')}"
    durable = unique_id("puller")
    puller = Puller(nc, STREAM, durable, batch=10, heartbeat=0.2)
    await puller.start()
    try:
        assert await puller.take(1, wait=0.5) == []
        # no responders: asked again about once a heartbeat, not in a loop with the server
        assert puller.requests <= 5
        config = ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT, filter_subject=subject)
        await js.add_consumer(STREAM, config=config)
        await js.publish(subject, b"found")
        (msg,) = await _take_all(puller, 1, wait=5.0)
        assert msg.data == b"found"
    finally:
        await puller.stop()


async def test_messages_received_and_not_taken_are_handed_back_at_once_on_stop(nc, js):
    subject = f"pullertest.{unique_id('s')}"
    durable = await _durable(js, subject, ack_wait=60.0)
    first = Puller(nc, STREAM, durable, batch=10)
    await first.start()
    for i in range(3):
        await js.publish(subject, str(i).encode())
    (taken,) = await _take_all(first, 1)
    await taken.ack()
    await asyncio.sleep(0.2)  # the other two received, not taken
    await first.stop()
    second = Puller(nc, STREAM, durable, batch=10)
    await second.start()
    try:
        # long before ack_wait (60 s) would have handed them out again
        again = await _take_all(second, 2, wait=5.0)
        assert sorted(m.data for m in again) == [b"1", b"2"]
    finally:
        await second.stop()


async def _publish_once_up(js, subject: str, data: bytes, wait: float = 20.0) -> None:
    """Publish as soon as the restarted server has reconnected and recovered its streams."""
    async with asyncio.timeout(wait):
        while True:
            try:
                await js.publish(subject, data, timeout=1.0)
                return
            except (NatsError, TimeoutError):
                await asyncio.sleep(0.1)


async def test_after_a_nats_restart_the_lost_request_is_asked_again_and_messages_flow(tmp_path):
    server = NatsServer(tmp_path / "nats", port=free_tcp_port())
    nc = await connect(server.start(), name="puller-restart")
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=STREAM, subjects=["pullertest.>"]))
        subject = "pullertest.restart"
        puller = Puller(nc, STREAM, await _durable(js, subject), batch=10, heartbeat=0.5)
        await puller.start()
        await js.publish(subject, b"before")
        (msg,) = await _take_all(puller, 1)
        await msg.ack()
        server.stop()  # the open request dies with the server; the stream and consumer are on disk
        server.start()
        await _publish_once_up(js, subject, b"after")
        # no heartbeat for three intervals: the puller asks again (no message would ever come otherwise)
        (msg,) = await _take_all(puller, 1, wait=10.0)
        assert msg.data == b"after"
        await puller.stop()
    finally:
        await nc.close()
        server.stop()
