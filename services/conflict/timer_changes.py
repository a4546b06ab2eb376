"""The changes the conflict service's events make to its durable timers (pure).

`projection_changes` says which event makes which; the live projector carries them out through
`timers`, the replay in memory (`replay_tables.Timers`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from contracts.conflict_events import OwnershipChanged
from services.conflict.domain.policy import Policy, review_sla


@dataclass(frozen=True, slots=True)
class TimerSet:
    """A durable timer (ignored when one with its id exists)."""

    timer_id: str
    program_id: str
    kind: str
    ref_id: str
    due_at: dt.datetime
    payload: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ReviewTimerSet:
    """The review SLA of a registration, measured under the policy version that decided it."""

    registration_id: str
    program_id: str
    policy_version: int
    decided_at: dt.datetime

    def timer(self, policy: Policy) -> TimerSet:
        timer_id = f"review:{self.registration_id}:{self.decided_at.isoformat()}"
        due_at = self.decided_at + review_sla(policy)
        return TimerSet(timer_id, self.program_id, "review_sla", self.registration_id, due_at)


@dataclass(frozen=True, slots=True)
class ExpiryTimersSet:
    """Expiry at the end of protection, and the warning before it while that is still ahead."""

    ownership: OwnershipChanged

    def timers(self, warning_days: float) -> list[TimerSet]:
        """The timers under the latest policy's `expiry_warning_days`, computed the way PostgreSQL
        does in `timers.schedule_expiry` (float seconds rounded half-even to microseconds)."""
        e = self.ownership
        assert e.valid_until is not None
        until = e.valid_until.isoformat()
        out = [TimerSet(f"expiry:{e.claim_id}:{until}", e.program_id, "expiry", e.claim_id, e.valid_until)]
        warning_at = e.valid_until - dt.timedelta(microseconds=round(86400 * warning_days * 1_000_000.0))
        if warning_at > e.at:
            out.append(TimerSet(f"expiring:{e.claim_id}:{until}", e.program_id, "expiring", e.claim_id, warning_at))
        return out


@dataclass(frozen=True, slots=True)
class TimersCancelled:
    ref_id: str
    kind: str


@dataclass(frozen=True, slots=True)
class TimerCleared:
    timer_id: str
