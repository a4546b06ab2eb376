"""Judgements become the conflict service's events (pure): statuses, ownership, conflicts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import msgspec

from contracts.common import ClaimRef
from contracts.conflict_events import (
    ConflictEscalated,
    ConflictOpened,
    OwnershipChanged,
    RegistrationStatusChanged,
)
from services.conflict.domain.claims import Claim, derived_id
from services.conflict.domain.policy import Policy, escalation_level, protection_window, sla_for_level
from services.conflict.domain.rules import Judgement


@dataclass(frozen=True, slots=True)
class Emit:
    """One event to append: to the claim's stream (`claim-<id>`) or the conflict's (`conflict-<id>`)."""

    stream: str
    name: str
    event: msgspec.Struct


def claim_stream(claim_id: str) -> str:
    return f"claim-{claim_id}"


def conflict_stream(conflict_id: str) -> str:
    return f"conflict-{conflict_id}"


def status_event(
    claim: Claim,
    status: str,
    reason: str | None,
    now: dt.datetime,
    *,
    rule: str | None = None,
    version: int = 0,
    protected_until: dt.datetime | None = None,
    attribution: int | None = None,
    conflict_id: str | None = None,
    comment: str | None = None,
    decided_by: str | None = None,
) -> Emit:
    return Emit(
        claim_stream(claim.claim_id),
        f"registration.{status}",
        RegistrationStatusChanged(
            registration_id=claim.claim_id,
            program_id=claim.program_id,
            partner_id=claim.partner_id or "",
            status=status,
            reason=reason,
            rule=rule,
            policy_version=version,
            protected_until=protected_until,
            attribution_percent=attribution,
            conflict_id=conflict_id,
            comment=comment,
            decided_by=decided_by,
            decided_at=now,
        ),
    )


def ownership_event(
    name: str,
    claim: Claim,
    now: dt.datetime,
    valid_from: dt.datetime,
    until: dt.datetime | None,
    *,
    attribution: int | None = None,
    reason: str | None = None,
) -> Emit:
    return Emit(
        claim_stream(claim.claim_id),
        f"ownership.{name}",
        OwnershipChanged(
            claim_id=claim.claim_id,
            program_id=claim.program_id,
            kind=claim.kind,
            registration_id=None if claim.is_direct else claim.claim_id,
            partner_id=claim.partner_id,
            products=list(claim.products),
            valid_from=valid_from,
            valid_until=until,
            attribution_percent=attribution,
            reason=reason,
            at=now,
        ),
    )


def approval(
    claim: Claim,
    reason: str,
    rule: str | None,
    policy: Policy,
    version: int,
    now: dt.datetime,
    *,
    attribution: int | None = None,
    until: dt.datetime | None = None,
    conflict_id: str | None = None,
    decided_by: str | None = None,
) -> list[Emit]:
    until = until or now + protection_window(policy, claim.tier)
    return [
        status_event(
            claim,
            "approved",
            reason,
            now,
            rule=rule,
            version=version,
            protected_until=until,
            attribution=attribution,
            conflict_id=conflict_id,
            decided_by=decided_by,
        ),
        ownership_event("granted", claim, now, now, until, attribution=attribution, reason=reason),
    ]


def open_conflict(
    claims: tuple[Claim, ...],
    judgement: Judgement,
    policy: Policy,
    version: int,
    now: dt.datetime,
    cause_id: str,
    *,
    cause: str = "collision",
    level: int = 1,
) -> list[Emit]:
    """`conflict.opened` and its first `conflict.escalated`, committed together, and the claims under review."""
    conflict_id = derived_id("conflict", cause_id)
    stream = conflict_stream(conflict_id)
    step = escalation_level(policy, level)
    refs = [
        ClaimRef(
            claim_id=c.claim_id,
            kind=c.kind,
            submitted_at=c.submitted_at,
            partner_id=c.partner_id,
            registration_id=None if c.is_direct else c.claim_id,
            direct_deal_id=c.claim_id if c.is_direct else None,
        )
        for c in sorted(claims, key=lambda c: (c.submitted_at, c.seq))
    ]
    out = [
        Emit(
            stream,
            "conflict.opened",
            ConflictOpened(
                conflict_id=conflict_id,
                program_id=claims[0].program_id,
                claims=refs,
                evidence=list(judgement.evidence),
                rule_trail=list(judgement.trail),
                policy_version=version,
                cause=cause,
                opened_at=now,
            ),
        ),
        Emit(
            stream,
            "conflict.escalated",
            ConflictEscalated(
                conflict_id=conflict_id,
                program_id=claims[0].program_id,
                level=level,
                authority_role=step.role,
                due_at=now + sla_for_level(policy, level),
                escalated_at=now,
            ),
        ),
    ]
    for c in claims:
        if not c.is_direct and c.status != "approved":
            out.append(
                status_event(c, "under_review", None, now, rule="escalation", version=version, conflict_id=conflict_id)
            )
    return out


def effects_of(judgement: Judgement, policy: Policy, version: int, now: dt.datetime, cause_id: str) -> list[Emit]:
    """Every event a judgement causes, in a deterministic order."""
    out: list[Emit] = []
    new_until: dict[str, dt.datetime] = {}
    for o in judgement.outcomes:
        if o.status == "approved":
            emits = approval(o.claim, o.reason, o.rule, policy, version, now)
            new_until[o.claim.claim_id] = emits[0].event.protected_until
            out += emits
    for o in judgement.outcomes:
        if o.status == "approved":
            continue
        until = None
        if o.status == "waitlisted" and o.behind is not None:
            until = new_until.get(o.behind.claim_id, o.behind.protected_until)
        out.append(status_event(o.claim, o.status, o.reason, now, rule=o.rule, version=version, protected_until=until))
    if judgement.conflict_claims:
        out += open_conflict(judgement.conflict_claims, judgement, policy, version, now, cause_id)
    return out
