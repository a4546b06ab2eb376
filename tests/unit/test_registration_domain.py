"""The Registration aggregate: commands become events (decide.py), events fold into state (model.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.common import Customer, Money
from contracts.registration_events import StatusRecorded
from services.registration.domain import decide
from services.registration.domain.errors import InvalidTerms, TransitionForbidden
from services.registration.domain.model import (
    APPEALABLE,
    CUSTOMER_EDITABLE,
    LIVE,
    STATUS_EVENTS,
    Registration,
    evolve,
    started,
)

pytestmark = pytest.mark.unit

T0 = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)
PARTNER = decide.Partner("acme", "p1", "gold", "msp")
ACME = Customer(name="Acme Corporation", country="US", domain="https://www.acme.com", duns="123456789")
TERMS = decide.Terms(
    customer=ACME,
    products=["firewall", "support"],
    deal_type="new",
    estimated_value=Money(amount="125000.00", currency="USD"),
    expected_close=dt.date(2027, 3, 31),
    notes="Met CISO at summit",
    external_ref="opp-0042",
)
FINAL = frozenset({"withdrawn", "won", "lost"})
ALL_STATUSES = LIVE | FINAL | {"rejected", "expired"}


def fresh(**terms) -> Registration:
    return started(decide.submit("r1", PARTNER, replace(TERMS, **terms), "jane", T0))


def recorded(state: Registration, status: str, at: dt.datetime = T0, **fields) -> StatusRecorded:
    return StatusRecorded(
        registration_id=state.id, program_id=state.program_id, partner_id=state.partner_id, status=status,
        status_reason=fields.pop("status_reason", status), source_event_id="e", decided_at=at, **fields,
    )  # fmt: skip


def with_status(status: str) -> Registration:
    return replace(fresh(), status=status)


# --- submit ------------------------------------------------------------------------------------


def test_submit_carries_what_the_conflict_service_needs():
    event = decide.submit("r1", PARTNER, TERMS, "jane", T0)
    assert (event.registration_id, event.program_id, event.partner_id) == ("r1", "acme", "p1")
    assert (event.partner_tier, event.partner_type) == ("gold", "msp")
    assert event.customer == ACME and event.products == ["firewall", "support"]
    assert event.deal_type == "new" and event.estimated_value == TERMS.estimated_value
    assert event.submitted_at == T0 and event.submitted_by == "jane" and event.external_ref == "opp-0042"


def test_a_submission_starts_pending_at_version_1():
    state = fresh()
    assert state.status == "pending" and state.version == 1 and state.is_live
    assert state.submitted_at == state.updated_at == T0
    assert state.status_reason is None and state.protected_until is None and state.decision is None


def test_submit_reports_every_invalid_term():
    bad = replace(
        TERMS,
        customer=Customer(name=" ", country="XX", domain="not a host"),
        products=["fw", "fw"],
        estimated_value=Money(amount="-1", currency="ZZZ"),
    )
    with pytest.raises(InvalidTerms) as err:
        decide.submit("r1", PARTNER, bad, "jane", T0)
    assert {f for f, _ in err.value.errors} == {
        "customer.name", "customer.country", "customer.domain", "products", "estimated_value.amount",
        "estimated_value.currency",
    }  # fmt: skip


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-0.01", "abc", ""])
def test_money_must_be_a_finite_non_negative_decimal(amount):
    with pytest.raises(InvalidTerms):
        decide.submit("r1", PARTNER, replace(TERMS, estimated_value=Money(amount=amount, currency="EUR")), "j", T0)


# --- amend ---------------------------------------------------------------------------------------


def test_amend_lists_what_changed_and_keeps_the_rest():
    state = fresh()
    event = decide.amend(state, decide.Amendment(products=["firewall"], notes_given=True, notes=None), "jane", T0)
    assert event.changed == ["products", "notes"]
    assert event.rematch is True and event.answers_info_request is False
    after = evolve(state, event)
    assert after.products == ("firewall",) and after.notes is None and after.customer == ACME
    assert after.version == 2 and after.status == "pending"


def test_amend_with_nothing_new_changes_nothing_but_the_version():
    state = fresh()
    event = decide.amend(state, decide.Amendment(customer=ACME, products=["firewall", "support"]), "jane", T0)
    assert event.changed == [] and event.rematch is False


@pytest.mark.parametrize("status", sorted(CUSTOMER_EDITABLE))
def test_the_customer_may_change_while_not_yet_decided(status):
    other = Customer(name="Globex", country="DE")
    event = decide.amend(with_status(status), decide.Amendment(customer=other), "jane", T0)
    assert event.customer == other and event.changed == ["customer"] and event.rematch
    assert event.answers_info_request is (status == "info_requested")


@pytest.mark.parametrize("status", sorted(LIVE - CUSTOMER_EDITABLE))
def test_the_customer_is_fixed_once_decided(status):
    state = with_status(status)
    with pytest.raises(TransitionForbidden) as err:
        decide.amend(state, decide.Amendment(customer=Customer(name="Globex", country="DE")), "jane", T0)
    assert err.value.status == status
    # the same customer again is not a change; other terms may still change
    event = decide.amend(state, decide.Amendment(customer=ACME, expected_close=dt.date(2027, 6, 30)), "j", T0)
    assert event.changed == ["expected_close"]


@pytest.mark.parametrize("status", sorted(ALL_STATUSES - LIVE))
def test_nothing_amends_a_registration_that_is_not_live(status):
    with pytest.raises(TransitionForbidden):
        decide.amend(with_status(status), decide.Amendment(notes="x", notes_given=True), "jane", T0)


def test_amend_validates_what_it_changes():
    with pytest.raises(InvalidTerms) as err:
        decide.amend(
            fresh(), decide.Amendment(products=[" "], estimated_value=Money(amount="x", currency="USD")), "j", T0
        )
    assert {f for f, _ in err.value.errors} == {"products", "estimated_value.amount"}


# --- actions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(ALL_STATUSES))
def test_each_action_follows_the_status(status):
    state = with_status(status)
    actions = {
        "withdraw": (lambda: decide.withdraw(state, None, "j", T0), status in LIVE),
        "extension": (lambda: decide.request_extension(state, "more time", "j", T0), status == "approved"),
        "won": (
            lambda: decide.report_outcome(state, "won", "1.00", dt.date(2027, 2, 1), "j", T0),
            status == "approved",
        ),
        "lost": (lambda: decide.report_outcome(state, "lost", None, dt.date(2027, 2, 1), "j", T0), status in LIVE),
        "appeal": (lambda: decide.appeal(state, "unfair", "j", T0), status in APPEALABLE),
    }
    for name, (act, allowed) in actions.items():
        if allowed:
            act()
        else:
            with pytest.raises(TransitionForbidden) as err:
                act()
            assert err.value.status == status, name


def test_actions_fold_into_state():
    state = with_status("approved")
    assert evolve(state, decide.withdraw(state, "gone", "j", T0)).status == "withdrawn"
    won = evolve(state, decide.report_outcome(state, "won", "130000", dt.date(2027, 2, 1), "j", T0))
    assert (won.status, won.status_reason) == ("won", "won")
    extended = evolve(state, decide.request_extension(state, None, "j", T0))
    assert extended.status == "approved" and extended.version == state.version + 1
    appealed = with_status("rejected")
    assert evolve(appealed, decide.appeal(appealed, "x", "j", T0)).status == "rejected"


@pytest.mark.parametrize(("act", "keeps"), [("withdraw", False), ("lost", False), ("won", True)])
def test_leaving_an_approval_ends_its_protection_unless_won(act, keeps):
    until = T0 + dt.timedelta(days=90)
    approved = evolve(fresh(), recorded(fresh(), "approved", protected_until=until, attribution_percent=100))
    event = (
        decide.withdraw(approved, None, "j", T0)
        if act == "withdraw"
        else decide.report_outcome(approved, act, None, dt.date(2027, 2, 1), "j", T0)
    )
    after = evolve(approved, event)
    assert (after.protected_until, after.attribution_percent) == ((until, 100) if keeps else (None, None))


def test_an_outcome_amount_is_checked():
    with pytest.raises(InvalidTerms):
        decide.report_outcome(with_status("approved"), "won", "NaN", dt.date(2027, 2, 1), "j", T0)


# --- statuses from the conflict service ----------------------------------------------------------


def test_an_approval_grants_protection_and_records_the_decision():
    until = T0 + dt.timedelta(days=90)
    state = evolve(fresh(), recorded(fresh(), "approved", protected_until=until, attribution_percent=60,
                                     rule="first_to_register", policy_version=3, status_reason="no_collision"))  # fmt: skip
    assert (state.status, state.status_reason, state.protected_until) == ("approved", "no_collision", until)
    assert state.attribution_percent == 60
    assert state.decision.rule == "first_to_register" and state.decision.policy_version == 3


def test_waitlisted_keeps_the_holders_until_but_no_attribution():
    until = T0 + dt.timedelta(days=30)
    state = evolve(fresh(), recorded(fresh(), "waitlisted", protected_until=until, attribution_percent=50))
    assert state.protected_until == until and state.attribution_percent is None


@pytest.mark.parametrize("status", ["rejected", "expired", "pending_review", "under_review", "info_requested"])
def test_other_statuses_clear_protection(status):
    approved = evolve(fresh(), recorded(fresh(), "approved", protected_until=T0, attribution_percent=100))
    state = evolve(approved, recorded(approved, status))
    assert state.status == status and state.protected_until is None and state.attribution_percent is None


@pytest.mark.parametrize("refusal", ["appeal_refused", "extension_denied"])
def test_refusals_change_the_reason_not_the_status(refusal):
    approved = evolve(fresh(), recorded(fresh(), "approved", protected_until=T0))
    state = evolve(approved, recorded(approved, refusal, status_reason="extension_limit_reached"))
    assert state.status == "approved" and state.protected_until == T0
    assert state.status_reason == "extension_limit_reached"


@pytest.mark.parametrize("final", sorted(FINAL))
def test_the_partners_final_facts_stand(final):
    state = with_status(final)
    after = evolve(state, recorded(state, "approved", protected_until=T0))
    assert after.status == final and after.version == state.version + 1


# --- property: any sequence the commands accept leaves a state they agree with -------------------

PARTNER_COMMANDS = ["amend_terms", "amend_customer", "withdraw", "extension", "won", "lost", "appeal"]
commands = st.lists(
    st.one_of(
        st.sampled_from(PARTNER_COMMANDS),
        st.sampled_from(sorted(STATUS_EVENTS | {"appeal_refused", "extension_denied"})).map(lambda s: f"status:{s}"),
    ),
    max_size=25,
)


def allowed(status: str, command: str) -> bool:
    """The transition table, written out independently of decide.py."""
    return {
        "amend_terms": status in LIVE,
        "amend_customer": status in {"pending", "pending_review", "info_requested"},
        "withdraw": status in LIVE,
        "extension": status == "approved",
        "won": status == "approved",
        "lost": status in LIVE,
        "appeal": status in {"rejected", "waitlisted"},
    }[command]


def expected_status(status: str, command: str) -> str:
    if command.startswith("status:"):
        new = command.removeprefix("status:")
        if status in FINAL or new not in STATUS_EVENTS:
            return status
        return new
    return {"withdraw": "withdrawn", "won": "won", "lost": "lost"}.get(command, status)


def run(state: Registration, command: str, i: int, now: dt.datetime):
    if command.startswith("status:"):
        status = command.removeprefix("status:")
        return recorded(state, status, now, protected_until=now + dt.timedelta(days=90), attribution_percent=100)
    match command:
        case "amend_terms":
            return decide.amend(state, decide.Amendment(products=[f"p{i}"], notes=f"n{i}", notes_given=True), "j", now)
        case "amend_customer":
            return decide.amend(state, decide.Amendment(customer=Customer(name=f"C{i}", country="FR")), "j", now)
        case "withdraw":
            return decide.withdraw(state, None, "j", now)
        case "extension":
            return decide.request_extension(state, None, "j", now)
        case "won" | "lost":
            return decide.report_outcome(state, command, None, now.date(), "j", now)
        case "appeal":
            return decide.appeal(state, "r", "j", now)
    raise AssertionError(command)


@settings(max_examples=300)
@given(commands)
def test_folding_accepted_commands_never_reaches_a_state_the_commands_would_refuse(sequence):
    state = fresh()
    events = []
    for i, command in enumerate(sequence):
        now = T0 + dt.timedelta(hours=i + 1)
        before = state
        try:
            event = run(state, command, i, now)
        except TransitionForbidden as e:
            assert not command.startswith("status:") and not allowed(state.status, command), (command, state.status)
            assert e.status == state.status
            continue
        assert command.startswith("status:") or allowed(before.status, command), (command, before.status)
        events.append(event)
        state = evolve(state, event)
        assert state.status == expected_status(before.status, command), (command, before.status)
        assert state.status in ALL_STATUSES
        assert state.version == 1 + len(events)
        assert state.updated_at >= before.updated_at
        # protection belongs to an approval (kept on record once won) or a place in the queue
        if state.status not in ("approved", "waitlisted", "won"):
            assert state.protected_until is None, (command, before.status)
        if state.status not in ("approved", "won"):
            assert state.attribution_percent is None, (command, before.status)
        if state.customer != before.customer:
            assert before.status in CUSTOMER_EDITABLE
        if before.status in FINAL:  # a final fact stands: nothing but the version moves
            assert state.status == before.status and state.customer == before.customer
    # replaying the recorded events rebuilds exactly the same state
    replayed = fresh()
    for event in events:
        replayed = evolve(replayed, event)
    assert replayed == state
