"""The dispute state machine with a moved clock: escalation on SLA breaches, the final default,
authorities' decisions, and appeals (pure; no database)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from itertools import pairwise

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.common import Evidence
from services.conflict.domain import appeal, decisions, escalation
from services.conflict.domain.claims import Rival
from services.conflict.domain.decisions import AlreadyResolved, BelowLevel, Decision, DecisionInvalid
from services.conflict.domain.dispute import fold
from services.conflict.domain.effects import open_conflict
from services.conflict.domain.policy import DEFAULT_POLICY, Policy, protection_window
from services.conflict.domain.rules import Judgement
from tests.unit.dispute_world import T0, World, claim

pytestmark = pytest.mark.unit
HOUR = dt.timedelta(hours=1)


def policy(**changes) -> Policy:
    return msgspec.structs.replace(DEFAULT_POLICY, **changes)


def opened(world: World, *ids: str, p: Policy = DEFAULT_POLICY, now: dt.datetime = T0, cause_id: str = "c1") -> str:
    emits = open_conflict(tuple(world.claims[i] for i in ids), Judgement(), p, 0, now, cause_id)
    world.apply(emits)
    return emits[0].event.conflict_id


def tick(world: World, conflict_id: str, p: Policy, now: dt.datetime) -> list:
    """What the scheduler does when the current level's timer is due at `now`."""
    d = world.dispute(conflict_id)
    return world.apply(escalation.breach(d, d.level, world.listed(), p, now))


def names(emits) -> list[str]:
    return [e.name for e in emits]


def test_a_conflict_opens_escalated_to_level_one_with_a_due_time():
    w = World.of(claim("a"), claim("b", seq=1))
    cid = opened(w, "a", "b")
    d = w.dispute(cid)
    assert (d.state, d.level, d.authority_role, d.due_at) == ("escalated", 1, "channel_manager", T0 + 48 * HOUR)
    assert {c.status for c in w.listed()} == {"under_review"}


def test_each_breach_climbs_a_level_due_one_sla_of_that_level_after_the_breach():
    w = World.of(claim("a"), claim("b", seq=1))
    cid = opened(w, "a", "b")
    assert tick(w, cid, DEFAULT_POLICY, T0 + 47 * HOUR) == []  # not yet due: nothing
    emits = tick(w, cid, DEFAULT_POLICY, T0 + 48 * HOUR)
    assert names(emits) == ["sla.breached", "conflict.escalated"]
    breached, up = emits[0].event, emits[1].event
    assert (breached.level, breached.due_at, breached.breached_at) == (1, T0 + 48 * HOUR, T0 + 48 * HOUR)
    assert (up.level, up.authority_role, up.due_at) == (2, "regional_director", T0 + (48 + 72) * HOUR)


def test_a_late_timer_breaches_at_the_due_time_written_in_the_log():
    w = World.of(claim("a"), claim("b", seq=1))
    cid = opened(w, "a", "b")
    d = w.dispute(cid)
    late = escalation.breach(d, 1, w.listed(), DEFAULT_POLICY, T0 + 100 * HOUR)
    assert late == escalation.breach(d, 1, w.listed(), DEFAULT_POLICY, T0 + 48 * HOUR)


def test_a_stale_timer_does_nothing():
    w = World.of(claim("a"), claim("b", seq=1))
    cid = opened(w, "a", "b")
    tick(w, cid, DEFAULT_POLICY, T0 + 48 * HOUR)
    assert escalation.breach(w.dispute(cid), 1, w.listed(), DEFAULT_POLICY, T0 + 500 * HOUR) == []


@pytest.mark.parametrize(("rule", "winner"), [("first_to_register", "a"), ("tier_precedence", "b")])
def test_after_the_last_level_on_final_breach_decides_with_sla_default(rule, winner):
    p = policy(on_final_breach=rule)
    w = World.of(claim("a", seq=1), claim("b", minutes=1, seq=2, tier="platinum"))
    cid = opened(w, "a", "b", p=p)
    now = T0
    for hours in (48, 72, 120):
        now += hours * HOUR
        emits = tick(w, cid, p, now)
    assert names(emits)[0] == "sla.breached" and names(emits)[-1] == "conflict.resolved"
    resolved = emits[-1].event
    assert (resolved.outcome, resolved.winner, resolved.reason, resolved.level) == ("award", winner, "sla_default", 3)
    assert resolved.resolved_at == now
    loser = "b" if winner == "a" else "a"
    assert (w.claims[winner].status, w.claims[winner].decided_by) == ("approved", "conflict")
    assert w.claims[loser].status == "rejected"
    assert w.claims[winner].decided_level == 3 and w.dispute(cid).state == "resolved"
    assert tick(w, cid, p, now + 1000 * HOUR) == []


