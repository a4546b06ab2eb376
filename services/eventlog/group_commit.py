"""Group commit: appends from concurrent requests written together, one commit for many.

Every append outside a transaction costs a round trip and a commit (a WAL flush) of its own. Under
load, requests arrive while earlier appends are still in flight; the `GroupAppender` queues them
and, as soon as a flush slot is free, sends everything queued as one pipelined transaction
(`EventStore.append_many`): one round trip and one commit for the lot. An append that arrives when
a slot is free goes at once, alone, so a quiet service waits for nothing.

Each caller still gets its own answer. When the transaction fails, nothing of it was written, and
each append of it is sent again alone, so that only the one at fault fails (with the error a
single append would raise); an append whose stream head did not move is run alone too, which
tells a retry (its version) from another writer (ConcurrencyError). A caller's reply comes only
after its commit.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

import asyncpg
import structlog

from services.eventlog.events import Metadata, NewEvent
from services.eventlog.store import EventStore, PreparedAppend
from services.telemetry import span

log = structlog.get_logger(__name__)

_Waiting = tuple[PreparedAppend, asyncio.Future]


class GroupAppender:
    def __init__(
        self, store: EventStore, pool: Callable[[], asyncpg.Pool], *, max_batch: int = 200, slots: int = 2
    ) -> None:
        """`pool`: where connections come from (read when a flush starts: the pool is made in the
        app's lifespan). `slots`: flushes in flight at once; `max_batch`: appends in one flush."""
        self.store = store
        self.pool = pool
        self.max_batch = max_batch
        self.slots = slots
        self.flushes = 0
        self._queue: deque[_Waiting] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task] = set()

    async def append(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        *,
        program_id: str,
        metadata: Metadata = Metadata(),
        also: tuple[str, Sequence[object]] | None = None,
    ) -> int:
        """`EventStore.append` outside a transaction, committed with whatever else is queued."""
        with span("eventlog.append", schema=self.store.schema, stream=stream_id, count=len(events)):
            prepared = self.store.prepare(
                stream_id, expected_version, events, program_id=program_id, metadata=metadata, also=also
            )
            future = asyncio.get_running_loop().create_future()
            self._queue.append((prepared, future))
            self._start_flushes()
            return await future

    def _start_flushes(self) -> None:
        while self._queue and self._in_flight < self.slots:
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            self._in_flight += 1
            task = asyncio.create_task(self._flush(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[_Waiting]) -> None:
        self.flushes += 1
        try:
            async with self.pool().acquire() as conn:
                await self._write(conn, batch)
        except BaseException as e:  # the connection itself failed: every append left unanswered fails
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(e, Exception):
                    future.set_exception(e)
                else:  # cancelled (the service stopping): so are its callers
                    future.cancel()
            if not isinstance(e, Exception):
                raise
        finally:
            self._in_flight -= 1
            self._start_flushes()

    async def _write(self, conn: asyncpg.Connection, batch: list[_Waiting]) -> None:
        by_statement: dict[str, list[_Waiting]] = {}
        for waiting in batch:
            by_statement.setdefault(waiting[0].statement, []).append(waiting)
        for group in by_statement.values():
            alone = group
            if len(group) > 1:
                try:
                    versions = await self.store.append_many(conn, [p for p, _ in group])
                except (asyncpg.PostgresError, ValueError) as e:
                    # nothing of the group was written: each goes again alone, and only the one at fault fails
                    log.debug("group_commit.split", size=len(group), error=repr(e))
                else:
                    alone = []
                    for (prepared, future), version in zip(group, versions, strict=True):
                        if version is None:
                            alone.append((prepared, future))
                        elif not future.done():
                            future.set_result(version)
            for prepared, future in alone:
                try:
                    version = await self.store.append_prepared(conn, prepared)
                except Exception as e:
                    if not future.done():
                        future.set_exception(e)
                else:
                    if not future.done():
                        future.set_result(version)
