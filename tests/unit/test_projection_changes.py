"""Every change an event can make to the conflict projections is carried out by both the live
projector (in SQL) and the replay (in memory): neither can learn a change the other does not know."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect

import pytest

from contracts.conflict_events import OwnershipChanged, RegistrationStatusChanged
from services.conflict import projection_changes, projector, replay_state, timer_changes
from services.conflict.domain.policy import DEFAULT_POLICY

pytestmark = pytest.mark.unit
T = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
CHANGES = [
    cls
    for module in (projection_changes, timer_changes)
    for cls in vars(module).values()
    if dataclasses.is_dataclass(cls) and cls.__module__ == module.__name__
]


def test_there_are_changes_to_check():
    assert len(CHANGES) >= 15


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: c.__name__)
def test_both_the_live_projector_and_the_replay_carry_it_out(change):
    assert change in replay_state._APPLY
    assert f"case {change.__name__}():" in inspect.getsource(projector._carry_out)


def test_the_expiry_warning_rounds_as_postgresql_does():
    granted = OwnershipChanged(claim_id="c", program_id="p", valid_from=T, valid_until=T + dt.timedelta(days=1), at=T)
    expiry, warning = timer_changes.ExpiryTimersSet(granted).timers(1 / 3)
    assert (
        expiry.due_at == T + dt.timedelta(days=1) and expiry.timer_id == f"expiry:c:{granted.valid_until.isoformat()}"
    )
    # make_interval(secs => 86400 * (1/3)) is 28800 s exactly after rint() of the microseconds
    assert warning.due_at == T + dt.timedelta(days=1) - dt.timedelta(seconds=28800)
    assert timer_changes.ExpiryTimersSet(granted).timers(1) == [expiry]  # the warning would not be ahead


def test_a_status_change_says_who_decided_only_when_it_decides():
    def changes(status: str, reason: str | None = None):
        e = RegistrationStatusChanged(
            registration_id="r", program_id="p", partner_id="x", status=status, reason=reason, decided_at=T
        )
        return projection_changes.changes_of(f"registration.{status}", e)

    assert changes("approved", "authority_decision")[0].decided_by == "conflict"
    assert changes("rejected", "first_to_register")[0].decided_by == "rule"
    assert changes("under_review")[0].decided_by is None
    assert changes("appeal_refused") == []
    review = changes("pending_review")[1]
    assert review.timer(DEFAULT_POLICY).due_at == T + dt.timedelta(hours=DEFAULT_POLICY.review.sla_hours)
