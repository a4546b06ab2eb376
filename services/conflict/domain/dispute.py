"""A conflict's state, folded from its own stream (`conflict-<id>`), pure.

It opens escalated to level 1, climbs a level on each `sla.breached` + `conflict.escalated`, is
`resolved` by a decision, and is escalated again when an appeal reopens it (`conflict.reopened`).
Folding the same events always gives the same state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, replace

import msgspec

from contracts.common import ClaimRef
from contracts.conflict_events import (
    ConflictEscalated,
    ConflictOpened,
    ConflictReopened,
    ConflictResolved,
    SlaBreached,
)


@dataclass(frozen=True, slots=True)
class Dispute:
    """A conflict as its own events leave it."""

    conflict_id: str
    program_id: str
    policy_version: int
    cause: str
    claims: tuple[ClaimRef, ...]
    opened_at: dt.datetime
    state: str = "escalated"  # "escalated" | "resolved"
    level: int = 1
    authority_role: str | None = None
    due_at: dt.datetime | None = None
    decided_level: int | None = None
    decision: ConflictResolved | None = None
    resolutions: int = 0
    reopenings: int = 0
    breaches: int = 0

    @property
    def claim_ids(self) -> tuple[str, ...]:
        return tuple(c.claim_id for c in self.claims)


def evolve(state: Dispute | None, e: msgspec.Struct) -> Dispute | None:
    """The dispute after one of its events (events about something else leave it as it is)."""
    match e:
        case ConflictOpened():
            return Dispute(
                conflict_id=e.conflict_id,
                program_id=e.program_id,
                policy_version=e.policy_version,
                cause=e.cause,
                claims=tuple(e.claims),
                opened_at=e.opened_at,
            )
        case _ if state is None:
            return None
        case ConflictEscalated():
            return replace(state, state="escalated", level=e.level, authority_role=e.authority_role, due_at=e.due_at)
        case SlaBreached():
            return replace(state, breaches=state.breaches + 1)
        case ConflictResolved():
            return replace(
                state,
                state="resolved",
                due_at=None,
                decided_level=e.level,
                decision=e,
                resolutions=state.resolutions + 1,
            )
        case ConflictReopened():
            return replace(state, state="escalated", level=e.level, due_at=None, reopenings=state.reopenings + 1)
    return state


def fold(events: Iterable[msgspec.Struct]) -> Dispute | None:
    """The dispute from its stream, oldest first; None before `conflict.opened`."""
    state: Dispute | None = None
    for e in events:
        state = evolve(state, e)
    return state
