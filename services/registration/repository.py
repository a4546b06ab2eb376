"""Registrations on the event log: load by folding the stream, save by appending and projecting."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import asyncpg
import msgspec

from contracts.envelope import decode_data, encode
from contracts.registration_events import RegistrationSubmitted
from services.eventlog.events import NO_STREAM, ConcurrencyError, Metadata, NewEvent, RecordedEvent
from services.eventlog.group_commit import GroupAppender
from services.eventlog.store import EventStore, PreparedAppend
from services.registration.domain.errors import DuplicateExternalRef
from services.registration.domain.model import Registration, evolve, started
from services.registration.views import resource
from services.telemetry import span

# A status the conflict service decided is recorded on the registration's stream (its history, the
# partner's view, the checks of later commands) but not published again: the conflict service has
# published it (`registration.<status>` on DEALREG_CONFLICT), which is where CRMs read decisions.
STORE = EventStore("registration", unpublished=frozenset({"registration.status_recorded"}))
SUBMISSIONS = "submissions"  # the runtime's GroupAppender of submissions, in `Runtime.extras`


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


async def load_events_many(
    conn: asyncpg.Connection, registration_ids: Iterable[str]
) -> dict[str, list[tuple[RecordedEvent, msgspec.Struct]]]:
    """`load_events` of several registrations in one query (one with no events is left out)."""
    ids = set(registration_ids)
    streams = await STORE.read_streams(conn, [stream_of(i) for i in ids])
    return {
        i: [(e, decode_data("registration", e.event_type, e.data.encode())) for e in events]
        for i in ids
        if (events := streams.get(stream_of(i)))
    }


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
    # the event, its outbox row and the read model in one statement, atomic on its own; a submission's
    # is refused when another live registration of the partner uses its external_ref
    record = _RECORD_SUBMISSION if before is None else _RECORD_REGISTRATION
    with _refusals(after):
        await STORE.append(
            conn,
            stream_of(after.id),
            before.version if before else 0,
            [_new_event(after, event_name, event, event_id)],
            program_id=after.program_id,
            metadata=metadata,
            also=(record, _projection(after)),
        )
    return after


async def submit(appender: GroupAppender, event: RegistrationSubmitted, metadata: Metadata) -> Registration:
    """Record a submission outside any transaction, committed with the others in flight (group
    commit); as `save`, and refused with PartnerChanged when the partner's tier or type is no
    longer the one the event states (it may come from a cache)."""
    after = started(event)
    with _refusals(after):
        await appender.append(
            stream_of(after.id),
            NO_STREAM,
            [_new_event(after, "registration.submitted", event)],
            program_id=after.program_id,
            metadata=metadata,
            also=(_RECORD_SUBMISSION_OF, (*_projection(after), event.partner_tier, event.partner_type)),
        )
    return after


def prepare_save(
    before: Registration, event_name: str, event: msgspec.Struct, metadata: Metadata, event_id: Any = None
) -> tuple[Registration, PreparedAppend]:
    """The state after `event` and its append, as `save` makes it, to run later with others in one
    round trip (`save_prepared`)."""
    after = evolve(before, event)
    stream = stream_of(after.id)
    with span("eventlog.append", schema=STORE.schema, stream=stream, count=1):
        prepared = STORE.prepare(
            stream,
            before.version,
            [_new_event(after, event_name, event, event_id)],
            program_id=after.program_id,
            metadata=metadata,
            also=(_RECORD_REGISTRATION, _projection(after)),
        )
    return after, prepared


async def save_prepared(conn: asyncpg.Connection, appends: Sequence[PreparedAppend]) -> None:
    """Run prepared saves in order, pipelined, inside the caller's transaction."""
    await STORE.append_pipelined(conn, appends)


def _new_event(after: Registration, event_name: str, event: msgspec.Struct, event_id: Any = None) -> NewEvent:
    new = NewEvent(event_type=event_name, data=encode(event), subject=after.id, occurred_at=_occurred(event))
    return new if event_id is None else replace(new, event_id=event_id)


@contextlib.contextmanager
def _refusals(after: Registration) -> Iterator[None]:
    """The read model's refusals as domain errors."""
    try:
        yield
    except asyncpg.PostgresError as e:
        code = getattr(e, "sqlstate", None)
        if code == _REF_IN_USE:
            raise DuplicateExternalRef(after.external_ref or "", e.detail) from e
        if code == _PARTNER_CHANGED:
            raise PartnerChanged(after.program_id, after.partner_id) from e
        raise


class PartnerChanged(Exception):
    """The partner's tier or type is not the one the submission states: read it again, submit anew."""

    def __init__(self, program_id: str, partner_id: str) -> None:
        super().__init__(f"partner {partner_id!r} of program {program_id!r} changed")
        self.program_id = program_id
        self.partner_id = partner_id


# migration 0009: the read model of a submission, or _REF_IN_USE raised with the holder's id
_RECORD_SUBMISSION = "registration.record_submission({0}, {1}, {2}, {3}, {4}, {5}, {6}::jsonb)"
# migration 0011: the same, after checking the partner's tier and type ({7}, {8}), or _PARTNER_CHANGED
_RECORD_SUBMISSION_OF = "registration.record_submission_of({0}, {1}, {2}, {3}, {4}, {5}, {6}::jsonb, {7}, {8})"
# migration 0009: the read model of a registration's later event
_RECORD_REGISTRATION = "registration.record_registration({0}, {1}, {2}, {3}, {4}, {5}, {6}::jsonb)"
_REF_IN_USE = "DR409"
_PARTNER_CHANGED = "DR412"


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


__all__ = [
    "STORE",
    "ConcurrencyError",
    "PartnerChanged",
    "fold",
    "load",
    "load_events",
    "load_events_many",
    "prepare_save",
    "save",
    "save_prepared",
    "stream_of",
    "submit",
]
