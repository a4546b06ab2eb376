"""Statuses decided by the conflict service flow back onto each registration's own stream."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
import msgspec

from contracts.conflict_events import RegistrationStatusChanged
from contracts.envelope import CloudEvent
from contracts.registration_events import StatusRecorded
from services.eventlog.consumer import Delivered, PoisonMessage
from services.eventlog.events import Metadata, RecordedEvent
from services.eventlog.store import PreparedAppend
from services.ids import derived_id
from services.registration import repository
from services.registration.domain.model import Registration

CONSUMER = "registration-status"
FILTER_SUBJECT = "dealreg.conflict.*.registration.*"
# A status reaches the registration's stream (and the partner's view of it) up to this much later,
# in batches several times larger under load: less of the cores taken from the submissions in
# flight. CRMs are not delayed: they read the conflict service's decisions themselves.
LINGER_S = 0.05
_NAMESPACE = uuid.UUID("5b1f4c1e-3f7e-4b3e-9c55-8d1f0b6a2e10")


async def record_status(conn: asyncpg.Connection, ce: CloudEvent, data: msgspec.Struct) -> None:
    """Apply one `registration.<status>` CloudEvent (called inside the consumer's transaction)."""
    if not isinstance(data, RegistrationStatusChanged):
        return
    known = _Known.of(await repository.load_events(conn, data.registration_id))
    if (prepared := known.recording(ce, data)) is not None:
        await repository.save_prepared(conn, [prepared])


async def record_statuses(conn: asyncpg.Connection, batch: list[Delivered]) -> None:
    """Apply a batch of them in order, as `record_status` one after the other, in two round trips:
    the registrations' streams read in one query, the appends pipelined."""
    changes = [d for d in batch if isinstance(d.data, RegistrationStatusChanged)]
    if not changes:
        return
    streams = await repository.load_events_many(conn, {d.data.registration_id for d in changes})
    known = {i: _Known.of(events) for i, events in streams.items()}
    appends: list[PreparedAppend] = []
    for d in changes:
        with d.handling():
            registration = known.setdefault(d.data.registration_id, _Known(None, set()))
            if (prepared := registration.recording(d.ce, d.data)) is not None:
                appends.append(prepared)
    await repository.save_prepared(conn, appends)


@dataclass(slots=True)
class _Known:
    """A registration as its stream holds it, and the ids of the stream's events."""

    state: Registration | None
    event_ids: set[str]

    @classmethod
    def of(cls, events: list[tuple[RecordedEvent, msgspec.Struct]]) -> _Known:
        return cls(repository.fold(events), {str(e.event_id) for e, _ in events})

    def recording(self, ce: CloudEvent, data: RegistrationStatusChanged) -> PreparedAppend | None:
        """The status's append, the registration moved past it; None when the stream holds it
        already (its id derives from the source event, so even a replay outside this consumer
        records it once)."""
        state = self.state
        if state is None or state.program_id != data.program_id:
            raise PoisonMessage(f"no registration {data.registration_id} in program {data.program_id}")
        event_id = derived_id(_NAMESPACE, ce.id, ce.id)
        if str(event_id) in self.event_ids:
            return None
        event = StatusRecorded(
            registration_id=data.registration_id,
            program_id=data.program_id,
            partner_id=state.partner_id,
            status=data.status,
            status_reason=data.reason,
            rule=data.rule,
            policy_version=data.policy_version,
            protected_until=data.protected_until,
            attribution_percent=data.attribution_percent,
            conflict_id=data.conflict_id,
            comment=data.comment,
            source_event_id=ce.id,
            decided_at=data.decided_at,
        )
        meta = Metadata(causation_id=ce.id, actor=data.decided_by or "conflict-service", traceparent=ce.traceparent)
        self.state, prepared = repository.prepare_save(
            state, "registration.status_recorded", event, meta, event_id=event_id
        )
        self.event_ids.add(str(event_id))
        return prepared
