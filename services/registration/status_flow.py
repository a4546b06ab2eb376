"""Statuses decided by the conflict service flow back onto each registration's own stream."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec

from contracts.conflict_events import RegistrationStatusChanged
from contracts.envelope import CloudEvent
from contracts.registration_events import StatusRecorded
from services.eventlog.consumer import PoisonMessage
from services.eventlog.events import Metadata
from services.registration import repository

CONSUMER = "registration-status"
FILTER_SUBJECT = "dealreg.conflict.*.registration.*"
_NAMESPACE = uuid.UUID("5b1f4c1e-3f7e-4b3e-9c55-8d1f0b6a2e10")


async def record_status(conn: asyncpg.Connection, ce: CloudEvent, data: msgspec.Struct) -> None:
    """Apply one `registration.<status>` CloudEvent (called inside the consumer's transaction)."""
    if not isinstance(data, RegistrationStatusChanged):
        return
    state = await repository.load(conn, data.registration_id)
    if state is None or state.program_id != data.program_id:
        raise PoisonMessage(f"no registration {data.registration_id} in program {data.program_id}")
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
    # the id derives from the source event, so even a replay outside this consumer records it once
    await repository.save(
        conn, state, "registration.status_recorded", event, meta, event_id=uuid.uuid5(_NAMESPACE, ce.id)
    )