def test_first_to_register_breaks_exact_ties_by_log_position():
    p = policy(escalation=[DEFAULT_POLICY.escalation[0]])
    w = World.of(claim("late-in-log", seq=9), claim("early-in-log", seq=3))
    cid = opened(w, "late-in-log", "early-in-log", p=p)
    emits = tick(w, cid, p, T0 + 48 * HOUR)
    assert emits[-1].event.winner == "early-in-log"


def test_reject_all_default_rejects_every_claim():
    p = policy(on_final_breach="reject_all", escalation=[DEFAULT_POLICY.escalation[0]])
    w = World.of(claim("a"), claim("b", seq=1))
    cid = opened(w, "a", "b", p=p)
    tick(w, cid, p, T0 + 48 * HOUR)
    assert {c.status for c in w.listed()} == {"rejected"}
    assert {e.event.reason for e in w.named("registration.rejected")} == {"sla_default"}


def decide(w: World, cid: str, decision: Decision, *, level: int | None = 1, now=T0 + HOUR, p=DEFAULT_POLICY):
    return w.apply(decisions.decide(w.dispute(cid), w.listed(), decision, p, now, actor="cm", authority_level=level))


def test_an_award_approves_the_winner_and_rejects_the_others():
    w = World.of(claim("a"), claim("b", seq=1), claim("c", seq=2))
    cid = opened(w, "a", "b", "c")
    emits = decide(w, cid, Decision("award", winner="b", rationale="met the CISO first"))
    assert names(emits) == [
        "registration.rejected",
        "registration.approved",
        "ownership.granted",
        "registration.rejected",
        "conflict.resolved",
    ]
    assert [w.claims[i].status for i in "abc"] == ["rejected", "approved", "rejected"]
    assert {e.event.reason for e in emits if e.name.startswith("registration.")} == {"authority_decision"}
    assert w.claims["b"].protected_until == T0 + HOUR + protection_window(DEFAULT_POLICY, "gold")
    resolved = emits[-1].event
    assert (resolved.decided_by, resolved.level, resolved.reason) == ("cm", 1, "authority_decision")


def test_a_split_approves_each_share_under_one_joint_window():
    w = World.of(claim("a", tier="platinum"), claim("b", seq=1), claim("c", seq=2))
    cid = opened(w, "a", "b", "c")
    decide(w, cid, Decision("split", shares=(("a", 60), ("b", 40)), rationale="joint bid"))
    a, b, c = (w.claims[i] for i in "abc")
    assert (a.status, a.attribution_percent, b.status, b.attribution_percent) == ("approved", 60, "approved", 40)
    assert a.protected_until == b.protected_until == T0 + HOUR + protection_window(DEFAULT_POLICY, "platinum")
    assert c.status == "rejected"


def test_a_direct_deal_winner_leaves_nothing_to_partners():
    w = World.of(
        claim("deal", kind="direct_deal", status="open"),
        claim("a", seq=1, status="approved", protected_until=T0 + 90 * 24 * HOUR),
    )
    cid = opened(w, "deal", "a")
    emits = decide(w, cid, Decision("award", winner="deal", rationale="our account"))
    assert names(emits) == ["registration.rejected", "ownership.released", "conflict.resolved"]


@pytest.mark.parametrize(
    ("decision", "fields"),
    [
        (Decision("award", rationale="x"), ["winner"]),
        (Decision("award", winner="zz", rationale="x"), ["winner"]),
        (Decision("split", shares=(("a", 50), ("b", 40)), rationale="x"), ["shares"]),
        (Decision("split", shares=(("a", 0), ("b", 100)), rationale="x"), ["shares[0].percent"]),
        (Decision("split", shares=(("a", 50), ("zz", 50)), rationale="x"), ["shares[1].claim_id"]),
        (Decision("split", shares=(("a", 50), ("a", 50)), rationale="x"), ["shares[1].claim_id"]),
        (Decision("split", rationale="x"), ["shares"]),
        (Decision("reject_all", winner="a", rationale="x"), ["winner"]),
        (Decision("reject_all", rationale="  "), ["rationale"]),
    ],
)
def test_invalid_decisions_name_their_fields(decision, fields):
    w = World.of(claim("a"), claim("b", seq=1), claim("outsider", seq=2))
    cid = opened(w, "a", "b")
    with pytest.raises(DecisionInvalid) as err:
        decide(w, cid, decision)
    assert [f for f, _ in err.value.errors] == fields


