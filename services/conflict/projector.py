"""Applies the conflict service's own events to its projections and timers (also used by replay)."""

from __future__ import annotations

import asyncpg
import msgspec

from contracts.conflict_events import (
    ConflictEscalated,
    ConflictOpened,
    ConflictReopened,
    ConflictResolved,
    DirectDealRecorded,
    DirectDealReleased,
    OwnershipChanged,
    PolicyPublished,
    RegistrationStatusChanged,
    SlaBreached,
)
from services.conflict import policy_store, timers
from services.conflict.domain.policy import review_sla

_FINAL_BY_CONFLICT = {"authority_decision", "sla_default"}


async def apply(conn: asyncpg.Connection, name: str, e: msgspec.Struct) -> None:
    match e:
        case RegistrationStatusChanged():
            await _status(conn, name, e)
        case OwnershipChanged():
            await _ownership(conn, name, e)
        case ConflictOpened():
            await conn.execute(
                "INSERT INTO conflict.conflicts (conflict_id, program_id, state, level, policy_version, opened_at, doc)"
                " VALUES ($1, $2, 'escalated', 1, $3, $4, $5::jsonb) ON CONFLICT DO NOTHING",
                e.conflict_id,
                e.program_id,
                e.policy_version,
                e.opened_at,
                msgspec.json.encode(e).decode(),
            )
            await conn.execute(
                "UPDATE conflict.claims SET conflict_id = $2 WHERE claim_id = ANY($1::text[])",
                [c.claim_id for c in e.claims],
                e.conflict_id,
            )
        case ConflictEscalated():
            await conn.execute(
                "UPDATE conflict.conflicts SET state = 'escalated', level = $2, authority_role = $3, due_at = $4"
                " WHERE conflict_id = $1",
                e.conflict_id,
                e.level,
                e.authority_role,
                e.due_at,
            )
            await timers.schedule(
                conn, f"sla:{e.conflict_id}:{e.level}", e.program_id, "sla", e.conflict_id, e.due_at, {"level": e.level}
            )
        case ConflictResolved():
            await conn.execute(
                "UPDATE conflict.conflicts SET state = 'resolved', due_at = NULL,"
                " doc = doc || jsonb_build_object('decision', $2::jsonb) WHERE conflict_id = $1",
                e.conflict_id,
                msgspec.json.encode(e).decode(),
            )
            await timers.cancel(conn, e.conflict_id, "sla")
            # the claims this decision settled (its status events carry its time) record its level,
            # so that an appeal reopens the conflict above it
            await conn.execute(
                "UPDATE conflict.claims SET decided_level = $2, decided_by = 'conflict'"
                " WHERE conflict_id = $1 AND decided_at = $3",
                e.conflict_id,
                e.level,
                e.resolved_at,
            )
        case ConflictReopened():
            await conn.execute(
                # the decision under appeal moves into the appeal's entry: the conflict is open again
                "UPDATE conflict.conflicts SET state = 'escalated', level = $2,"
                " doc = jsonb_set(doc - 'decision', '{appeals}', coalesce(doc->'appeals', '[]'::jsonb)"
                "   || jsonb_build_array($3::jsonb || jsonb_build_object('previous_decision', doc->'decision')))"
                " WHERE conflict_id = $1",
                e.conflict_id,
                e.level,
                msgspec.json.encode(e).decode(),
            )
        case SlaBreached():
            if e.conflict_id is not None:
                await conn.execute("DELETE FROM conflict.timers WHERE timer_id = $1", f"sla:{e.conflict_id}:{e.level}")
        case PolicyPublished():
            await policy_store.project(conn, e)
        case DirectDealRecorded():
            pass  # the claim row is written by the direct-deal handler, which has the identity
        case DirectDealReleased():
            await conn.execute("UPDATE conflict.claims SET status = 'released' WHERE claim_id = $1", e.direct_deal_id)


async def _status(conn: asyncpg.Connection, name: str, e: RegistrationStatusChanged) -> None:
    if e.status in ("appeal_refused", "extension_denied"):
        return
    decided_by = "conflict" if e.reason in _FINAL_BY_CONFLICT else "rule"
    await conn.execute(
        """
        UPDATE conflict.claims SET status = $2, protected_until = $3, attribution_percent = $4,
            conflict_id = coalesce($5, conflict_id), decided_at = $6, policy_version = $7,
            decided_by = CASE WHEN $2 IN ('approved', 'waitlisted', 'rejected') THEN $8 ELSE decided_by END
        WHERE claim_id = $1
        """,
        e.registration_id,
        e.status,
        e.protected_until,
        e.attribution_percent,
        e.conflict_id,
        e.decided_at,
        e.policy_version,
        decided_by,
    )
    if e.status == "under_review" and e.rule == "appeal":  # an accepted appeal
        await conn.execute("UPDATE conflict.claims SET appeals = appeals + 1 WHERE claim_id = $1", e.registration_id)
    if e.status == "pending_review":
        policy = await policy_store.by_version(conn, e.program_id, e.policy_version)
        await timers.schedule(
            conn,
            f"review:{e.registration_id}:{e.decided_at.isoformat()}",
            e.program_id,
            "review_sla",
            e.registration_id,
            e.decided_at + review_sla(policy),
        )
    elif e.status != "info_requested":
        await timers.cancel(conn, e.registration_id, "review_sla")


async def _ownership(conn: asyncpg.Connection, name: str, e: OwnershipChanged) -> None:
    if name == "ownership.granted":
        await conn.execute(
            "UPDATE conflict.claims SET approved_at = $2, protected_until = $3 WHERE claim_id = $1",
            e.claim_id,
            e.valid_from,
            e.valid_until,
        )
        await timers.schedule_expiry(conn, e)
    elif name == "ownership.extended":
        await conn.execute(
            "UPDATE conflict.claims SET protected_until = $2, extensions = extensions + 1 WHERE claim_id = $1",
            e.claim_id,
            e.valid_until,
        )
        await timers.cancel(conn, e.claim_id, "expiry")
        await timers.cancel(conn, e.claim_id, "expiring")
        await timers.schedule_expiry(conn, e)
    elif name == "ownership.released":
        await timers.cancel(conn, e.claim_id, "expiry")
        await timers.cancel(conn, e.claim_id, "expiring")
