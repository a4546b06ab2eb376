"""Applies the conflict service's own events to its projections and timers, one statement per change.

What an event changes is decided once, in `projection_changes`; this module only carries each change
out in PostgreSQL (the replay carries the same changes out in memory, `replay_state`).
"""

from __future__ import annotations

import asyncpg
import msgspec

from services.conflict import policy_store, timers
from services.conflict.projection_changes import (
    AppealCounted,
    ClaimsJoined,
    ClaimStatusSet,
    ConflictDecision,
    ConflictEscalation,
    ConflictRecorded,
    ConflictReopening,
    DecisionLevelRecorded,
    PolicyRecorded,
    ProtectionExtended,
    ProtectionGranted,
    StatusDecided,
    changes_of,
)
from services.conflict.projector_fused import fused
from services.conflict.timer_changes import ExpiryTimersSet, ReviewTimerSet, TimerCleared, TimersCancelled, TimerSet


async def apply(conn: asyncpg.Connection, name: str, e: msgspec.Struct) -> None:
    """Apply the conflict event `name` to the projections (inside the caller's transaction)."""
    for change in changes_of(name, e):
        await _carry_out(conn, change)


async def apply_all(conn: asyncpg.Connection, events: list[tuple[str, msgspec.Struct]]) -> None:
    """Apply one decision's events: in one statement when `projector_fused` knows the decision."""
    await apply_changes(conn, [change for name, e in events for change in changes_of(name, e)])


async def apply_changes(conn: asyncpg.Connection, changes: list) -> None:
    """Carry out one decision's projection changes (`changes_of` its events)."""
    if (statement := fused(changes)) is not None:
        await conn.execute(statement[0], *statement[1])
        return
    for change in changes:
        await _carry_out(conn, change)


async def _carry_out(conn: asyncpg.Connection, c) -> None:
    match c:
        case StatusDecided():
            await conn.execute(
                """
                UPDATE conflict.claims SET status = $2, protected_until = $3, attribution_percent = $4,
                    conflict_id = coalesce($5, conflict_id), decided_at = $6, policy_version = $7,
                    decided_by = coalesce($8, decided_by)
                WHERE claim_id = $1
                """,
                c.claim_id,
                c.status,
                c.protected_until,
                c.attribution_percent,
                c.conflict_id,
                c.decided_at,
                c.policy_version,
                c.decided_by,
            )
        case AppealCounted():
            await conn.execute("UPDATE conflict.claims SET appeals = appeals + 1 WHERE claim_id = $1", c.claim_id)
        case ClaimStatusSet():
            await conn.execute("UPDATE conflict.claims SET status = $2 WHERE claim_id = $1", c.claim_id, c.status)
        case ProtectionGranted():
            await conn.execute(
                "UPDATE conflict.claims SET approved_at = $2, protected_until = $3 WHERE claim_id = $1",
                c.claim_id,
                c.approved_at,
                c.protected_until,
            )
        case ProtectionExtended():
            await conn.execute(
                "UPDATE conflict.claims SET protected_until = $2, extensions = extensions + 1 WHERE claim_id = $1",
                c.claim_id,
                c.protected_until,
            )
        case ConflictRecorded():
            await conn.execute(
                "INSERT INTO conflict.conflicts (conflict_id, program_id, state, level, policy_version, opened_at, doc)"
                " VALUES ($1, $2, 'escalated', 1, $3, $4, $5::jsonb) ON CONFLICT DO NOTHING",
                c.conflict_id,
                c.program_id,
                c.policy_version,
                c.opened_at,
                c.doc,
            )
        case ClaimsJoined():
            await conn.execute(
                "UPDATE conflict.claims SET conflict_id = $2 WHERE claim_id = ANY($1::text[])",
                list(c.claim_ids),
                c.conflict_id,
            )
        case ConflictEscalation():
            await conn.execute(
                "UPDATE conflict.conflicts SET state = 'escalated', level = $2, authority_role = $3, due_at = $4"
                " WHERE conflict_id = $1",
                c.conflict_id,
                c.level,
                c.authority_role,
                c.due_at,
            )
        case ConflictDecision():
            await conn.execute(
                "UPDATE conflict.conflicts SET state = 'resolved', due_at = NULL,"
                " doc = doc || jsonb_build_object('decision', $2::jsonb) WHERE conflict_id = $1",
                c.conflict_id,
                c.decision,
            )
        case DecisionLevelRecorded():
            await conn.execute(
                "UPDATE conflict.claims SET decided_level = $2, decided_by = 'conflict'"
                " WHERE conflict_id = $1 AND decided_at = $3",
                c.conflict_id,
                c.level,
                c.resolved_at,
            )
        case ConflictReopening():
            await conn.execute(
                "UPDATE conflict.conflicts SET state = 'escalated', level = $2,"
                " doc = jsonb_set(doc - 'decision', '{appeals}', coalesce(doc->'appeals', '[]'::jsonb)"
                "   || jsonb_build_array($3::jsonb || jsonb_build_object('previous_decision', doc->'decision')))"
                " WHERE conflict_id = $1",
                c.conflict_id,
                c.level,
                c.appeal,
            )
        case TimerSet():
            await timers.schedule(conn, c.timer_id, c.program_id, c.kind, c.ref_id, c.due_at, c.payload)
        case ReviewTimerSet():
            await _carry_out(conn, c.timer(await policy_store.by_version(conn, c.program_id, c.policy_version)))
        case ExpiryTimersSet():
            await timers.schedule_expiry(conn, c.ownership)
        case TimersCancelled():
            await timers.cancel(conn, c.ref_id, c.kind)
        case TimerCleared():
            await conn.execute("DELETE FROM conflict.timers WHERE timer_id = $1", c.timer_id)
        case PolicyRecorded():
            await policy_store.project(conn, c.event)
        case _:
            raise TypeError(f"no statement carries out {type(c).__name__}")
