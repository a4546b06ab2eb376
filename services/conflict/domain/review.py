"""Vendor review of uncontested registrations (SPEC section 8, "Review"), pure.

A registration that no rule rejects and that collides with nothing, and that is not auto-approvable,
waits in `pending_review` for a level-1 authority, who approves it, rejects it or asks the partner for
more information. `review.sla_hours` unanswered applies `on_breach`.

The review SLA measures how long the *vendor* keeps a partner waiting. It runs while the registration
is `pending_review` and pauses while it is `info_requested` (the ball is in the partner's court);
when the partner answers, the registration is `pending_review` again and a full SLA starts over from
that moment. A timer scheduled for an earlier waiting period therefore does nothing.
"""

from __future__ import annotations

import datetime as dt

from services.conflict.domain.claims import Claim
from services.conflict.domain.effects import Emit, approval, status_event
from services.conflict.domain.errors import DomainError
from services.conflict.domain.policy import Policy, review_sla

AWAITING_REVIEW = frozenset({"pending_review", "info_requested"})
ACTIONS = ("approve", "reject", "request_info")
REJECT_REASONS = ("review_rejected", "insufficient_information")


class NotAwaitingReview(DomainError):
    """The registration is not waiting for a reviewer (any more)."""

    def __init__(self, registration_id: str, status: str) -> None:
        super().__init__(f"registration {registration_id} is {status}, not awaiting review")
        self.status = status


class ReviewInvalid(DomainError):
    """A review request that cannot be applied as given; `errors` holds (field, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors


def review_errors(action: str, reason: str | None, comment: str | None) -> list[tuple[str, str]]:
    """Field errors of a review request (empty when it is well formed)."""
    errors: list[tuple[str, str]] = []
    if action not in ACTIONS:
        errors.append(("action", f"must be one of {', '.join(ACTIONS)}"))
    if reason is not None and action != "reject":
        errors.append(("reason", "only a rejection takes a reason"))
    if reason is not None and action == "reject" and reason not in REJECT_REASONS:
        errors.append(("reason", f"must be one of {', '.join(REJECT_REASONS)}"))
    if action == "request_info" and not (comment or "").strip():
        errors.append(("comment", "an information request needs a comment the partner can answer"))
    return errors


def review(
    claim: Claim,
    action: str,
    policy: Policy,
    version: int,
    now: dt.datetime,
    *,
    actor: str,
    reason: str | None = None,
    comment: str | None = None,
) -> list[Emit]:
    """A reviewer's action on a registration awaiting review, as the events it causes.

    approve: `registration.approved` (`review_approved`) and `ownership.granted`;
    reject: `registration.rejected` with `reason` (default `review_rejected`);
    request_info: `registration.info_requested` carrying `comment`, which the partner sees.
    """
    if claim.is_direct or claim.status not in AWAITING_REVIEW:
        raise NotAwaitingReview(claim.claim_id, claim.status)
    errors = review_errors(action, reason, comment)
    if errors:
        raise ReviewInvalid(errors)
    if action == "approve":
        return approval(claim, "review_approved", "review", policy, version, now, decided_by=actor)
    if action == "reject":
        return [
            status_event(
                claim,
                "rejected",
                reason or "review_rejected",
                now,
                rule="review",
                version=version,
                comment=comment,
                decided_by=actor,
            )
        ]
    return [
        status_event(
            claim, "info_requested", None, now, rule="review", version=version, comment=comment, decided_by=actor
        )
    ]


def sla_lapsed(claim: Claim, policy: Policy, now: dt.datetime) -> bool:
    """Whether the registration has waited in `pending_review` for a full review SLA at `now`.

    `decided_at` is when it (last) entered `pending_review`; an answered info request moves it.
    """
    if claim.status != "pending_review" or claim.decided_at is None:
        return False
    return claim.decided_at + review_sla(policy) <= now


def breach(claim: Claim, policy: Policy, version: int, now: dt.datetime) -> list[Emit]:
    """The review SLA passed unanswered: `on_breach` decides. Nothing when the timer is stale."""
    if claim.is_direct or not sla_lapsed(claim, policy, now):
        return []
    if policy.review.on_breach == "approve":
        return approval(claim, "review_deemed_approved", "review", policy, version, now, decided_by="scheduler")
    return [
        status_event(claim, "rejected", "review_rejected", now, rule="review", version=version, decided_by="scheduler")
    ]
