"""Appeals (SPEC section 8, "Appeal"), pure.

A partner whose registration was rejected or waitlisted by a rule or a decision may appeal within
`appeal.window_days` of that decision, at most `appeal.max_appeals` times per registration, under the
policy version that decision recorded.

- A rule's decision: a conflict opens between the appellant and the claims that beat it (an approved
  holder, or the vendor's direct deal), escalated to level 1. A reviewer's rejection was a level-1
  decision, so its appeal opens at level 2 with the appellant alone.
- A conflict's decision: the conflict reopens one level above the level that decided
  (`conflict.reopened` + `conflict.escalated`). If an earlier appeal has already reopened it, the
  appellant joins it where it stands.

The appellant goes `under_review` (with rule `appeal`, which is what counts an appeal); a holder stays
`approved` and keeps its ownership until the new decision. Refusals are `registration.appeal_refused`
with `not_appealable` (eligibility, a closed opportunity, or nothing above the deciding level),
`appeal_limit_reached` or `appeal_window_closed`, checked in that order.
"""

from __future__ import annotations

import datetime as dt

from contracts.common import RuleVerdict
from contracts.conflict_events import ConflictReopened
from services.conflict.domain.claims import Claim, Rival
from services.conflict.domain.dispute import Dispute
from services.conflict.domain.effects import Emit, conflict_stream, open_conflict, status_event
from services.conflict.domain.escalation import escalated
from services.conflict.domain.policy import Policy, appeal_window, final_level
from services.conflict.domain.rules import Judgement

APPEALABLE = frozenset({"rejected", "waitlisted"})
# eligibility is a fact about the deal, not a contest; a closed opportunity has nothing left to win
UNAPPEALABLE_RULES = frozenset({"eligibility", "ownership"})


def refusal(claim: Claim, reason: str, version: int, now: dt.datetime) -> list[Emit]:
    return [status_event(claim, "appeal_refused", reason, now, rule="appeal", version=version)]


def appeal(
    claim: Claim,
    decided_rule: str | None,
    policy: Policy,
    now: dt.datetime,
    *,
    cause_id: str,
    beaten_by: tuple[Rival, ...] = (),
    dispute: Dispute | None = None,
    reason: str | None = None,
) -> list[Emit]:
    """The events an appeal of `claim`'s last decision causes: accepted, or refused with its reason.

    `decided_rule` is the rule its last decision recorded; `policy` the version that decision used
    (`claim.policy_version`); `beaten_by` the live claims that beat it (for a rule's decision);
    `dispute` the conflict that decided it (for a conflict's decision).
    """
    version = claim.policy_version
    by_conflict = claim.decided_by == "conflict"
    level = _level(claim, decided_rule, dispute) if by_conflict or decided_rule == "review" else 1
    if (
        claim.is_direct
        or claim.status not in APPEALABLE
        or claim.decided_at is None
        or decided_rule in UNAPPEALABLE_RULES
        or (by_conflict and dispute is None)
        or level > final_level(policy)
    ):
        return refusal(claim, "not_appealable", version, now)
    if claim.appeals >= policy.appeal.max_appeals:
        return refusal(claim, "appeal_limit_reached", version, now)
    if now > claim.decided_at + appeal_window(policy):
        return refusal(claim, "appeal_window_closed", version, now)
    if by_conflict:
        assert dispute is not None
        return _reopen(claim, dispute, level, policy, now, reason)
    return _open(claim, decided_rule, beaten_by, policy, now, cause_id, level)


def _level(claim: Claim, decided_rule: str | None, dispute: Dispute | None) -> int:
    """The level the appeal goes to: one above the level that decided."""
    if claim.decided_by != "conflict":
        return 2  # a reviewer decides at level 1
    if dispute is not None and dispute.state == "escalated":
        return dispute.level  # already reopened: join it where it stands
    return max(claim.decided_level or 1, (dispute.decided_level or 1) if dispute else 1) + 1


def _under_review(claim: Claim, conflict_id: str, version: int, now: dt.datetime) -> Emit:
    return status_event(claim, "under_review", None, now, rule="appeal", version=version, conflict_id=conflict_id)


def _reopen(claim: Claim, d: Dispute, level: int, policy: Policy, now: dt.datetime, reason: str | None) -> list[Emit]:
    if d.state == "escalated":
        return [_under_review(claim, d.conflict_id, d.policy_version, now)]
    return [
        Emit(
            conflict_stream(d.conflict_id),
            "conflict.reopened",
            ConflictReopened(
                conflict_id=d.conflict_id,
                program_id=d.program_id,
                appealed_registration_id=claim.claim_id,
                reason=reason,
                level=level,
                reopened_at=now,
            ),
        ),
        escalated(d, level, policy, now),
        _under_review(claim, d.conflict_id, d.policy_version, now),
    ]


def _open(
    claim: Claim,
    decided_rule: str | None,
    beaten_by: tuple[Rival, ...],
    policy: Policy,
    now: dt.datetime,
    cause_id: str,
    level: int,
) -> list[Emit]:
    judgement = Judgement(
        trail=(
            RuleVerdict(
                rule="appeal",
                verdict="decided",
                detail=f"appeal of a {claim.status} decision by {decided_rule or 'a rule'}",
            ),
        ),
        evidence=tuple(r.evidence for r in beaten_by),
    )
    claims = (claim, *(r.claim for r in beaten_by))
    emits = open_conflict(claims, judgement, policy, claim.policy_version, now, cause_id, cause="appeal", level=level)
    opened = emits[0].event.conflict_id
    # open_conflict puts every waiting claim under review; here only the appellant waits, and its
    # status records the appeal
    kept = [e for e in emits if e.name != "registration.under_review"]
    return [*kept, _under_review(claim, opened, claim.policy_version, now)]
