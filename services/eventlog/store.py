"""The append-only event store on PostgreSQL, one per service schema.

Appends run inside the caller's transaction so that a handler's projection updates, the events, and
their outbox rows commit together (or not at all).

Reading the global order never skips a committed event. Global positions come from an identity
sequence, so a transaction that took position 10 may commit after one that took 11; a reader that
had already passed 11 would miss 10 forever. Every event therefore records the id of the transaction
that wrote it (`pg_current_xact_id()`), and `read_all` only returns events whose transaction id is
below `pg_snapshot_xmin(pg_current_snapshot())`: every transaction under that horizon has finished,
so nothing can still appear behind the reader. Events are read in (tx_id, global_position) order and
checkpoints store that pair. The cost is that a long-running transaction holds readers back (never
forward past it), which is the safe direction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import groupby

import asyncpg

from services.eventlog.db import NOTIFIER
from services.eventlog.events import (
    ANY_VERSION,
    NO_STREAM,
    ConcurrencyError,
    DuplicateEventError,
    Metadata,
    NewEvent,
    Position,
    RecordedEvent,
)
from services.ids import new_id
from services.metrics import events_appended
from services.telemetry import event_traceparent, span

_COLUMNS = (
    "global_position, event_id, stream_id, stream_version, event_type, program_id, subject, data::text,"
    " correlation_id, causation_id, actor, traceparent, occurred_at, recorded_at, tx_id::text::bigint"
)


@dataclass(frozen=True, slots=True)
class PreparedAppend:
    """An append's statement and arguments, made by `EventStore.prepare` in the appender's span."""

    stream_id: str
    expected_version: int
    program_id: str
    event_ids: list[uuid.UUID]
    event_types: list[str]
    statement: str
    args: list[object]


def _recorded(row: asyncpg.Record) -> RecordedEvent:
    return RecordedEvent(
        global_position=row[0],
        event_id=row[1],
        stream_id=row[2],
        stream_version=row[3],
        event_type=row[4],
        program_id=row[5],
        subject=row[6],
        data=row[7],
        metadata=Metadata(row[8], row[9], row[10], row[11]),
        occurred_at=row[12],
        recorded_at=row[13],
        tx_id=row[14],
    )


class EventStore:
    """Event streams of one service, stored in its own schema and published on its subjects."""

    def __init__(self, schema: str, service: str | None = None, unpublished: frozenset[str] = frozenset()) -> None:
        """`unpublished`: event types kept in the log only, with no outbox row (say, facts another
        service has published already, copied onto a stream of this one)."""
        self.schema = schema
        self.service = service or schema
        self.unpublished = unpublished
        self.notify_channel = f"dealreg_outbox_{schema}"
        s = schema
        # the outbox rows' filter: the event types literally, from code (never from input)
        self._published_only = (
            " WHERE event_type NOT IN (" + ", ".join(f"'{t}'" for t in sorted(unpublished)) + ")" if unpublished else ""
        )
        self._sql_existing = f"SELECT event_id, stream_id FROM {s}.events WHERE event_id = ANY($1::uuid[])"
        self._sql_version = f"SELECT version FROM {s}.streams WHERE stream_id = $1"
        # The stream head moves and the events and their outbox rows are written in one statement:
        # the events are only inserted when the head moved as expected.
        heads = {
            NO_STREAM: f"INSERT INTO {s}.streams (stream_id, version) VALUES ($1, $12::int)"
            f" ON CONFLICT DO NOTHING RETURNING version",
            # with no version to check, a retry shows in its ids: then nothing moves
            ANY_VERSION: f"INSERT INTO {s}.streams AS st (stream_id, version) SELECT $1, $12::int"
            f" WHERE NOT EXISTS (SELECT FROM {s}.events WHERE event_id = ANY($7::uuid[]))"
            f" ON CONFLICT (stream_id) DO UPDATE SET version = st.version + $12::int RETURNING version",
            "expected": f"UPDATE {s}.streams SET version = $13::int + $12::int"
            f" WHERE stream_id = $1 AND version = $13::int RETURNING version",
        }
        self._heads = heads
        self._sql_append = {kind: self._append_statement(kind) for kind in heads}
        self._sql_append_also: dict[tuple, str] = {}
        self._sql_notify = f"SELECT pg_notify('{self.notify_channel}', '')"
        self._sql_stream = (
            f"SELECT {_COLUMNS} FROM {s}.events WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version"
        )
        self._sql_streams = (
            f"SELECT {_COLUMNS} FROM {s}.events WHERE stream_id = ANY($1::text[]) ORDER BY stream_id, stream_version"
        )
        self._sql_all = (
            f"SELECT {_COLUMNS} FROM {s}.events"
            f" WHERE (tx_id, global_position) > ($1::text::xid8, $2)"
            f" AND tx_id < pg_snapshot_xmin(pg_current_snapshot())"
            f" ORDER BY tx_id, global_position LIMIT $3"
        )

    def _append_statement(self, kind: object, also: str | None = None) -> str:
        """The append of `kind` (NO_STREAM, ANY_VERSION or "expected"), with `also` (an SQL expression
        whose parameters follow the append's) evaluated once after the head moved, before the events."""
        s = self.schema
        also_cte = f"also AS MATERIALIZED (SELECT {also} FROM head)," if also else ""
        return f"""
            WITH head AS ({self._heads[kind]}), {also_cte}
            ins AS (
                INSERT INTO {s}.events (event_id, stream_id, stream_version, event_type, program_id, subject,
                                        data, correlation_id, causation_id, actor, traceparent, occurred_at)
                SELECT e.id, $1, head.version - $12::int + e.ord::int, e.t, $2, e.subj, e.d::jsonb,
                       $3, $4, $5, $6, e.at
                FROM head, {"also," if also else ""}
                     unnest($7::uuid[], $8::text[], $9::text[], $10::text[], $11::timestamptz[])
                     WITH ORDINALITY AS e(id, t, subj, d, at, ord)
                RETURNING global_position, event_type
            ), ob AS (
                INSERT INTO {s}.outbox (global_position, subject)
                SELECT global_position, 'dealreg.{self.service}.' || $2 || '.' || event_type FROM ins
                {self._published_only}
            )
            SELECT (SELECT version FROM head) AS version
            """

    async def append(
        self,
        conn: asyncpg.Connection,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        *,
        program_id: str,
        metadata: Metadata = Metadata(),
        also: tuple[str, Sequence[object]] | None = None,
    ) -> int:
        """Append `events` to `stream_id` if it is at `expected_version` (0: must not exist yet;
        ANY_VERSION: no check). Returns the stream's new version.

        `also`: (an SQL expression with placeholders {0}, {1}, ..., its arguments), evaluated in the
        same statement once the stream head has moved and before the events are written: a
        projection that must commit with them, even outside a transaction; its error undoes the append.

        Re-appending events whose ids are already recorded is a no-op (idempotent retries).
        Raises ConcurrencyError, writing nothing, when the stream is elsewhere.
        The events' `traceparent` is the append span's (see `telemetry.event_traceparent`).
        `conn` must come from `services.eventlog.db`: the outbox relay is woken after the commit.
        """
        with span("eventlog.append", schema=self.schema, stream=stream_id, count=len(events)):
            prepared = self.prepare(
                stream_id, expected_version, events, program_id=program_id, metadata=metadata, also=also
            )
            return await self.append_prepared(conn, prepared)

    def prepare(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        *,
        program_id: str,
        metadata: Metadata = Metadata(),
        also: tuple[str, Sequence[object]] | None = None,
    ) -> PreparedAppend:
        """The statement and arguments of an append (see `append`), its events' `traceparent` taken
        from the current span: call it inside the append's span."""
        if not events:
            raise ValueError("nothing to append")
        metadata = replace(metadata, traceparent=event_traceparent(metadata.traceparent))
        ids = [e.event_id for e in events]
        args = [
            stream_id,
            program_id,
            metadata.correlation_id,
            metadata.causation_id,
            metadata.actor,
            metadata.traceparent,
            ids,
            [e.event_type for e in events],
            [e.subject for e in events],
            [e.data.decode() for e in events],
            [e.occurred_at for e in events],
            len(events),
        ]
        kind = expected_version if expected_version in (ANY_VERSION, NO_STREAM) else "expected"
        if kind == "expected":
            args.append(expected_version)
        prepared = PreparedAppend(
            stream_id, expected_version, program_id, ids, [e.event_type for e in events], self._sql_append[kind], args
        )
        return self.joined(prepared, also) if also is not None else prepared

    def joined(self, prepared: PreparedAppend, also: tuple[str, Sequence[object]]) -> PreparedAppend:
        """`prepared` (made without `also`) with `also` evaluated in its statement, as `prepare` makes
        it given `also`: appends with the same `also` expression share one statement (one pipeline)."""
        kind = prepared.expected_version if prepared.expected_version in (ANY_VERSION, NO_STREAM) else "expected"
        if prepared.statement != self._sql_append[kind]:
            raise ValueError("the append has an `also` expression already")
        expression, also_args = also
        key = (kind, expression, len(also_args))
        if (statement := self._sql_append_also.get(key)) is None:
            first = len(prepared.args) + 1
            placeholders = (f"${first + i}" for i in range(len(also_args)))
            statement = self._sql_append_also[key] = self._append_statement(kind, expression.format(*placeholders))
        return replace(prepared, statement=statement, args=[*prepared.args, *also_args])

    async def append_prepared(self, conn: asyncpg.Connection, prepared: PreparedAppend) -> int:
        """Run one prepared append (see `append`)."""
        # the append is one statement: outside a transaction, atomic on its own without BEGIN and COMMIT
        in_transaction = conn.is_in_transaction()
        new_version = await conn.fetchval(prepared.statement, *prepared.args)
        if new_version is None:
            return await self._unmoved(conn, prepared)
        if self._publishes([prepared]):
            if in_transaction:
                conn.after_commit(self.notify_channel, self._wake_relay)
            else:
                await self._wake_relay(conn)
        events_appended(self.schema, prepared.program_id, prepared.event_types)
        return new_version

    async def append_many(self, conn: asyncpg.Connection, appends: Sequence[PreparedAppend]) -> list[int | None]:
        """Run prepared appends of one statement (appends of one kind and `also` expression) as one
        transaction in one round trip: the statements are pipelined, and they commit together, once,
        or, when any of them fails, not at all (the error is raised; the caller may retry each alone).

        Returns each append's new stream version, or None for an append whose stream head did not
        move (a retry, or another writer first): nothing of it was written; `append_prepared`
        alone tells which, as `append` would. Must be called outside a transaction."""
        if conn.is_in_transaction():
            raise RuntimeError("append_many commits on its own: call it outside a transaction")
        statements = {a.statement for a in appends}
        if len(statements) != 1:
            raise ValueError("append_many runs one statement: appends of one kind and `also` expression")
        # every append statement returns one row (its version null when the head did not move), so
        # the rows line up with the appends
        rows = await conn.fetchmany(statements.pop(), [a.args for a in appends])
        versions = [r[0] for r in rows]
        for a, version in zip(appends, versions, strict=True):
            if version is not None:
                events_appended(self.schema, a.program_id, a.event_types)
        if self._publishes(appends):
            await self._wake_relay(conn)
        return versions

    async def append_pipelined(self, conn: asyncpg.Connection, appends: Sequence[PreparedAppend]) -> list[int]:
        """Run prepared appends in order inside the caller's transaction, each run of one statement
        pipelined (one round trip): the same appends as `append_prepared` one after the other, with
        the same answers (a retry's version, ConcurrencyError, DuplicateEventError)."""
        if not conn.is_in_transaction():
            raise RuntimeError("append_pipelined runs inside the caller's transaction")
        versions: list[int] = []
        for statement, run in groupby(appends, key=lambda a: a.statement):
            batch = list(run)
            rows = await conn.fetchmany(statement, [a.args for a in batch])
            for a, row in zip(batch, rows, strict=True):
                if row[0] is None:
                    versions.append(await self._unmoved(conn, a))
                    continue
                events_appended(self.schema, a.program_id, a.event_types)
                versions.append(row[0])
        if self._publishes(appends):
            conn.after_commit(self.notify_channel, self._wake_relay)
        return versions

    def _publishes(self, appends: Sequence[PreparedAppend]) -> bool:
        """Whether the appends write any outbox row (any of their events is of a published type)."""
        return any(t not in self.unpublished for a in appends for t in a.event_types)

    async def append_together(
        self,
        conn: asyncpg.Connection,
        appends: Sequence[PreparedAppend],
        also: tuple[str, Sequence[object]] | None = None,
    ) -> list[int]:
        """Run prepared appends with no version to check (ANY_VERSION), to any streams, in one
        statement inside the caller's transaction: the same events, stream versions, global order
        and outbox rows as `append_pipelined` running them one after the other, with `also` (as
        `append` takes it) evaluated once, after the heads moved and before the events.

        The statement moves no head when any of the events is recorded already (a retry): then
        nothing of it is written, and the appends run one after the other as `append_pipelined`
        runs them (with `also` in the first), for the same answers. Returns each append's new
        stream version."""
        if not conn.is_in_transaction():
            raise RuntimeError("append_together runs inside the caller's transaction")
        if not appends:
            return []
        if any(a.expected_version != ANY_VERSION for a in appends):
            raise ValueError("append_together appends with no version to check (ANY_VERSION)")
        columns, heads = _together(appends)
        also_args = list(also[1]) if also is not None else []
        statement = self._together_statement(also[0] if also is not None else None, len(also_args))
        row = await conn.fetchrow(statement, *columns, *heads, *also_args)
        if row["streams"] is None:
            first, *rest = appends
            return await self.append_pipelined(conn, [self.joined(first, also) if also else first, *rest])
        moved = dict(zip(row["streams"], row["versions"], strict=True))
        for a in appends:
            events_appended(self.schema, a.program_id, a.event_types)
        if self._publishes(appends):
            conn.after_commit(self.notify_channel, self._wake_relay)
        return _versions_after_each(appends, moved)

    def _together_statement(self, also: str | None, also_count: int) -> str:
        key = ("together", also, also_count)
        if (statement := self._sql_append_also.get(key)) is not None:
            return statement
        s = self.schema
        also_sql = also.format(*(f"${_TOGETHER_PARAMS + 1 + i}" for i in range(also_count))) if also else None
        also_cte = f"also AS MATERIALIZED (SELECT {also_sql} FROM (SELECT FROM head LIMIT 1) AS moved)," if also else ""
        statement = self._sql_append_also[key] = f"""
            WITH e AS MATERIALIZED (
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                     $7::uuid[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::int[])
                WITH ORDINALITY AS e(stream_id, program_id, corr, cause, actor, tp, id, t, subj, d, at, back, ord)
            ), head AS (
                INSERT INTO {s}.streams AS st (stream_id, version)
                SELECT * FROM unnest($13::text[], $14::int[])
                WHERE NOT EXISTS (SELECT FROM {s}.events WHERE event_id = ANY($7::uuid[]))
                ON CONFLICT (stream_id) DO UPDATE SET version = st.version + excluded.version
                RETURNING stream_id, version
            ), {also_cte}
            ins AS (
                INSERT INTO {s}.events (event_id, stream_id, stream_version, event_type, program_id, subject,
                                        data, correlation_id, causation_id, actor, traceparent, occurred_at)
                SELECT e.id, e.stream_id, head.version - e.back, e.t, e.program_id, e.subj, e.d::jsonb,
                       e.corr, e.cause, e.actor, e.tp, e.at
                FROM e JOIN head USING (stream_id) {"CROSS JOIN also" if also else ""}
                ORDER BY e.ord
                RETURNING global_position, program_id, event_type
            ), ob AS (
                INSERT INTO {s}.outbox (global_position, subject)
                SELECT global_position, 'dealreg.{self.service}.' || program_id || '.' || event_type FROM ins
                {self._published_only}
            )
            SELECT array_agg(stream_id) AS streams, array_agg(version) AS versions FROM head
            """
        return statement

    async def _unmoved(self, conn: asyncpg.Connection, prepared: PreparedAppend) -> int:
        """Nothing moved: a retry of an append that committed (its version), or another writer first."""
        if (version := await self._already_recorded(conn, prepared.stream_id, prepared.event_ids)) is not None:
            return version
        actual = await conn.fetchval(self._sql_version, prepared.stream_id) or 0
        raise ConcurrencyError(prepared.stream_id, prepared.expected_version, actual)

    async def _wake_relay(self, conn: asyncpg.Connection) -> None:
        """After the commit: the relay of this process directly when it is the one publishing (it
        left its wake-up in the pool's `shared`), else a NOTIFY in a transaction that writes nothing
        (see `services.eventlog.db`), sent by the pool's notifier in the background."""
        shared = getattr(conn, "shared", {})
        if (wake := shared.get(self.notify_channel)) is not None:
            wake()
        elif (notifier := shared.get(NOTIFIER)) is not None:
            notifier.request(self.notify_channel)
        else:
            await conn.execute(self._sql_notify)

    async def _already_recorded(self, conn: asyncpg.Connection, stream_id: str, ids: list[uuid.UUID]) -> int | None:
        """The stream's version when every id is already recorded on it; None when none is."""
        existing = await conn.fetch(self._sql_existing, ids)
        if not existing:
            return None
        if len(existing) == len(ids) and all(r["stream_id"] == stream_id for r in existing):
            return await conn.fetchval(self._sql_version, stream_id)
        raise DuplicateEventError(f"events {[str(r['event_id']) for r in existing]} are already recorded")

    async def read_stream(
        self, conn: asyncpg.Connection, stream_id: str, after_version: int = 0
    ) -> list[RecordedEvent]:
        """The stream's events after `after_version`, in stream order."""
        return [_recorded(r) for r in await conn.fetch(self._sql_stream, stream_id, after_version)]

    async def read_streams(self, conn: asyncpg.Connection, stream_ids: Sequence[str]) -> dict[str, list[RecordedEvent]]:
        """Each stream's events in stream order, in one query (a stream with none is left out)."""
        out: dict[str, list[RecordedEvent]] = {}
        for row in await conn.fetch(self._sql_streams, list(stream_ids)):
            out.setdefault(row[2], []).append(_recorded(row))
        return out

    async def stream_version(self, conn: asyncpg.Connection, stream_id: str) -> int:
        return await conn.fetchval(self._sql_version, stream_id) or 0

    async def read_all(
        self, conn: asyncpg.Connection, after: Position = Position(), limit: int = 1000
    ) -> list[RecordedEvent]:
        """Committed events after `after` in the global order, never skipping one (module docstring)."""
        rows = await conn.fetch(self._sql_all, str(after.tx_id), after.global_position, limit)
        return [_recorded(r) for r in rows]

    async def load_checkpoint(self, conn: asyncpg.Connection, name: str) -> Position:
        row = await conn.fetchrow(
            f"SELECT tx_id::text::bigint, global_position FROM {self.schema}.checkpoints WHERE name = $1", name
        )
        return Position(row[0], row[1]) if row else Position()

    async def save_checkpoint(self, conn: asyncpg.Connection, name: str, position: Position) -> None:
        await conn.execute(
            f"INSERT INTO {self.schema}.checkpoints (name, tx_id, global_position) VALUES ($1, $2::text::xid8, $3)"
            f" ON CONFLICT (name) DO UPDATE SET tx_id = excluded.tx_id, global_position = excluded.global_position",
            name,
            str(position.tx_id),
            position.global_position,
        )


# the parameters of `append_together`'s statement before its `also` arguments: twelve columns of its
# events (`_together`), and its streams with their counts of events
_TOGETHER_PARAMS = 14


def _together(appends: Sequence[PreparedAppend]) -> tuple[list[list], list[list]]:
    """The columns of the appends' events, in order (each event with its append's stream and
    metadata, and how many of its stream's events come after it), and each stream with its count."""
    columns: list[list] = [[] for _ in range(12)]
    counts: dict[str, int] = {}
    for a in appends:
        counts[a.stream_id] = counts.get(a.stream_id, 0) + len(a.event_ids)
    seen: dict[str, int] = {}
    for a in appends:
        stream, program, correlation, causation, actor, traceparent, ids, types, subjects, data, at = a.args[:11]
        for i in range(len(ids)):
            seen[stream] = seen.get(stream, 0) + 1
            row = (stream, program, correlation, causation, actor, traceparent, ids[i], types[i], subjects[i])
            for column, value in zip(columns, (*row, data[i], at[i], counts[stream] - seen[stream]), strict=True):
                column.append(value)
    return columns, [list(counts), list(counts.values())]


def _versions_after_each(appends: Sequence[PreparedAppend], moved: dict[str, int]) -> list[int]:
    """Each append's stream version once its events are written, from each stream's final version."""
    later: dict[str, int] = {}
    versions = []
    for a in reversed(appends):
        versions.append(moved[a.stream_id] - later.get(a.stream_id, 0))
        later[a.stream_id] = later.get(a.stream_id, 0) + len(a.event_ids)
    return versions[::-1]


def new_event_id() -> uuid.UUID:
    return new_id()