def test_an_authority_below_the_level_and_a_second_decision_are_refused():
    w = World.of(claim("a"), claim("b", seq=1))
    cid = opened(w, "a", "b")
    tick(w, cid, DEFAULT_POLICY, T0 + 48 * HOUR)
    with pytest.raises(BelowLevel):
        decide(w, cid, Decision("reject_all", rationale="x"), level=1)
    decide(w, cid, Decision("reject_all", rationale="x"), level=3)
    assert w.dispute(cid).decided_level == 3  # the level that actually decided
    with pytest.raises(AlreadyResolved):
        decide(w, cid, Decision("reject_all", rationale="x"), level=None)


# --- appeals ------------------------------------------------------------------------------------


def appeal_of(w: World, cid_or_none, who: str, now, p=DEFAULT_POLICY, rule=None, beaten_by=()):
    d = w.dispute(cid_or_none) if cid_or_none else None
    return w.apply(
        appeal.appeal(
            w.claims[who],
            rule,
            p,
            now,
            cause_id=f"appeal-{who}-{now}",
            dispute=d,
            beaten_by=beaten_by,
            reason="we met them first",
        )
    )


def test_an_appeal_of_a_conflict_decision_reopens_it_one_level_above():
    w = World.of(claim("a"), claim("b", seq=1))
    cid = opened(w, "a", "b")
    decide(w, cid, Decision("award", winner="a", rationale="x"))
    emits = appeal_of(w, cid, "b", T0 + 2 * HOUR, rule="authority")
    assert names(emits) == ["conflict.reopened", "conflict.escalated", "registration.under_review"]
    d = w.dispute(cid)
    assert (d.state, d.level, d.due_at) == ("escalated", 2, T0 + 2 * HOUR + 72 * HOUR)
    assert (w.claims["a"].status, w.claims["b"].status, w.claims["b"].appeals) == ("approved", "under_review", 1)
    until = w.claims["a"].protected_until
    emits = decide(w, cid, Decision("award", winner="a", rationale="still a"), level=2, now=T0 + 3 * HOUR)
    assert names(emits) == ["registration.approved", "registration.rejected", "conflict.resolved"]
    assert w.claims["a"].protected_until == until  # the holder kept its window all along


def test_the_holder_loses_its_ownership_only_when_the_appellant_wins():
    w = World.of(claim("a", status="approved", protected_until=T0 + 90 * 24 * HOUR), claim("b", seq=1))
    w.claims["b"] = replace(w.claims["b"], status="waitlisted", decided_at=T0, decided_by="rule")
    rival = Rival(w.claims["a"], evidence=Evidence(claims=["b", "a"], keys=["domain"]))
    emits = appeal_of(w, None, "b", T0 + HOUR, rule="active_protection", beaten_by=(rival,))
    assert names(emits) == ["conflict.opened", "conflict.escalated", "registration.under_review"]
    assert emits[0].event.cause == "appeal" and w.claims["a"].status == "approved"
    cid = emits[0].event.conflict_id
    emits = decide(w, cid, Decision("award", winner="b", rationale="b was first"), now=T0 + 2 * HOUR)
    assert names(emits) == [
        "registration.rejected",
        "ownership.released",
        "registration.approved",
        "ownership.granted",
        "conflict.resolved",
    ]


def _rejected(w: World, who: str, *, at=T0, by="rule", level=None):
    c = w.claims[who]
    w.claims[who] = replace(c, status="rejected", decided_at=at, decided_by=by, decided_level=level)


@pytest.mark.parametrize(
    ("setup", "rule", "reason"),
    [
        ({}, "eligibility", "not_appealable"),
        ({}, "ownership", "not_appealable"),
        ({"by": "conflict", "level": 3}, "authority", "not_appealable"),
        ({"at": T0 - 11 * 24 * HOUR}, "first_to_register", "appeal_window_closed"),
    ],
)
def test_appeals_are_refused_with_their_reason(setup, rule, reason):
    w = World.of(claim("a"), claim("b", seq=1))
    cid = opened(w, "a", "b") if setup.get("by") == "conflict" else None
    if cid:
        decide(w, cid, Decision("award", winner="a", rationale="x"), level=3)
    _rejected(w, "b", **setup)
    emits = appeal_of(w, cid, "b", T0 + HOUR, rule=rule)
    assert names(emits) == ["registration.appeal_refused"] and emits[0].event.reason == reason


