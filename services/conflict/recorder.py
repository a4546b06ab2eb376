"""Appends a decision's events to the conflict log and applies them to the projections, atomically.

Event ids derive from the event that caused the decision and the position within it, and event
times are the decision's `now` (a time written in the log), so replaying the same causes yields the
same events, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
import zlib
from collections.abc import Callable, Iterable
from itertools import groupby

import asyncpg

from contracts.envelope import CloudEvent, encode
from services.conflict import name_index, policy_store, projector
from services.conflict.domain.effects import Emit
from services.conflict.observe import decided_on_commit, decision_span
from services.eventlog.db import transaction_local
from services.eventlog.events import ANY_VERSION, Metadata, NewEvent
from services.eventlog.store import EventStore, PreparedAppend
from services.ids import derived_id
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
    if local is not None and program_id in local.get("program_locks", ()):
        return  # a consumer's batch decides many facts of the program in one transaction
    row = await conn.fetchrow("SELECT version, policy FROM conflict.lock_program($1, $2)", *_lock_args(program_id))
    _held(conn, program_id, row)


# the intake's marks of a batch of one program's facts, the program's lock with its policy, and the
# names that arrived in the batch's countries ($5, each since its $6), read once the lock is held
_MARK_AND_LOCK = """
    WITH marked AS (
        INSERT INTO conflict.processed (consumer, event_id) SELECT $3, unnest($4::uuid[])
        ON CONFLICT DO NOTHING RETURNING event_id::text AS event_id
    )
    SELECT ARRAY(SELECT event_id FROM marked) AS fresh, l.version, l.policy,
           n.database, n.countries, n.seqs, n.names
    FROM (SELECT) AS one
    LEFT JOIN LATERAL conflict.lock_program($1, $2) AS l ON true
    LEFT JOIN LATERAL conflict.names_arrived($2, $5::text[], $6::bigint[], l.version) AS n ON true
"""


@functools.cache
def _with_candidates(columns: str) -> str:
    """`_MARK_AND_LOCK` with the candidate queries of a `name_index.Prefetch` ($7 to $15), run once the
    lock is held: the same columns, then on each row (one for each candidate, at least one) the
    probe it answers and the candidate's `columns`."""
    claim = ", ".join(f"(k.claim).{column.strip()}" for column in columns.split(","))
    return _MARK_AND_LOCK.replace(
        "n.database, n.countries, n.seqs, n.names",
        f"n.database, n.countries, n.seqs, n.names, k.probe, {claim}",
    ) + (
        "LEFT JOIN LATERAL conflict.candidates_under_lock("
        "l.version, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15::jsonb"
        ") AS k ON true"
    )


_HEAD = 8  # the columns before a candidate's in `_with_candidates`' rows (its probe the last)


async def mark_and_lock_program(
    conn: asyncpg.Connection,
    consumer: str,
    event_ids: list[str],
    program_id: str,
    countries: Iterable[str] = (),
    candidates: Callable[[], name_index.Prefetch | None] | None = None,
) -> set[str]:
    """A consumer's batch of one program's facts marked processed (the ids marked now returned), the
    program's lock taken with its policy read (`lock_program`), and the names that arrived in
    `countries` read for the transaction's searches (`name_index.asking`), in one round trip: every
    fact the intake decides on takes the lock first, and every submission searches the names of its
    country. (The lock is taken by the statement; the policy and the names are read by statements
    of their own once it is held, migrations 0014, 0017 and 0018; the marks concern this consumer alone.)

    `candidates`: called once the names are asked for, the candidate queries of the batch's first
    submissions (`name_index.prefetch`), also run once the lock is held (migration 0019) and kept
    for the transaction (`name_index.prefetched`)."""
    asked = name_index.asking(program_id, countries)
    pre = candidates() if candidates is not None else None  # (no await since `asking`)
    args = [*_lock_args(program_id), consumer, event_ids, asked.countries, asked.since]
    if pre is None:
        found = [await conn.fetchrow(_MARK_AND_LOCK, *args)]
    else:
        found = await conn.fetch(_with_candidates(pre.columns), *args, *pre.sql_args())
    row = found[0]
    _held(conn, program_id, (row["version"], row["policy"]) if row["version"] is not None else None)
    rows = list(zip(row["countries"] or (), row["seqs"] or (), row["names"] or (), strict=True))
    name_index.arrived(conn, program_id, asked, row["database"], rows)
    if pre is not None:
        answers: list[list[tuple]] = [[] for _ in pre.probes]
        for r in found:
            if r[_HEAD - 1] is not None:
                answers[r[_HEAD - 1]].append(tuple(r[_HEAD:]))
        await name_index.prefetched(conn, pre, answers, rows)
    return set(row["fresh"])


def _lock_args(program_id: str) -> tuple[int, str]:
    return zlib.crc32(f"conflict:{program_id}".encode()) - 2**31, program_id


def _held(conn: asyncpg.Connection, program_id: str, row: asyncpg.Record | tuple | None) -> None:
    """The program's lock is held until the transaction ends, and `row` (version, policy text; None
    for none published) is its policy in force."""
    local = transaction_local(conn)
    if local is not None:
        local.setdefault("program_locks", set()).add(program_id)
        policy_store.remember(local, program_id, row)


def event_id(cause_id: str, index: int) -> uuid.UUID:
    """The id of the `index`th event a fact (`cause_id`) makes: the same in a replay, in its cause's
    time order."""
    return derived_id(_NS, cause_id, f"{cause_id}#{index}")


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
