"""Registration commands become events here (pure: the clock and ids come in as arguments)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from contracts.common import Customer, Money
from contracts.registration_events import (
    ExtensionRequested,
    OutcomeReported,
    RegistrationAmended,
    RegistrationAppealed,
    RegistrationSubmitted,
    RegistrationWithdrawn,
)
from services.registration.domain.errors import InvalidTerms, TransitionForbidden
from services.registration.domain.model import APPEALABLE, CUSTOMER_EDITABLE, LIVE, Registration
from services.terms import customer_errors, money_errors, product_errors


@dataclass(frozen=True)
class Partner:
    program_id: str
    partner_id: str
    tier: str
    type: str


@dataclass(frozen=True)
class Terms:
    customer: Customer
    products: list[str]
    deal_type: str
    estimated_value: Money
    expected_close: dt.date
    notes: str | None = None
    external_ref: str | None = None


@dataclass(frozen=True)
class Amendment:
    """The fields a PATCH names; None means unchanged."""

    customer: Customer | None = None
    products: list[str] | None = None
    estimated_value: Money | None = None
    expected_close: dt.date | None = None
    notes: str | None = None
    notes_given: bool = False


def _check(errors: list[tuple[str, str]]) -> None:
    if errors:
        raise InvalidTerms(errors)


def submit(registration_id: str, partner: Partner, terms: Terms, actor: str, now: dt.datetime) -> RegistrationSubmitted:
    _check(
        customer_errors(terms.customer)
        + product_errors(terms.products)
        + money_errors("estimated_value", terms.estimated_value)
    )
    return RegistrationSubmitted(
        registration_id=registration_id,
        program_id=partner.program_id,
        partner_id=partner.partner_id,
        partner_tier=partner.tier,
        partner_type=partner.type,
        submitted_by=actor,
        external_ref=terms.external_ref,
        customer=terms.customer,
        products=terms.products,
        deal_type=terms.deal_type,
        estimated_value=terms.estimated_value,
        expected_close=terms.expected_close,
        notes=terms.notes,
        submitted_at=now,
    )


def amend(state: Registration, change: Amendment, actor: str, now: dt.datetime) -> RegistrationAmended:
    if state.status not in LIVE:
        raise TransitionForbidden("amend", state.status)
    if change.customer is not None and change.customer != state.customer and state.status not in CUSTOMER_EDITABLE:
        raise TransitionForbidden("change the customer of", state.status)
    errors: list[tuple[str, str]] = []
    if change.customer is not None:
        errors += customer_errors(change.customer)
    if change.products is not None:
        errors += product_errors(change.products)
    if change.estimated_value is not None:
        errors += money_errors("estimated_value", change.estimated_value)
    _check(errors)
    customer = change.customer if change.customer is not None else state.customer
    products = change.products if change.products is not None else list(state.products)
    value = change.estimated_value if change.estimated_value is not None else state.estimated_value
    close = change.expected_close if change.expected_close is not None else state.expected_close
    notes = change.notes if change.notes_given else state.notes
    changed = [
        name
        for name, new, old in (
            ("customer", customer, state.customer),
            ("products", products, list(state.products)),
            ("estimated_value", value, state.estimated_value),
            ("expected_close", close, state.expected_close),
            ("notes", notes, state.notes),
        )
        if new != old
    ]
    return RegistrationAmended(
        registration_id=state.id,
        program_id=state.program_id,
        partner_id=state.partner_id,
        amended_by=actor,
        changed=changed,
        customer=customer,
        products=products,
        estimated_value=value,
        expected_close=close,
        notes=notes,
        rematch="customer" in changed or "products" in changed,
        answers_info_request=state.status == "info_requested",
        amended_at=now,
    )


def withdraw(state: Registration, reason: str | None, actor: str, now: dt.datetime) -> RegistrationWithdrawn:
    if state.status not in LIVE:
        raise TransitionForbidden("withdraw", state.status)
    return RegistrationWithdrawn(
        registration_id=state.id,
        program_id=state.program_id,
        partner_id=state.partner_id,
        withdrawn_by=actor,
        reason=reason,
        withdrawn_at=now,
    )


def request_extension(state: Registration, reason: str | None, actor: str, now: dt.datetime) -> ExtensionRequested:
    if state.status != "approved":
        raise TransitionForbidden("request an extension for", state.status)
    return ExtensionRequested(
        registration_id=state.id,
        program_id=state.program_id,
        partner_id=state.partner_id,
        requested_by=actor,
        reason=reason,
        requested_at=now,
    )


def report_outcome(
    state: Registration, result: str, amount: str | None, closed_on: dt.date, actor: str, now: dt.datetime
) -> OutcomeReported:
    allowed = {"approved"} if result == "won" else LIVE
    if state.status not in allowed:
        raise TransitionForbidden(f"report a {result} outcome for", state.status)
    if amount is not None:
        _check(money_errors("amount", Money(amount=amount, currency=state.estimated_value.currency)))
    return OutcomeReported(
        registration_id=state.id,
        program_id=state.program_id,
        partner_id=state.partner_id,
        reported_by=actor,
        result=result,
        amount=amount,
        closed_on=closed_on,
        reported_at=now,
    )


def appeal(state: Registration, reason: str, actor: str, now: dt.datetime) -> RegistrationAppealed:
    if state.status not in APPEALABLE:
        raise TransitionForbidden("appeal", state.status)
    return RegistrationAppealed(
        registration_id=state.id,
        program_id=state.program_id,
        partner_id=state.partner_id,
        appealed_by=actor,
        reason=reason,
        appealed_at=now,
    )
