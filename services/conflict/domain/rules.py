"""The program's rules, applied in the policy's order to one tie group (pure).

`judge` takes the situation read under the program's lock (the group being decided, the live claims
it collides with, closed claims on the same customer) and the policy in force, and returns a
`Judgement`: what happens to each claim and the trail of every rule evaluated, in order. It never
reads a clock: `now` is the time written in the event that caused the decision.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from contracts.common import Evidence, RuleVerdict
from services.conflict.domain.claims import Claim, Situation
from services.conflict.domain.policy import Policy, auto_approvable, eligibility, tie_window, tier_rank

_CONTENDING = ("pending", "pending_review", "info_requested", "under_review")


@dataclass(frozen=True, slots=True)
class Outcome:
    claim: Claim
    status: str  # approved | waitlisted | rejected | pending_review
    reason: str
    rule: str | None
    behind: Claim | None = None  # the claim a waitlisted one waits behind


@dataclass(frozen=True, slots=True)
class Judgement:
    outcomes: tuple[Outcome, ...] = ()
    trail: tuple[RuleVerdict, ...] = ()
    conflict_claims: tuple[Claim, ...] = ()  # non-empty: open one conflict for these
    evidence: tuple[Evidence, ...] = ()


@dataclass
class _Run:
    policy: Policy
    now: dt.datetime
    outcomes: list[Outcome] = field(default_factory=list)
    trail: list[RuleVerdict] = field(default_factory=list)


def judge(situation: Situation, policy: Policy, now: dt.datetime) -> Judgement:
    run = _Run(policy, now)
    group = [c for c in situation.group if _eligible(run, c)]
    if not group:
        return _done(run)
    rivals = [r.claim for r in situation.rivals if r.claim.live_at(now)]
    evidence = tuple(r.evidence for r in situation.rivals)
    if not rivals and len(group) == 1:
        run.trail.append(RuleVerdict(rule="collision", verdict="not_applicable", detail="no live claim collides"))
        run.outcomes.append(_first_approval(policy, group[0]))
        return _done(run)
    # claims already in a running dispute take part (a late-comer loses to them under first_to_register)
    # but are left to their conflict's decision
    contenders = [c for c in rivals if not c.is_direct and c.status in _CONTENDING]
    holders = [c for c in rivals if c.holds_at(now)]
    directs = [c for c in rivals if c.is_direct]
    for rule in policy.rules:
        if not group:
            break
        name = str(rule)
        if name == "direct_sales_priority":
            group = _direct_sales(run, group, directs)
        elif name == "active_protection":
            if holders:
                holder = max(holders, key=lambda h: h.protected_until or now)
                for c in group:
                    run.outcomes.append(Outcome(c, "waitlisted", "protected_by_other_claim", name, behind=holder))
                run.trail.append(RuleVerdict(rule=name, verdict="decided", detail="the customer is protected"))
                group = []
            else:
                run.trail.append(RuleVerdict(rule=name, verdict="no_separation", detail="no approved claim holds it"))
        else:
            winner = _separate(name, group + contenders, situation.history, policy)
            if winner is None:
                run.trail.append(RuleVerdict(rule=name, verdict="no_separation"))
                continue
            reason = {"incumbent_on_renewal": "incumbent_partner"}.get(name, name)
            run.trail.append(RuleVerdict(rule=name, verdict="decided", winner=winner.claim_id))
            _award(run, winner, group, contenders, reason, name)
            group = []
    if group:
        members = tuple(group) + tuple(c for c in contenders if c.conflict_id is None)
        run.trail.append(RuleVerdict(rule="escalation", verdict="decided", detail="no rule separates the claims"))
        return Judgement(tuple(run.outcomes), tuple(run.trail), members, evidence)
    return _done(run, evidence)


def _done(run: _Run, evidence: tuple[Evidence, ...] = ()) -> Judgement:
    return Judgement(tuple(run.outcomes), tuple(run.trail), (), evidence)


def _eligible(run: _Run, c: Claim) -> bool:
    if c.is_direct or c.amount is None or c.currency is None:
        return True
    reason = eligibility(run.policy, list(c.products), c.amount, c.currency)
    if reason is None:
        return True
    run.outcomes.append(Outcome(c, "rejected", reason, "eligibility"))
    run.trail.append(RuleVerdict(rule="eligibility", verdict="decided", detail=reason))
    return False


def _first_approval(policy: Policy, c: Claim) -> Outcome:
    if policy.review.enabled and not auto_approvable(policy, c.tier, c.amount or 0, c.currency or ""):
        return Outcome(c, "pending_review", "no_collision", "review")
    return Outcome(c, "approved", "no_collision", None)


def _direct_sales(run: _Run, group: list[Claim], directs: list[Claim]) -> list[Claim]:
    left = []
    for c in group:
        earlier = [d for d in directs if d.submitted_at < c.submitted_at]
        if earlier:
            run.outcomes.append(Outcome(c, "rejected", "direct_sales_engaged", "direct_sales_priority"))
        else:
            left.append(c)
    verdict = "decided" if len(left) < len(group) else ("no_separation" if directs else "not_applicable")
    run.trail.append(RuleVerdict(rule="direct_sales_priority", verdict=verdict))
    return left


def _separate(rule: str, contenders: list[Claim], history: tuple[Claim, ...], policy: Policy) -> Claim | None:
    """The single claim `rule` puts ahead of every other, or None when it does not separate them.

    Incumbency must hold on its own (a renewal by the last winner); the other rules let a lone
    registration through (its only rivals are direct deals that did not beat it). Claims already in a
    conflict are compared with but not separated from each other: the first to register is the
    earliest claim if it precedes every claim not yet in a conflict by more than the tie window.
    """
    if rule == "incumbent_on_renewal":
        if not any(c.deal_type == "renewal" for c in contenders):
            return None
        winners = {c.partner_id for c in _last_deal_won(history)}
        incumbents = [c for c in contenders if c.partner_id in winners]
        return incumbents[0] if len(incumbents) == 1 else None
    if len(contenders) == 1:
        return contenders[0]
    if rule == "first_to_register":
        ordered = sorted(contenders, key=lambda c: (c.submitted_at, c.seq))
        undecided = [c for c in ordered[1:] if c.conflict_id is None]
        if not undecided:
            return None
        gap = undecided[0].submitted_at - ordered[0].submitted_at
        window = tie_window(policy)
        return ordered[0] if (gap > window if window else gap > dt.timedelta(0)) else None
    if rule == "tier_precedence":
        ranked = sorted(contenders, key=lambda c: tier_rank(policy, c.tier))
        return ranked[0] if tier_rank(policy, ranked[0].tier) < tier_rank(policy, ranked[1].tier) else None
    return None


def _last_deal_won(history: tuple[Claim, ...]) -> list[Claim]:
    """Per partner, its last closed deal with this customer, kept when that deal was won."""
    last: dict[str | None, Claim] = {}
    for c in sorted(history, key=lambda c: (c.decided_at or c.submitted_at, c.seq)):
        if c.status in ("won", "lost"):
            last[c.partner_id] = c
    return [c for c in last.values() if c.status == "won"]


def _award(run: _Run, winner: Claim, group: list[Claim], contenders: list[Claim], reason: str, rule: str) -> None:
    if winner in group:
        run.outcomes.append(Outcome(winner, "approved", reason, rule))
    for c in group + [c for c in contenders if c.conflict_id is None]:
        if c is not winner and c.claim_id != winner.claim_id:
            run.outcomes.append(Outcome(c, "waitlisted", reason, rule, behind=winner))
