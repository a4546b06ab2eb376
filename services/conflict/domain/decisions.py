"""Decisions in a conflict (SPEC section 8), by an authority or by `on_final_breach`, pure.

`award` approves the winner and rejects the others; `split` approves every claim with a share,
recording `attribution_percent`, under one joint window (the longest tier window among them, from the
decision); `reject_all` rejects every claim. Only claims still in contention are touched: on a
reopened conflict, claimants that lost earlier and did not appeal keep their decision.

A registration that already holds the customer (the holder in an appeal) keeps its ownership until
this decision: awarded, it keeps its window; in a split, its grant is replaced by the joint one;
losing, it is rejected and its ownership released.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from contracts.common import Share
from contracts.conflict_events import ConflictResolved
from services.conflict.domain.claims import Claim
from services.conflict.domain.dispute import Dispute
from services.conflict.domain.effects import Emit, approval, conflict_stream, status_event
from services.conflict.domain.errors import DomainError
from services.conflict.domain.ownership import release
from services.conflict.domain.policy import Policy, final_level, protection_window

OUTCOMES = ("award", "split", "reject_all")
_RULE = {"authority_decision": "authority", "sla_default": "on_final_breach"}


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: str  # award | split | reject_all
    winner: str | None = None
    shares: tuple[tuple[str, int], ...] = ()  # (claim_id, percent)
    rationale: str = ""


class AlreadyResolved(DomainError):
    """The conflict is resolved: nothing is left to decide until an appeal reopens it."""


class BelowLevel(DomainError):
    """The authority's level is below the conflict's current level."""


class DecisionInvalid(DomainError):
    """A decision that names the wrong claims or shares; `errors` holds (field, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors


def contending(c: Claim) -> bool:
    """Still in contention: an open direct deal, or a live registration (approved or waiting)."""
    if c.is_direct:
        return c.status == "open"
    return c.status in ("approved", "under_review", "pending", "pending_review", "info_requested")


def decision_errors(d: Dispute, claims: list[Claim], decision: Decision) -> list[tuple[str, str]]:
    """Field errors of `decision` against the conflict's claims (empty when it can be applied)."""
    by_id = {c.claim_id: c for c in claims if c.claim_id in d.claim_ids}
    errors: list[tuple[str, str]] = []

    def party(field: str, claim_id: str) -> Claim | None:
        c = by_id.get(claim_id)
        if c is None:
            errors.append((field, f"{claim_id} is not a claimant of this conflict"))
        elif not contending(c):
            errors.append((field, f"{claim_id} is no longer in contention ({c.status})"))
        else:
            return c
        return None

    if not decision.rationale.strip():
        errors.append(("rationale", "must say why"))
    if decision.outcome == "award":
        if decision.winner is None:
            errors.append(("winner", "an award needs a winner"))
        else:
            party("winner", decision.winner)
    elif decision.winner is not None:
        errors.append(("winner", "only an award names a winner"))
    if decision.outcome == "split":
        errors += _share_errors(decision.shares, party)
    elif decision.shares:
        errors.append(("shares", "only a split takes shares"))
    if decision.outcome not in OUTCOMES:
        errors.append(("outcome", f"must be one of {', '.join(OUTCOMES)}"))
    return errors


def _share_errors(shares: tuple[tuple[str, int], ...], party) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    if not shares:
        return [("shares", "a split needs shares")]
    seen: set[str] = set()
    for i, (claim_id, percent) in enumerate(shares):
        c = party(f"shares[{i}].claim_id", claim_id)
        if c is not None and c.is_direct:
            errors.append((f"shares[{i}].claim_id", "a direct deal takes no share"))
        if claim_id in seen:
            errors.append((f"shares[{i}].claim_id", f"{claim_id} has more than one share"))
        seen.add(claim_id)
        if not 1 <= percent <= 100:
            errors.append((f"shares[{i}].percent", "must be an integer from 1 to 100"))
    total = sum(p for _, p in shares)
    if total != 100:
        errors.append(("shares", f"percentages must sum to 100, not {total}"))
    return errors


def decide(
    d: Dispute,
    claims: list[Claim],
    decision: Decision,
    policy: Policy,
    now: dt.datetime,
    *,
    actor: str,
    authority_level: int | None,
) -> list[Emit]:
    """An authority's decision (`authority_level` None: an admin), checked, as the events it causes.

    The decision is recorded at the higher of the conflict's level and the authority's (capped at the
    last level), so an appeal goes above whoever actually decided.
    """
    if d.state == "resolved":
        raise AlreadyResolved(f"conflict {d.conflict_id} is resolved")
    if authority_level is not None and authority_level < d.level:
        raise BelowLevel(f"conflict {d.conflict_id} is at level {d.level}, above level {authority_level}")
    errors = decision_errors(d, claims, decision)
    if errors:
        raise DecisionInvalid(errors)
    level = d.level if authority_level is None else max(d.level, min(authority_level, final_level(policy)))
    return resolve(d, claims, decision, policy, now, actor=actor, reason="authority_decision", level=level)


def resolve(
    d: Dispute,
    claims: list[Claim],
    decision: Decision,
    policy: Policy,
    now: dt.datetime,
    *,
    actor: str,
    reason: str,
    level: int,
) -> list[Emit]:
    """Every event of a (valid) decision: the claims' statuses and ownership, then `conflict.resolved`."""
    parties = sorted(
        (c for c in claims if c.claim_id in d.claim_ids and contending(c)), key=lambda c: (c.submitted_at, c.seq)
    )
    shares = dict(decision.shares)
    until = None
    if decision.outcome == "split":
        until = now + max(protection_window(policy, c.tier) for c in parties if c.claim_id in shares)
    out: list[Emit] = []
    for c in parties:
        if c.is_direct:
            continue  # the vendor's own deal stays as its owner left it
        if decision.outcome == "award" and c.claim_id == decision.winner:
            out += _approve(d, c, policy, now, reason, actor, None, None)
        elif decision.outcome == "split" and c.claim_id in shares:
            out += _approve(d, c, policy, now, reason, actor, shares[c.claim_id], until)
        else:
            out.append(
                status_event(
                    c,
                    "rejected",
                    reason,
                    now,
                    rule=_RULE[reason],
                    version=d.policy_version,
                    conflict_id=d.conflict_id,
                    decided_by=actor,
                )
            )
            out += release(c, reason, now)
    out.append(
        Emit(
            conflict_stream(d.conflict_id),
            "conflict.resolved",
            ConflictResolved(
                conflict_id=d.conflict_id,
                program_id=d.program_id,
                outcome=decision.outcome,
                winner=decision.winner,
                shares=[Share(claim_id=k, percent=v) for k, v in decision.shares],
                rationale=decision.rationale,
                reason=reason,
                level=level,
                decided_by=actor,
                resolved_at=now,
            ),
        )
    )
    return out


def _approve(
    d: Dispute,
    c: Claim,
    policy: Policy,
    now: dt.datetime,
    reason: str,
    actor: str,
    attribution: int | None,
    until: dt.datetime | None,
) -> list[Emit]:
    rule, version = _RULE[reason], d.policy_version
    if c.status == "approved":
        if attribution is None and c.attribution_percent is None:  # the holder keeps its window as it is
            return [
                status_event(
                    c,
                    "approved",
                    reason,
                    now,
                    rule=rule,
                    version=version,
                    protected_until=c.protected_until,
                    conflict_id=d.conflict_id,
                    decided_by=actor,
                )
            ]
        # its grant changes (a share, or a whole award after a split): the old one ends now
        out = release(c, reason, now)
        return out + approval(
            c,
            reason,
            rule,
            policy,
            version,
            now,
            attribution=attribution,
            until=until or c.protected_until,
            conflict_id=d.conflict_id,
            decided_by=actor,
        )
    return approval(
        c,
        reason,
        rule,
        policy,
        version,
        now,
        attribution=attribution,
        until=until,
        conflict_id=d.conflict_id,
        decided_by=actor,
    )
