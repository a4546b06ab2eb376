"""Registrations on the event log: load by folding the stream, save by appending and projecting."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from contracts.envelope import decode_data, encode
from contracts.registration_events import RegistrationSubmitted
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
    # the event, its outbox row and the read model in one statement, atomic on its own; a submission's
    # is refused when another live registration of the partner uses its external_ref
    record = _RECORD_SUBMISSION if before is None else _RECORD_REGISTRATION
    try:
        await STORE.append(
            conn,
            stream_of(after.id),
            before.version if before else 0,
            [new],
            program_id=after.program_id,
            metadata=metadata,
            also=(record, _projection(after)),
        )
    except asyncpg.PostgresError as e:
        if getattr(e, "sqlstate", None) == _REF_IN_USE:
            raise DuplicateExternalRef(after.external_ref or "", e.detail) from e
        raise
    return after


# migration 0009: the read model of a submission, or _REF_IN_USE raised with the holder's id
_RECORD_SUBMISSION = "registration.record_submission({0}, {1}, {2}, {3}, {4}, {5}, {6}::jsonb)"
# migration 0009: the read model of a registration's later event
_RECORD_REGISTRATION = "registration.record_registration({0}, {1}, {2}, {3}, {4}, {5}, {6}::jsonb)"
_REF_IN_USE = "DR409"


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


__all__ = ["STORE", "ConcurrencyError", "fold", "load", "load_events", "save", "stream_of"]
