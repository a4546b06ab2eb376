"""The commonest decisions' projection changes in one statement instead of one statement each.

A claim approved by the rules changes its row twice (status, then protection), cancels its review
timer and schedules its expiry timers: four round trips, most of a decision's. Carried out together
they give the same rows: the two updates of the claim become one (the protection's end is the
later value), and the timer rows they delete and insert are different ones (review_sla against
expiry and expiring). A waitlisting or a rejection (status, review timer) is fused the same way, and
the expiry timers alone are one statement too.
Any other sequence of changes is carried out one statement per change by the projector.
"""

from __future__ import annotations

from typing import Any

from services.conflict.projection_changes import ProtectionGranted, StatusDecided
from services.conflict.timer_changes import ExpiryTimersSet, TimersCancelled
from services.conflict.timers import EXPIRY, expiry_args, expiry_statement

_CLAIM = """
    claim AS (
        UPDATE conflict.claims SET status = $2, protected_until = $3, attribution_percent = $4,
            conflict_id = coalesce($5, conflict_id), decided_at = $6, policy_version = $7,
            decided_by = coalesce($8, decided_by), approved_at = coalesce($9, approved_at)
        WHERE claim_id = $1
    ), review AS (
        DELETE FROM conflict.timers WHERE ref_id = $1 AND kind = 'review_sla'
    )"""
_DECIDED = f"WITH {_CLAIM} SELECT 1"
_GRANTED = expiry_statement(10, prefix=f"WITH {_CLAIM}, ")


def fused(changes: list[Any]) -> tuple[str, tuple] | None:
    """(statement, arguments) carrying out `changes` at once, or None when they are not a decision
    this module knows."""
    match changes:
        case [StatusDecided() as s, TimersCancelled(kind="review_sla") as t] if t.ref_id == s.claim_id:
            return _DECIDED, _claim_args(s, s.protected_until, None)
        case [
            StatusDecided() as s,
            TimersCancelled(kind="review_sla") as t,
            ProtectionGranted() as g,
            ExpiryTimersSet() as x,
        ] if t.ref_id == s.claim_id == g.claim_id == x.ownership.claim_id and g.approved_at is not None:
            return _GRANTED, (*_claim_args(s, g.protected_until, g.approved_at), *expiry_args(x.ownership))
        case [ExpiryTimersSet() as x]:  # an approval of a claim written later (`submission_runs`)
            return EXPIRY, expiry_args(x.ownership)
    return None


def _claim_args(s: StatusDecided, protected_until, approved_at) -> tuple:
    return (
        s.claim_id,
        s.status,
        protected_until,
        s.attribution_percent,
        s.conflict_id,
        s.decided_at,
        s.policy_version,
        s.decided_by,
        approved_at,
    )
