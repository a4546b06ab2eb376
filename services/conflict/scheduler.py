"""Fires due timers: ownership expiry and warnings, tie-group closing, SLA deadlines.

Each timer fires in its own transaction, under its program's lock (taken before the timer row, the
same order the consumer uses), and is deleted in that transaction: a restart loses none and fires
none twice. The firing's events carry the timer's due time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

import asyncpg
import msgspec
import structlog

from services.conflict import claims_repo, disputes, policy_store, reviews, tie_groups, timers
from services.conflict.deciding import reevaluate_waitlist
from services.conflict.domain import ownership
from services.conflict.recorder import lock_program, record
from services.eventlog.events import Metadata

log = structlog.get_logger(__name__)
RETRY_AFTER = dt.timedelta(seconds=5)
Firing = Callable[[asyncpg.Connection, timers.Timer], Awaitable[None]]


def _meta(t: timers.Timer) -> Metadata:
    return Metadata(causation_id=t.timer_id, actor="scheduler")


async def fire_expiry(conn: asyncpg.Connection, t: timers.Timer) -> None:
    claim = await claims_repo.load(conn, t.ref_id)
    if claim is None:
        return
    policy, version = await policy_store.in_force(conn, t.program_id)
    emits = ownership.expire(claim, version, t.due_at)
    if emits:
        await record(conn, emits, cause_id=f"timer:{t.timer_id}", now=t.due_at, meta=_meta(t), program_id=t.program_id)
        await reevaluate_waitlist(conn, claim, policy, version, t.due_at, f"timer:{t.timer_id}", _meta(t))


async def fire_expiring(conn: asyncpg.Connection, t: timers.Timer) -> None:
    claim = await claims_repo.load(conn, t.ref_id)
    if claim is not None:
        emits = ownership.warn_expiring(claim, t.due_at)
        await record(conn, emits, cause_id=f"timer:{t.timer_id}", now=t.due_at, meta=_meta(t), program_id=t.program_id)


FIRINGS: dict[str, Firing] = {
    "expiry": fire_expiry,
    "expiring": fire_expiring,
    "tie_close": tie_groups.close,
    "sla": disputes.fire_sla,
    "review_sla": reviews.fire_review_sla,
}


class Scheduler:
    def __init__(self, pool: asyncpg.Pool, clock: Callable[[], dt.datetime], *, interval: float = 0.2) -> None:
        self.pool = pool
        self.clock = clock
        self.interval = interval
        self.fired = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                fired = await self.tick()
            except Exception as e:
                log.warning("scheduler.tick_failed", error=repr(e))
                fired = 0
            if not fired:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.interval)
                except TimeoutError:
                    pass

    async def tick(self, now: dt.datetime | None = None) -> int:
        """Fire every timer due at `now` (default: the clock); returns how many fired."""
        now = now or self.clock()
        async with self.pool.acquire() as conn:
            due = await conn.fetch(
                "SELECT timer_id, program_id FROM conflict.timers WHERE due_at <= $1 ORDER BY due_at, timer_id LIMIT 100",
                now,
            )
            fired = 0
            for timer_id, program_id in due:
                try:
                    fired += await self._fire(conn, timer_id, program_id)
                except Exception as e:
                    # the firing rolled back and the timer stays; try it again a little later so
                    # that one failing timer never holds up the others
                    log.error("timer.failed", timer_id=timer_id, program_id=program_id, error=repr(e))
                    await conn.execute(
                        "UPDATE conflict.timers SET due_at = $2 WHERE timer_id = $1", timer_id, now + RETRY_AFTER
                    )
        self.fired += fired
        return fired

    async def _fire(self, conn: asyncpg.Connection, timer_id: str, program_id: str) -> int:
        async with conn.transaction():
            await lock_program(conn, program_id)
            row = await conn.fetchrow(
                "SELECT timer_id, program_id, kind, ref_id, due_at, payload::text FROM conflict.timers"
                " WHERE timer_id = $1 FOR UPDATE SKIP LOCKED",
                timer_id,
            )
            if row is None:  # fired meanwhile by another replica
                return 0
            t = timers.Timer(row[0], row[1], row[2], row[3], row[4], msgspec.json.decode(row[5]))
            firing = FIRINGS.get(t.kind)
            if firing is not None:
                await firing(conn, t)
            await timers.done(conn, t.timer_id)
            log.info("timer.fired", kind=t.kind, ref_id=t.ref_id, program_id=t.program_id)
            return 1
