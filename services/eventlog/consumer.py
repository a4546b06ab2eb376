"""A durable JetStream pull consumer that applies each event exactly once in effect.

Every message is applied in one PostgreSQL transaction together with a row recording its event id
as processed by this consumer; a redelivery, or a re-publication after JetStream's duplicate window,
finds the row and changes nothing. A message that cannot be decoded, or that the handler declares
poison, goes to `dealreg.deadletter.<consumer>` with a log line, and the consumer goes on; any other
failure is retried with backoff (`nak(delay)`) until `max_deliver`, then dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import zlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import asyncpg
import msgspec
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.envelope import DEAD_LETTER_PREFIX, CloudEvent, UnknownEventType, decode_data, decode_envelope
from services.eventlog.observe import handling
from services.eventlog.puller import Puller

log = structlog.get_logger(__name__)

Handler = Callable[[asyncpg.Connection, CloudEvent, msgspec.Struct], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Delivered:
    """A message of a batch, decoded, and the context its handling runs in."""

    durable: str
    msg: Msg
    ce: CloudEvent
    data: msgspec.Struct

    def handling(self) -> AbstractContextManager[None]:
        """The message's `consume` span and log context (see `observe.handling`)."""
        return handling(self.durable, self.msg, self.ce)


BatchHandler = Callable[[asyncpg.Connection, list[Delivered]], Awaitable[None]]
# (connection, consumer, event ids, partition, the events' data) -> the ids marked processed now
BatchMarker = Callable[[asyncpg.Connection, str, list[str], str, list[msgspec.Struct]], Awaitable[set[str]]]


class PoisonMessage(Exception):
    """The message is well-formed but can never be applied: dead-letter it."""