def test_an_appeal_over_the_limit_is_refused():
    w = World.of(claim("a"), claim("b", seq=1))
    cid = opened(w, "a", "b")
    decide(w, cid, Decision("award", winner="a", rationale="x"))
    appeal_of(w, cid, "b", T0 + 2 * HOUR, rule="authority")
    decide(w, cid, Decision("award", winner="a", rationale="x"), level=2, now=T0 + 3 * HOUR)
    assert w.claims["b"].decided_level == 2
    emits = appeal_of(w, cid, "b", T0 + 4 * HOUR, rule="authority")
    assert emits[0].event.reason == "appeal_limit_reached"


def test_a_reviewers_rejection_is_appealed_at_level_two():
    w = World.of(claim("a"))
    _rejected(w, "a")
    emits = appeal_of(w, None, "a", T0 + HOUR, rule="review")
    assert names(emits) == ["conflict.opened", "conflict.escalated", "registration.under_review"]
    assert emits[1].event.level == 2


# --- properties ---------------------------------------------------------------------------------

COMMANDS = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.floats(min_value=0, max_value=200)),
        st.tuples(st.just("decide"), st.sampled_from(["award-a", "award-b", "split", "reject_all"])),
        st.tuples(st.just("appeal"), st.sampled_from(["a", "b"])),
        st.tuples(st.just("authority"), st.integers(min_value=1, max_value=3)),
    ),
    max_size=25,
)


def run(commands) -> World:
    """Drive one conflict through `commands` with a moved clock, as the services would."""
    w = World.of(claim("a"), claim("b", seq=1, tier="silver"))
    cid = opened(w, "a", "b")
    now, level = T0, 1
    for kind, arg in commands:
        d = w.dispute(cid)
        if kind == "tick":
            now += dt.timedelta(hours=arg)
            while (d := w.dispute(cid)).state == "escalated" and d.due_at <= now:
                w.apply(escalation.breach(d, d.level, w.listed(), DEFAULT_POLICY, d.due_at))
        elif kind == "authority":
            level = arg
        elif kind == "decide":
            decision = {
                "award-a": Decision("award", winner="a", rationale="r"),
                "award-b": Decision("award", winner="b", rationale="r"),
                "split": Decision("split", shares=(("a", 50), ("b", 50)), rationale="r"),
                "reject_all": Decision("reject_all", rationale="r"),
            }[arg]
            try:
                w.apply(
                    decisions.decide(d, w.listed(), decision, DEFAULT_POLICY, now, actor="x", authority_level=level)
                )
            except (AlreadyResolved, BelowLevel, DecisionInvalid):
                pass
        else:
            rule = "authority" if w.claims[arg].decided_by == "conflict" else None
            w.apply(appeal.appeal(w.claims[arg], rule, DEFAULT_POLICY, now, cause_id=f"ap{len(w.log)}", dispute=d))
    return w


@settings(max_examples=150, deadline=None)
@given(COMMANDS)
def test_a_conflict_is_never_resolved_twice_without_a_reopening(commands):
    w = run(commands)
    states = [e.name for e in w.log if e.name in ("conflict.resolved", "conflict.reopened")]
    assert all(a != b for a, b in pairwise(states))
    assert not states or states[0] == "conflict.resolved"


@settings(max_examples=150, deadline=None)
@given(COMMANDS)
def test_every_escalation_has_a_due_time_after_it(commands):
    w = run(commands)
    for e in w.named("conflict.escalated"):
        assert e.event.due_at is not None and e.event.due_at > e.event.escalated_at
    levels = [e.event.level for e in w.named("conflict.escalated")]
    assert levels == sorted(levels) and len(set(levels)) == len(levels)  # always up, each level once


@settings(max_examples=100, deadline=None)
@given(COMMANDS)
def test_replaying_the_same_history_gives_the_same_events_and_state(commands):
    first, second = run(commands), run(commands)
    assert first.log == second.log
    cid = first.conflict_ids()[0]
    stream = [e.event for e in first.log if e.stream == f"conflict-{cid}"]
    assert fold(stream) == fold(stream) == second.dispute(cid)
    assert fold(msgspec.json.decode(msgspec.json.encode(e), type=type(e)) for e in stream) == fold(stream)


@settings(max_examples=100, deadline=None)
@given(COMMANDS)
def test_at_most_one_partner_owns_the_customer_outside_a_split(commands):
    w = run(commands)
    approved = [c for c in w.listed() if c.status == "approved"]
    assert len(approved) <= 1 or all(c.attribution_percent for c in approved)
    if len(approved) > 1:
        assert sum(c.attribution_percent for c in approved) == 100
