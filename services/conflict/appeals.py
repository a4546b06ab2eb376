"""Appeals of decisions (SPEC section 8, "Appeal")."""

from __future__ import annotations

import asyncpg

from contracts.envelope import CloudEvent
from contracts.registration_events import RegistrationAppealed
from services.conflict import claims_repo, policy_store
from services.conflict.domain.effects import status_event
from services.conflict.recorder import record
from services.eventlog.events import Metadata


async def appealed(conn: asyncpg.Connection, ce: CloudEvent, e: RegistrationAppealed) -> None:
    claim = await claims_repo.load(conn, e.registration_id)
    if claim is None:
        return
    _, version = await policy_store.in_force(conn, claim.program_id)
    emits = [status_event(claim, "appeal_refused", "not_appealable", e.appealed_at, rule="appeal", version=version)]
    await record(conn, emits, cause_id=ce.id, now=e.appealed_at,
                 meta=Metadata(causation_id=ce.id, actor=e.appealed_by), program_id=claim.program_id)
