"""A dispute's climb up the escalation chain on a clock (SPEC section 8), pure.

Each level's authority has `sla_hours` from the moment the conflict reaches it. When a level's
`due_at` passes unanswered, the conflict records `sla.breached` and escalates to the next level, due
one SLA of that level after the breach; after the last level, `on_final_breach` decides with reason
`sla_default`. Nothing here reads a clock: a breach happens at the due time written in the log, so a
timer that fires late, or a replay, decides the same.
"""

from __future__ import annotations

import datetime as dt

from contracts.conflict_events import ConflictEscalated, SlaBreached
from services.conflict.domain.claims import Claim
from services.conflict.domain.decisions import Decision, contending, resolve
from services.conflict.domain.dispute import Dispute
from services.conflict.domain.effects import Emit, conflict_stream
from services.conflict.domain.policy import Policy, escalation_level, final_level, sla_for_level, tier_rank


def escalated(d: Dispute, level: int, policy: Policy, now: dt.datetime) -> Emit:
    """`conflict.escalated` to `level`, due one SLA of that level after `now`."""
    return Emit(
        conflict_stream(d.conflict_id),
        "conflict.escalated",
        ConflictEscalated(
            conflict_id=d.conflict_id,
            program_id=d.program_id,
            level=level,
            authority_role=escalation_level(policy, level).role,
            due_at=now + sla_for_level(policy, level),
            escalated_at=now,
        ),
    )


def sla_due(d: Dispute, level: int, now: dt.datetime) -> bool:
    """Whether the deadline of `level` has passed unanswered at `now` (else the timer is stale)."""
    return d.state == "escalated" and d.level == level and d.due_at is not None and d.due_at <= now


def breach(d: Dispute, level: int, claims: list[Claim], policy: Policy, now: dt.datetime) -> list[Emit]:
    """The SLA of `level` passed: `sla.breached`, then the next level, or after the last level the
    `on_final_breach` default (reason `sla_default`). `claims` are the conflict's claims as they are
    now; `policy` is the version the conflict opened with. Nothing when the timer is stale."""
    if not sla_due(d, level, now):
        return []
    due = d.due_at
    assert due is not None
    out = [
        Emit(
            conflict_stream(d.conflict_id),
            "sla.breached",
            SlaBreached(
                program_id=d.program_id,
                conflict_id=d.conflict_id,
                level=level,
                due_at=due,
                breached_at=due,
            ),
        )
    ]
    if level < final_level(policy):
        return [*out, escalated(d, level + 1, policy, due)]
    return out + resolve(
        d, claims, final_default(claims, policy), policy, due, actor="scheduler", reason="sla_default", level=level
    )


def final_default(claims: list[Claim], policy: Policy) -> Decision:
    """What `on_final_breach` decides among the claims still in contention.

    `first_to_register`: the earliest submission, exact ties by log position; `tier_precedence`: the
    highest tier, then the earliest; `reject_all`: nobody.
    """
    left = [c for c in claims if contending(c)]
    if policy.on_final_breach == "reject_all" or not left:
        return Decision("reject_all", rationale="the last escalation level's SLA passed: reject_all")
    if policy.on_final_breach == "tier_precedence":
        first = min(left, key=lambda c: (tier_rank(policy, c.tier), c.submitted_at, c.seq))
    else:
        first = min(left, key=lambda c: (c.submitted_at, c.seq))
    return Decision(
        "award", winner=first.claim_id, rationale=f"the last escalation level's SLA passed: {policy.on_final_breach}"
    )
