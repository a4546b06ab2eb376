"""Vendor review with a moved clock: reviewers' actions and the review SLA (pure; no database)."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.conflict.domain.effects import status_event
from services.conflict.domain.policy import DEFAULT_POLICY, Policy, protection_window
from services.conflict.domain.review import NotAwaitingReview, ReviewInvalid, breach, review
from tests.unit.dispute_world import T0, World, claim

pytestmark = pytest.mark.unit
HOUR = dt.timedelta(hours=1)
ON = msgspec.structs.replace(DEFAULT_POLICY, review=msgspec.structs.replace(DEFAULT_POLICY.review, enabled=True))


def waiting(status: str = "pending_review", since: dt.datetime = T0):
    return claim("r", status=status, decided_at=since)


def names(emits) -> list[str]:
    return [e.name for e in emits]


def test_approve_grants_the_tiers_window_with_review_approved():
    emits = review(waiting(), "approve", ON, 3, T0 + HOUR, actor="cm-anna")
    assert names(emits) == ["registration.approved", "ownership.granted"]
    status = emits[0].event
    assert (status.reason, status.rule, status.policy_version, status.decided_by) == (
        "review_approved",
        "review",
        3,
        "cm-anna",
    )
    assert status.protected_until == T0 + HOUR + protection_window(ON, "gold")


@pytest.mark.parametrize(
    ("reason", "expected"), [(None, "review_rejected"), ("insufficient_information", "insufficient_information")]
)
def test_reject_records_its_reason(reason, expected):
    emits = review(waiting("info_requested"), "reject", ON, 0, T0 + HOUR, actor="cm", reason=reason)
    assert names(emits) == ["registration.rejected"] and emits[0].event.reason == expected


def test_request_info_carries_the_comment_the_partner_sees():
    emits = review(waiting(), "request_info", ON, 0, T0 + HOUR, actor="cm", comment="Which sites?")
    assert names(emits) == ["registration.info_requested"] and emits[0].event.comment == "Which sites?"


@pytest.mark.parametrize("status", ["approved", "rejected", "pending", "under_review", "waitlisted"])
def test_only_a_registration_awaiting_review_can_be_reviewed(status):
    with pytest.raises(NotAwaitingReview) as err:
        review(waiting(status), "approve", ON, 0, T0, actor="cm")
    assert err.value.status == status


@pytest.mark.parametrize(
    ("action", "reason", "comment", "field"),
    [
        ("request_info", None, None, "comment"),
        ("request_info", None, "   ", "comment"),
        ("approve", "review_rejected", None, "reason"),
        ("reject", "sla_default", None, "reason"),
        ("escalate", None, None, "action"),
    ],
)
def test_malformed_review_requests_name_their_field(action, reason, comment, field):
    with pytest.raises(ReviewInvalid) as err:
        review(waiting(), action, ON, 0, T0, actor="cm", reason=reason, comment=comment)
    assert [f for f, _ in err.value.errors] == [field]


@pytest.mark.parametrize(
    ("on_breach", "expected"),
    [("approve", ["registration.approved", "ownership.granted"]), ("reject", ["registration.rejected"])],
)
def test_the_sla_passing_unanswered_applies_on_breach(on_breach, expected):
    p = msgspec.structs.replace(ON, review=msgspec.structs.replace(ON.review, on_breach=on_breach))
    assert breach(waiting(), p, 0, T0 + 47 * HOUR) == []
    emits = breach(waiting(), p, 0, T0 + 48 * HOUR)
    assert names(emits) == expected
    assert emits[0].event.reason == {"approve": "review_deemed_approved", "reject": "review_rejected"}[on_breach]
    assert emits[0].event.decided_at == T0 + 48 * HOUR


def test_the_sla_pauses_while_info_is_requested_and_restarts_on_the_answer():
    assert breach(waiting("info_requested"), ON, 0, T0 + 100 * HOUR) == []
    answered = waiting(since=T0 + 30 * HOUR)  # back in review after the partner amended
    assert breach(answered, ON, 0, T0 + 48 * HOUR) == []  # the first period's timer is stale
    assert names(breach(answered, ON, 0, T0 + 78 * HOUR))[0] == "registration.approved"


def test_a_decided_registration_ignores_its_review_timer():
    assert breach(waiting("approved"), ON, 0, T0 + 48 * HOUR) == []


STEPS = st.lists(
    st.tuples(
        st.sampled_from(["request_info", "answer", "approve", "reject", "tick"]), st.floats(min_value=0, max_value=60)
    ),
    max_size=20,
)


def drive(steps, p: Policy = ON) -> World:
    """A reviewer, a partner and the review timers acting on one registration, the clock moving."""
    w = World.of(waiting())
    timers, now = [T0 + 48 * HOUR], T0
    for action, hours in steps:
        now += dt.timedelta(hours=hours)
        for due in sorted(t for t in timers if t <= now):
            timers.remove(due)
            w.apply(breach(w.claims["r"], p, 0, due))
        c = w.claims["r"]
        if action == "answer" and c.status == "info_requested":
            w.apply([status_event(c, "pending_review", None, now, rule="review")])  # as an amendment does
            timers.append(now + 48 * HOUR)
        elif action in ("request_info", "approve", "reject"):
            try:
                w.apply(review(c, action, p, 0, now, actor="cm", comment="more?"))
            except NotAwaitingReview:
                pass
    return w


@settings(max_examples=200, deadline=None)
@given(STEPS)
def test_a_registration_is_decided_at_most_once_and_replays_the_same(steps):
    w = drive(steps)
    decided = [e for e in w.log if e.name in ("registration.approved", "registration.rejected")]
    assert len(decided) <= 1
    assert w.log == drive(steps).log


@settings(max_examples=200, deadline=None)
@given(STEPS)
def test_a_deemed_decision_comes_only_after_a_full_sla_of_waiting_for_the_vendor(steps):
    w = drive(steps)
    entered, status = T0, "pending_review"
    for e in w.log:
        if getattr(e.event, "decided_by", None) == "scheduler":
            assert status == "pending_review" and e.event.decided_at - entered >= 48 * HOUR
            assert e.event.reason == "review_deemed_approved"
        if e.name.startswith("registration."):
            status = e.event.status
            entered = e.event.decided_at if status == "pending_review" else entered
