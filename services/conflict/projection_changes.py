"""What each of the conflict service's own events changes in its projections (pure).

This is the one place that says what an event means for `conflict.claims`, `conflict.conflicts`,
`conflict.policies` and `conflict.timers` (whose changes are in `timer_changes`). The live projector
(`projector.py`) carries the changes out statement by statement; a replay (`replay_state.py`)
carries them out in memory and writes the end state once. Both read the same changes, so they
cannot disagree on what an event does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import msgspec

from contracts.conflict_events import (
    ConflictEscalated,
    ConflictOpened,
    ConflictReopened,
    ConflictResolved,
    DirectDealReleased,
    OwnershipChanged,
    PolicyPublished,
    RegistrationStatusChanged,
    SlaBreached,
)
from services.conflict.timer_changes import ExpiryTimersSet, ReviewTimerSet, TimerCleared, TimersCancelled, TimerSet

_FINAL_BY_CONFLICT = {"authority_decision", "sla_default"}
_DECIDING_STATUSES = {"approved", "waitlisted", "rejected"}
_NOT_PROJECTED = {"appeal_refused", "extension_denied"}  # the claim itself stays as it was


@dataclass(frozen=True, slots=True)
class StatusDecided:
    """A claim's status and what came with it; `conflict_id` / `decided_by` None keep the old value."""

    claim_id: str
    status: str
    protected_until: dt.datetime | None
    attribution_percent: int | None
    conflict_id: str | None
    decided_at: dt.datetime
    policy_version: int
    decided_by: str | None


@dataclass(frozen=True, slots=True)
class AppealCounted:
    claim_id: str


@dataclass(frozen=True, slots=True)
class ClaimStatusSet:
    claim_id: str
    status: str


@dataclass(frozen=True, slots=True)
class ProtectionGranted:
    claim_id: str
    approved_at: dt.datetime
    protected_until: dt.datetime | None


@dataclass(frozen=True, slots=True)
class ProtectionExtended:
    """A new end of protection, and one more extension counted."""

    claim_id: str
    protected_until: dt.datetime | None


@dataclass(frozen=True, slots=True)
class ConflictRecorded:
    """A new conflict (ignored when one with its id exists), escalated at level 1; `doc` is JSON."""

    conflict_id: str
    program_id: str
    policy_version: int
    opened_at: dt.datetime
    doc: str


@dataclass(frozen=True, slots=True)
class ClaimsJoined:
    """The claims of a conflict point at it."""

    claim_ids: tuple[str, ...]
    conflict_id: str


@dataclass(frozen=True, slots=True)
class ConflictEscalation:
    conflict_id: str
    level: int
    authority_role: str
    due_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ConflictDecision:
    """The conflict is resolved: its document gains `decision` (JSON) and it has no due time."""

    conflict_id: str
    decision: str


@dataclass(frozen=True, slots=True)
class DecisionLevelRecorded:
    """The conflict's claims settled by this decision (their `decided_at` is its time) record its level."""

    conflict_id: str
    level: int
    resolved_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ConflictReopening:
    """An appeal reopens the conflict at `level`: the decision moves into a new `appeals` entry."""

    conflict_id: str
    level: int
    appeal: str


@dataclass(frozen=True, slots=True)
class PolicyRecorded:
    """A published policy version (ignored when the program has that version)."""

    event: PolicyPublished


def changes_of(name: str, e: msgspec.Struct) -> list[Any]:
    """The projection changes of the conflict event `name`, in the order they are applied."""
    match e:
        case RegistrationStatusChanged():
            return _status(e)
        case OwnershipChanged():
            return _ownership(name, e)
        case ConflictOpened():
            doc = msgspec.json.encode(e).decode()
            return [
                ConflictRecorded(e.conflict_id, e.program_id, e.policy_version, e.opened_at, doc),
                ClaimsJoined(tuple(c.claim_id for c in e.claims), e.conflict_id),
            ]
        case ConflictEscalated():
            return [
                ConflictEscalation(e.conflict_id, e.level, e.authority_role, e.due_at),
                TimerSet(
                    f"sla:{e.conflict_id}:{e.level}", e.program_id, "sla", e.conflict_id, e.due_at, {"level": e.level}
                ),
            ]
        case ConflictResolved():
            return [
                ConflictDecision(e.conflict_id, msgspec.json.encode(e).decode()),
                TimersCancelled(e.conflict_id, "sla"),
                # an appeal then reopens the conflict above the level that decided
                DecisionLevelRecorded(e.conflict_id, e.level, e.resolved_at),
            ]
        case ConflictReopened():
            return [ConflictReopening(e.conflict_id, e.level, msgspec.json.encode(e).decode())]
        case SlaBreached():
            return [TimerCleared(f"sla:{e.conflict_id}:{e.level}")] if e.conflict_id is not None else []
        case PolicyPublished():
            return [PolicyRecorded(e)]
        case DirectDealReleased():
            return [ClaimStatusSet(e.direct_deal_id, "released")]
    return []  # direct_deal.recorded: the claim row is written by whoever has the identity


def _status(e: RegistrationStatusChanged) -> list[Any]:
    if e.status in _NOT_PROJECTED:
        return []
    decided_by = ("conflict" if e.reason in _FINAL_BY_CONFLICT else "rule") if e.status in _DECIDING_STATUSES else None
    out: list[Any] = [
        StatusDecided(
            e.registration_id,
            e.status,
            e.protected_until,
            e.attribution_percent,
            e.conflict_id,
            e.decided_at,
            e.policy_version,
            decided_by,
        )
    ]
    if e.status == "under_review" and e.rule == "appeal":  # an accepted appeal
        out.append(AppealCounted(e.registration_id))
    if e.status == "pending_review":
        out.append(ReviewTimerSet(e.registration_id, e.program_id, e.policy_version, e.decided_at))
    elif e.status != "info_requested":
        out.append(TimersCancelled(e.registration_id, "review_sla"))
    return out


def _ownership(name: str, e: OwnershipChanged) -> list[Any]:
    expiry = [ExpiryTimersSet(e)] if e.valid_until is not None else []
    if name == "ownership.granted":
        return [ProtectionGranted(e.claim_id, e.valid_from, e.valid_until), *expiry]
    if name == "ownership.extended":
        return [ProtectionExtended(e.claim_id, e.valid_until), *_cancel_expiry(e.claim_id), *expiry]
    if name == "ownership.released":
        return _cancel_expiry(e.claim_id)
    return []


def _cancel_expiry(claim_id: str) -> list[Any]:
    return [TimersCancelled(claim_id, "expiry"), TimersCancelled(claim_id, "expiring")]
