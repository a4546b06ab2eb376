"""The outbox relay: publishes appended events to JetStream, in order, at least once.

Appends write an outbox row in the same transaction as the event, and wake the relay once they
have committed: directly when it runs in their process and pool, else by NOTIFY. The relay
publishes a batch with asynchronous acks, `Nats-Msg-Id` = event id (so JetStream drops duplicates
inside its window, and consumers dedupe by event id beyond it), and deletes the rows only after
every PubAck. Several replicas may run a relay: a session advisory lock lets one publish a schema's
outbox at a time, which keeps the per-stream order; the others wait and take over if it dies.

While a batch's PubAcks are awaited, an append that commits wakes the relay, and the next batch
(which skips the rows awaiting theirs) is read and published at once: up to two batches are in
flight, so an event waits for no PubAcks but those of its own batch. Both go out on one connection,
in order, and the first batch's PubAcks are taken before a third is read.

The rows of a published batch are deleted by the statement that reads the next batch (one round
trip per batch, not two; the read skips them), or on their own when no next batch comes within
`delete_linger` (50 ms), and before the relay lets its lock go. Those deletes commit without
waiting for the WAL to reach the disk (`synchronous_commit` off on the relay's own session): a
delete lost in a crash only publishes its events again, which JetStream and the consumers drop as
duplicates, while each wait for the disk is one more flush and wake-up of the server per batch
(most of its commits, under load). The events themselves commit durably.

The relay reads through the outbox's primary key only (`enable_seqscan` off in its session): a queue
table's heap keeps the size of its largest backlog, so a sequential scan costs what the last burst
left, however few rows wait.
"""

from __future__ import annotations

import asyncio
import zlib

import asyncpg
import msgspec
import structlog
from nats.js import JetStreamContext
from opentelemetry.trace import SpanKind

from contracts.envelope import CloudEvent, cloudevent_type, source_for
from services.eventlog.store import EventStore
from services.telemetry import links_to, span