class EventConsumer:
    def __init__(
        self,
        *,
        nc: NATS,
        pool: asyncpg.Pool,
        schema: str,
        durable: str,
        stream: str,
        filter_subject: str | list[str],
        handle: Handler,
        batch_size: int = 100,
        max_deliver: int = 8,
        ack_wait: float = 30.0,
        exclusive: bool = False,
        partition: Callable[[CloudEvent], str] | None = None,
        handle_batch: BatchHandler | None = None,
        mark_batch: BatchMarker | None = None,
        linger: float = 0.0,
    ) -> None:
        """`filter_subject`: the subjects it is given, one or several (JetStream filters them, so
        what the handler would ignore is never delivered). `exclusive`: one replica at a time
        consumes (the others stand by), so events are applied in the stream's order. `partition`:
        within a fetched batch, events of different partitions (say, programs) are applied
        concurrently, each partition in order in its own transaction. `handle_batch`: applies the
        new messages of such a transaction together, in order, in place of `handle` one by one
        (if it fails, each message is applied alone with `handle`). `mark_batch`: marks such a
        transaction's events processed in place of the consumer's own statement, returning the ids
        it marked now, so that the handlers' first statements (say, the partition's lock and what
        the batch reads under it) can go in the same round trip: it is told the events' data. `linger`: after a batch smaller
        than `batch_size`, wait this long before fetching again, so that the next batch gathers
        what arrived meanwhile: fewer, larger batches (less CPU per event) for that much more delay."""
        self.nc = nc
        self.js = nc.jetstream()
        self.pool = pool
        self.durable = durable
        self.stream = stream
        self.filter_subject = filter_subject
        self.handle = handle
        self.batch_size = batch_size
        self.max_deliver = max_deliver
        self.ack_wait = ack_wait
        self.exclusive = exclusive
        self.partition = partition
        self.handle_batch = handle_batch
        self.mark_batch = mark_batch
        self.linger = linger
        self.lock_key = zlib.crc32(f"dealreg-consumer-{durable}".encode())
        self.applied = 0
        self.dead_lettered = 0
        self._sql_mark = (
            f"INSERT INTO {schema}.processed (consumer, event_id) VALUES ($1, $2::uuid)"
            f" ON CONFLICT DO NOTHING RETURNING 1"
        )
        self._sql_mark_many = (
            f"INSERT INTO {schema}.processed (consumer, event_id) SELECT $1, unnest($2::uuid[])"
            f" ON CONFLICT DO NOTHING RETURNING event_id::text"
        )

    def _config(self) -> ConsumerConfig:
        several = isinstance(self.filter_subject, list)
        return ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver + 1,
            max_ack_pending=10_000,
            filter_subject=None if several else self.filter_subject,
            filter_subjects=self.filter_subject if several else None,
        )

    async def ensure(self) -> None:
        """The durable consumer on the server, made if missing (one that exists is kept as it is)."""
        try:
            await self.js.consumer_info(self.stream, self.durable)
        except NotFoundError:
            await self.js.add_consumer(self.stream, config=self._config())

    async def subscribe(self) -> JetStreamContext.PullSubscription:
        """A `fetch`-style subscription to the durable (made if missing), for a caller that pulls
        messages one request at a time; the consumer itself keeps a request open (`Puller`)."""
        await self.ensure()
        return await self.js.pull_subscribe_bind(self.durable, self.stream)

    async def run(self, stop: asyncio.Event) -> None:
        if not self.exclusive:
            await self._consume(stop)
            return
        while not stop.is_set():
            try:
                async with self.pool.acquire() as conn:
                    conn.holds_session_state()
                    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
                        await _pause(stop, 1.0)
                        continue
                    try:
                        await self._consume(stop, leader=conn)
                    finally:
                        with contextlib.suppress(Exception):
                            await conn.execute("SELECT pg_advisory_unlock($1)", self.lock_key)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # lost the database: another replica may take over
                log.warning("consumer.leader_lost", consumer=self.durable, error=repr(e))
                await _pause(stop, 1.0)

    async def _consume(self, stop: asyncio.Event, leader: asyncpg.Connection | None = None) -> None:
        await self.ensure()
        puller = Puller(self.nc, self.stream, self.durable, batch=2 * self.batch_size)
        await puller.start()
        loop = asyncio.get_running_loop()
        checked = loop.time()
        try:
            while not stop.is_set():
                if leader is not None and loop.time() - checked > 5.0:
                    await leader.fetchval("SELECT 1", timeout=5)  # still holding the lock's session
                    checked = loop.time()
                try:
                    msgs = await puller.take(self.batch_size, wait=0.5)
                except Exception as e:
                    log.warning("consumer.fetch_failed", consumer=self.durable, error=repr(e))
                    await asyncio.sleep(0.5)
                    continue
                if not msgs:
                    continue
                try:
                    await self.process_batch(msgs)
                except Exception as e:  # NATS or the database gone mid-batch: what was not acked comes again
                    log.warning("consumer.batch_failed", consumer=self.durable, error=repr(e))
                    await asyncio.sleep(0.5)
                    continue
                if self.linger and len(msgs) < self.batch_size:
                    await _pause(stop, self.linger)
        finally:
            # what was received and not applied is handed back at once, for the next leader
            with contextlib.suppress(Exception):
                await puller.stop()

    async def _decode(self, msg: Msg) -> tuple[CloudEvent, msgspec.Struct] | None:
        try:
            ce = decode_envelope(msg.data)
            uuid.UUID(ce.id)  # processed events are keyed by their uuid: any other id can never be applied
            return ce, decode_data(ce.service, ce.event_name, ce.data)
        except (msgspec.DecodeError, msgspec.ValidationError, UnknownEventType, IndexError, ValueError) as e:
            await self.dead_letter(msg, f"undecodable: {e}")
            return None

    async def process_batch(self, msgs: list[Msg]) -> None:
        """Apply a fetched batch: each partition in one transaction (one commit for many events),
        partitions concurrently."""
        groups: dict[str, list[tuple[Msg, CloudEvent, msgspec.Struct]]] = {}
        for msg in msgs:
            item = await self._decode(msg)
            if item is not None:
                key = self.partition(item[0]) if self.partition else ""
                groups.setdefault(key, []).append((msg, *item))
        if len(groups) <= 1:
            for key, group in groups.items():
                await self._apply_group(group, key)
            return
        await asyncio.gather(*(self._apply_group(g, key) for key, g in groups.items()))

    async def _apply_group(self, decoded: list[tuple[Msg, CloudEvent, msgspec.Struct]], key: str = "") -> None:
        """In one transaction; if anything in it fails, one message at a time, so that only the
        failing one is retried."""
        if len(decoded) == 1:
            await self._apply_one(*decoded[0])
            return
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                # the whole batch marked processed in one statement: what was already is skipped
                ids = [ce.id for _, ce, _ in decoded]
                if self.mark_batch is not None:
                    fresh = await self.mark_batch(conn, self.durable, ids, key, [data for _, _, data in decoded])
                else:
                    fresh = {r[0] for r in await conn.fetch(self._sql_mark_many, self.durable, ids)}
                new = []
                for msg, ce, data in decoded:
                    if (event_key := str(uuid.UUID(ce.id))) in fresh:
                        fresh.discard(event_key)  # twice in one batch: applied once
                        new.append(Delivered(self.durable, msg, ce, data))
                if self.handle_batch is not None and len(new) > 1:
                    await self.handle_batch(conn, new)
                else:
                    for d in new:
                        await self._handle(conn, d.msg, d.ce, d.data)
        except Exception as e:
            log.debug("consumer.batch_one_by_one", consumer=self.durable, count=len(decoded), error=repr(e))
            for msg, ce, data in decoded:
                await self._apply_one(msg, ce, data)
            return
        self.applied += len(new)
        for msg, _, _ in decoded:
            await msg.ack()

    async def process(self, msg: Msg) -> None:
        """Apply one message (or dead-letter it) and acknowledge it."""
        item = await self._decode(msg)
        if item is not None:
            await self._apply_one(msg, *item)

    async def _handle(self, conn: asyncpg.Connection, msg: Msg, ce: CloudEvent, data: msgspec.Struct) -> None:
        with handling(self.durable, msg, ce):
            await self.handle(conn, ce, data)

    async def _apply_one(self, msg: Msg, ce: CloudEvent, data: msgspec.Struct, retries: int = 2) -> None:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                if await conn.fetchval(self._sql_mark, self.durable, ce.id):
                    await self._handle(conn, msg, ce, data)
                    self.applied += 1
        except PoisonMessage as e:
            await self.dead_letter(msg, f"poison: {e}", event_id=ce.id)
            return
        except Exception as e:
            delivered = msg.metadata.num_delivered if msg.metadata else 1
            if delivered >= self.max_deliver:
                await self.dead_letter(msg, f"failed {delivered} times: {e!r}", event_id=ce.id)
                return
            if retries and isinstance(e, (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)):
                # a transient clash with another transaction: retry in place, keeping the order
                await asyncio.sleep(0.05)
                await self._apply_one(msg, ce, data, retries - 1)
                return
            delay = min(0.1 * 2 ** (delivered - 1), 10.0)
            log.warning("consumer.retry", consumer=self.durable, event_id=ce.id, delay=delay, error=repr(e))
            await msg.nak(delay=delay)
            return
        await msg.ack()

    async def dead_letter(self, msg: Msg, reason: str, event_id: str | None = None) -> None:
        headers = {"Dealreg-Reason": reason[:500], "Dealreg-Original-Subject": msg.subject}
        await self.js.publish(f"{DEAD_LETTER_PREFIX}.{self.durable}", msg.data, headers=headers)
        self.dead_lettered += 1
        log.error(
            "consumer.dead_lettered", consumer=self.durable, subject=msg.subject, event_id=event_id, reason=reason
        )
        await msg.term()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
