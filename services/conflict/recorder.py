"""Appends a decision's events to the conflict log and applies them to the projections, atomically.

Event ids derive from the event that caused the decision and the position within it, and event
times are the decision's `now` (a time written in the log), so replaying the same causes yields the
same events, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib
from itertools import groupby

import asyncpg

from contracts.envelope import CloudEvent, encode
from services.conflict import policy_store, projector
from services.conflict.domain.effects import Emit
from services.conflict.observe import decided_on_commit, decision_span
from services.eventlog.db import transaction_local
from services.eventlog.events import ANY_VERSION, Metadata, NewEvent
from services.eventlog.store import EventStore, PreparedAppend
from services.telemetry import span


def meta_of(ce: CloudEvent, actor: str = "rules") -> Metadata:
    """The metadata of what a consumed fact causes: correlated by its subject, caused by it, in its trace."""
    return Metadata(correlation_id=ce.subject, causation_id=ce.id, actor=actor, traceparent=ce.traceparent)


STORE = EventStore("conflict")
_NS = uuid.UUID("c6f1d7a4-51a3-4f0e-8f53-3e2f4a9d7b21")


async def lock_program(conn: asyncpg.Connection, program_id: str) -> None:
    """Decisions within a program are taken one at a time, across replicas (until commit).

    The program's policy in force is read in the same round trip, once the lock is held, and
    remembered for the transaction (`policy_store.in_force`)."""
    local = transaction_local(conn)
    held = local.setdefault("program_locks", set()) if local is not None else set()
    if program_id in held:  # a consumer's batch decides many facts of the program in one transaction
        return
    row = await conn.fetchrow(
        "SELECT version, policy FROM conflict.lock_program($1, $2)",
        zlib.crc32(f"conflict:{program_id}".encode()) - 2**31,
        program_id,
    )
    held.add(program_id)
    if local is not None:
        policy_store.remember(local, program_id, row)


def event_id(cause_id: str, index: int) -> uuid.UUID:
    return uuid.uuid5(_NS, f"{cause_id}#{index}")


async def record(
    conn: asyncpg.Connection, emits: list[Emit], *, cause_id: str, now: dt.datetime, meta: Metadata, program_id: str
) -> None:
    if not emits:
        return
    with decision_span(program_id, cause_id, emits):
        await _record(conn, emits, cause_id=cause_id, now=now, meta=meta, program_id=program_id)
    decided_on_commit(conn, emits)


def _new_events(emits: list[Emit], cause_id: str, now: dt.datetime) -> list[tuple[str, NewEvent]]:
    return [
        (
            e.stream,
            NewEvent(
                event_type=e.name,
                data=encode(e.event),
                subject=e.stream.split("-", 1)[1],
                occurred_at=now,
                event_id=event_id(cause_id, i),
            ),
        )
        for i, e in enumerate(emits)
    ]


async def _record(
    conn: asyncpg.Connection, emits: list[Emit], *, cause_id: str, now: dt.datetime, meta: Metadata, program_id: str
) -> None:
    for stream, items in groupby(_new_events(emits, cause_id, now), key=lambda pair: pair[0]):
        # streams are only written under the program's lock, so their order is already serial
        await STORE.append(conn, stream, ANY_VERSION, [n for _, n in items], program_id=program_id, metadata=meta)
    await projector.apply_all(conn, [(e.name, e.event) for e in emits])


def prepared_appends(
    emits: list[Emit], *, cause_id: str, now: dt.datetime, meta: Metadata, program_id: str
) -> list[PreparedAppend]:
    """The appends `record` makes for `emits`, prepared to run later (`EventStore.append_pipelined`),
    each in an `eventlog.append` span of its own as `record`'s are."""
    out = []
    for stream, items in groupby(_new_events(emits, cause_id, now), key=lambda pair: pair[0]):
        events = [n for _, n in items]
        with span("eventlog.append", schema=STORE.schema, stream=stream, count=len(events)):
            out.append(STORE.prepare(stream, ANY_VERSION, events, program_id=program_id, metadata=meta))
    return out