log = structlog.get_logger(__name__)
_encoder = msgspec.json.Encoder()


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        store: EventStore,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        standby_interval: float = 1.0,
        ack_timeout: float = 10.0,
        delete_linger: float = 0.05,
    ) -> None:
        self.pool = pool
        self.js = js
        self.store = store
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.standby_interval = standby_interval
        self.ack_timeout = ack_timeout
        self.delete_linger = delete_linger
        self._sent: list[int] = []  # global positions published and acknowledged, rows not yet deleted
        self.lock_key = zlib.crc32(f"dealreg-outbox-{store.schema}".encode())
        self.published = 0
        self._wake = asyncio.Event()
        s = store.schema
        # $2: the rows of batches acknowledged, deleted (by the same statement, so the read still sees
        # them: it skips them); $3: those of the batch whose PubAcks are still awaited, skipped
        self._sql_batch = f"""
            WITH sent AS (DELETE FROM {s}.outbox WHERE global_position = ANY($2::bigint[]))
            SELECT o.global_position, o.subject, e.event_id::text, e.event_type, e.program_id, e.subject,
                   e.data::text, e.traceparent, e.occurred_at
            FROM {s}.outbox o JOIN {s}.events e USING (global_position)
            WHERE NOT EXISTS (
                SELECT FROM unnest($2::bigint[] || $3::bigint[]) AS sent(p) WHERE sent.p = o.global_position
            )
            ORDER BY o.global_position LIMIT $1
        """
        self._sql_done = f"DELETE FROM {s}.outbox WHERE global_position = ANY($1::bigint[])"

    def wake(self, *_: object) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the relay lock (or wait for it) and publish until `stop` is set."""
        while not stop.is_set():
            try:
                async with self.pool.acquire() as conn:
                    conn.holds_session_state()
                    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
                        await _wait(stop, self.standby_interval)
                        continue
                    # session-wide: undone when the pool takes the connection back (RESET ALL)
                    await conn.execute("SET synchronous_commit = off")
                    # after a burst the outbox is a large heap of dead rows with a few live ones, and its
                    # statistics say so: the planner then reads every page for each batch, not the few
                    # keys it wants from the primary key (the read's ORDER BY ... LIMIT is one index range)
                    await conn.execute("SET enable_seqscan = off")
                    # appenders of this process wake it directly, those of other replicas by NOTIFY
                    shared = getattr(conn, "shared", {})
                    try:
                        shared[self.store.notify_channel] = self.wake
                        await conn.add_listener(self.store.notify_channel, self.wake)
                        await self._publish_loop(conn, stop)
                        await self._delete_sent(conn)
                    finally:
                        if shared.get(self.store.notify_channel) == self.wake:
                            del shared[self.store.notify_channel]
                        await conn.remove_listener(self.store.notify_channel, self.wake)
                        await conn.execute("SELECT pg_advisory_unlock($1)", self.lock_key)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # database or NATS down: keep the rows, retry
                log.warning("outbox.relay_error", schema=self.store.schema, error=repr(e))
                await _wait(stop, 1.0)

    async def _publish_loop(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        published: list[_Published] = []  # batches whose PubAcks are awaited (two at most), oldest first
        try:
            while not stop.is_set():
                self._wake.clear()
                batch = await self._send_batch(conn, published[0] if published else None)
                if batch is not None:
                    published.append(batch)
                if published and published[0] is not batch:
                    await self._acked(published.pop(0))  # the batch before this one
                if batch is not None and (
                    len(batch.positions) == self.batch_size or not await self._acked_first(batch, stop)
                ):
                    # more waits, or an append came while its PubAcks were awaited: the next batch goes
                    # out at once, and these PubAcks are taken once it is sent
                    continue
                published.clear()  # (acknowledged)
                if self._sent and not await self._woken(stop, self.delete_linger):
                    await self._delete_sent(conn)  # no next batch to take the delete along
                await self._woken(stop, self.poll_interval)
        finally:
            for batch in published:
                batch.cancel()  # its rows stay, to be published again (the duplicates are dropped)

    async def _acked_first(self, batch: _Published, stop: asyncio.Event) -> bool:
        """Wait for the batch's PubAcks (True: its rows are acknowledged), unless an append wakes the
        relay or `stop` is set before they come (False)."""
        if self._wake.is_set() or stop.is_set():
            return False
        waiter = asyncio.ensure_future(self._wake.wait())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait(
                {batch.acks, waiter, stopper}, timeout=self.ack_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
            stopper.cancel()
        if batch.acks in done:
            await self._acked(batch)
            return True
        if not done:
            raise TimeoutError("no PubAck in time: the batch is sent again")
        return False

    async def _woken(self, stop: asyncio.Event, seconds: float) -> bool:
        """Wait until an append wakes the relay, `stop` is set or `seconds` pass (False)."""
        if self._wake.is_set() or stop.is_set():
            return True
        waiter = asyncio.ensure_future(self._wake.wait())
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({waiter, stopper}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopper.cancel()
        return bool(done)

    async def _delete_sent(self, conn: asyncpg.Connection) -> None:
        if self._sent:
            await conn.execute(self._sql_done, self._sent)
            self._sent = []

    async def publish_batch(self, conn: asyncpg.Connection) -> int:
        """Publish one batch of pending events; returns how many were sent and acknowledged."""
        batch = await self._send_batch(conn, None)
        if batch is None:
            return 0
        await self._acked(batch)
        return len(batch.positions)

    async def _send_batch(self, conn: asyncpg.Connection, in_flight: _Published | None) -> _Published | None:
        """Read the next batch (deleting the rows acknowledged, skipping those of `in_flight`) and
        publish it; its PubAcks are not awaited here."""
        skip = in_flight.positions if in_flight is not None else []
        rows = await conn.fetch(self._sql_batch, self.batch_size, self._sent, skip)
        self._sent = []
        if not rows:
            return None
        # one span per batch, linked to the spans that appended its events (each message still
        # carries its own event's traceparent, so consumers continue the event's trace, not this one)
        links = links_to([r[7] for r in rows])
        with span("outbox.publish", kind=SpanKind.PRODUCER, links=links, schema=self.store.schema, count=len(rows)):
            return await self._publish(rows)

    async def _publish(self, rows: list[asyncpg.Record]) -> _Published:
        futures = []
        try:
            for _pos, nats_subject, event_id, event_type, program_id, subject, data, traceparent, occurred_at in rows:
                ce = CloudEvent(
                    id=event_id,
                    source=source_for(self.store.service, program_id),
                    type=cloudevent_type(event_type),
                    subject=subject,
                    time=occurred_at,
                    traceparent=traceparent,
                    data=msgspec.Raw(data.encode()),
                )
                headers = {"Nats-Msg-Id": event_id}
                if traceparent:
                    headers["traceparent"] = traceparent
                futures.append(await self.js.publish_async(nats_subject, _encoder.encode(ce), headers=headers))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return _Published([r[0] for r in rows], futures)

    async def _acked(self, batch: _Published) -> None:
        """Wait for the batch's PubAcks; its rows are then deleted with the next read. A message in
        flight when the server went down never gets its PubAck: without a deadline the relay would
        wait for it for ever; the batch is given up (raised) and sent again."""
        try:
            await asyncio.wait_for(batch.acks, self.ack_timeout)
        finally:
            batch.cancel()
        self._sent += batch.positions
        self.published += len(batch.positions)


class _Published:
    """A batch published: its rows' positions, and its PubAcks to come."""

    def __init__(self, positions: list[int], futures: list[asyncio.Future]) -> None:
        self.positions = positions
        self.futures = futures
        self.acks = asyncio.gather(*futures)

    def cancel(self) -> None:
        """Stop waiting: a future left waiting holds one of the client's pending-publish slots."""
        for future in self.futures:
            future.cancel()
        if self.acks.done() and not self.acks.cancelled():
            self.acks.exception()  # retrieved: no warning of an exception never retrieved
        else:
            self.acks.cancel()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def outbox_lag_seconds(conn: asyncpg.Connection, schema: str) -> float:
    """Age of the oldest event not yet published (0 when the outbox is empty)."""
    value = await conn.fetchval(
        f"SELECT extract(epoch FROM clock_timestamp() - min(e.recorded_at))"
        f" FROM {schema}.outbox o JOIN {schema}.events e USING (global_position)"
    )
    return float(value or 0.0)
