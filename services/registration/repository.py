"""Registrations on the event log: load by folding the stream, save by appending and projecting."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from contracts.envelope import decode_data, encode
from contracts.registration_events import RegistrationSubmitted
from services.eventlog.db import atomic
from services.eventlog.events import ConcurrencyError, Metadata, NewEvent, RecordedEvent
from services.eventlog.store import EventStore
from services.registration.domain.errors import DuplicateExternalRef
from services.registration.domain.model import Registration, evolve, started
from services.registration.views import resource

STORE = EventStore("registration")


def stream_of(registration_id: str) -> str:
    return f"registration-{registration_id}"


def fold(events: list[tuple[RecordedEvent, msgspec.Struct]]) -> Registration | None:
    state: Registration | None = None
    for _, data in events:
        if state is None:
            if isinstance(data, RegistrationSubmitted):
                state = started(data)
            continue
        state = evolve(state, data)
    return state


async def load_events(conn: asyncpg.Connection, registration_id: str) -> list[tuple[RecordedEvent, msgspec.Struct]]:
    recorded = await STORE.read_stream(conn, stream_of(registration_id))
    return [(e, decode_data("registration", e.event_type, e.data.encode())) for e in recorded]


async def load(conn: asyncpg.Connection, registration_id: str) -> Registration | None:
    return fold(await load_events(conn, registration_id))


async def save(
    conn: asyncpg.Connection,
    before: Registration | None,
    event_name: str,
    event: msgspec.Struct,
    metadata: Metadata,
    event_id: Any = None,
) -> Registration:
    """Append one event to the registration's stream and update its read model, atomically.

    Raises ConcurrencyError when someone else appended first, DuplicateExternalRef when a
    submission's external_ref is in use by another live registration of the partner.
    """
    after = started(event) if before is None else evolve(before, event)
    new = NewEvent(event_type=event_name, data=encode(event), subject=after.id, occurred_at=_occurred(event))
    if event_id is not None:
        new = NewEvent(
            event_type=event_name, data=new.data, subject=after.id, occurred_at=new.occurred_at, event_id=event_id
        )
    async with atomic(conn):
        if before is None and after.external_ref is not None:
            await project_claiming_ref(conn, after)
        await STORE.append(
            conn,
            stream_of(after.id),
            before.version if before else 0,
            [new],
            program_id=after.program_id,
            metadata=metadata,
        )
        if before is not None or after.external_ref is None:
            await project(conn, after)
    return after


_INSERT = """
    INSERT INTO registration.registrations
        (registration_id, program_id, partner_id, external_ref, status, version, resource)
"""
_ON_CONFLICT = """
    ON CONFLICT (registration_id) DO UPDATE SET
        external_ref = excluded.external_ref, status = excluded.status,
        version = excluded.version, resource = excluded.resource
"""
_UPSERT = f"{_INSERT} VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) {_ON_CONFLICT}"
_LOCK_REF = "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2 || '/' || $3, 0))"
# the read model is written only when no other live registration of the partner has the reference
_PROJECT_UNLESS_REF_LIVE = f"""
    WITH live AS (
        SELECT registration_id FROM registration.registrations
        WHERE program_id = $2 AND partner_id = $3 AND external_ref = $4 AND registration_id <> $1
          AND status IN ('pending','pending_review','info_requested','approved','waitlisted','under_review')
        LIMIT 1
    ), projected AS (
        {_INSERT} SELECT $1, $2, $3, $4, $5, $6, $7::jsonb WHERE NOT EXISTS (SELECT FROM live) {_ON_CONFLICT}
    )
    SELECT registration_id FROM live
"""


async def project_claiming_ref(conn: asyncpg.Connection, r: Registration) -> None:
    """Write a submission's read model, refusing it when another live registration of the partner
    uses its external_ref.

    The rule binds the partner's submissions, under a lock on the reference so that concurrent ones
    see each other. A status decided later is always recorded, even one that makes a registration
    live again (an appeal granted) after the partner reused its reference.
    """
    await conn.execute(_LOCK_REF, r.program_id, r.partner_id, r.external_ref)
    # the check and the read model in one statement, taken after the lock: it sees every earlier holder's commit
    existing = await conn.fetchval(_PROJECT_UNLESS_REF_LIVE, *_projection(r))
    if existing is not None:
        raise DuplicateExternalRef(r.external_ref, existing)


async def project(conn: asyncpg.Connection, r: Registration) -> None:
    await conn.execute(_UPSERT, *_projection(r))


def _projection(r: Registration) -> tuple:
    return (r.id, r.program_id, r.partner_id, r.external_ref, r.status, r.version, encode(resource(r)).decode())


def _occurred(event: msgspec.Struct):
    for name in (
        "submitted_at",
        "amended_at",
        "withdrawn_at",
        "requested_at",
        "reported_at",
        "appealed_at",
        "decided_at",
    ):
        value = getattr(event, name, None)
        if value is not None:
            return value
    raise ValueError(f"{type(event).__name__} has no time")


__all__ = ["STORE", "ConcurrencyError", "fold", "load", "load_events", "project", "save", "stream_of"]
