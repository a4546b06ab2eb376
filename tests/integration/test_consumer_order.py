"""Two replicas of an exclusive consumer: one applies at a time, in the stream's order."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from contracts.envelope import JETSTREAM_STREAMS
from services.eventlog.consumer import EventConsumer
from tests.conftest import unique_id
from tests.e2e.helpers import wait_until
from tests.integration.test_consumer import Subject

pytestmark = pytest.mark.integration


async def test_exclusive_replicas_apply_in_stream_order(nc, pool):
    subject = Subject(nc, pool)
    table = f"public.order_{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        await conn.execute(f"CREATE TABLE {table} (n serial, level integer NOT NULL, replica text NOT NULL)")

    def handler(replica: str):
        async def handle(conn, ce, data):
            await conn.execute(f"INSERT INTO {table} (level, replica) VALUES ($1, $2)", data.level, replica)

        return handle

    durable = unique_id("ordered")
    replicas = [
        EventConsumer(
            nc=nc,
            pool=pool,
            schema="conflict",
            durable=durable,
            stream=JETSTREAM_STREAMS["conflict"],
            filter_subject=subject.subject,
            handle=handler(name),
            batch_size=7,
            exclusive=True,
            partition=lambda ce: ce.program_id,
        )
        for name in ("a", "b")
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in replicas]
    try:
        for level in range(1, 121):
            await subject.publish(subject.event(level=level))

        async def all_applied():
            async with pool.acquire() as conn:
                return await conn.fetchval(f"SELECT count(*) FROM {table}") == 120

        await wait_until(all_applied, deadline=30)
        async with pool.acquire() as conn:
            rows = await conn.fetch(f"SELECT level, replica FROM {table} ORDER BY n")
        assert [r["level"] for r in rows] == list(range(1, 121))
        assert len({r["replica"] for r in rows}) == 1  # the other replica stood by
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
