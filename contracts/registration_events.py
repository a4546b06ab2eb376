"""Facts the registration service records and publishes on `dealreg.registration.<program>.<event>`.

Each event carries what the conflict service needs to decide without calling back. Fields are only
ever added, with defaults, so older payloads keep decoding.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from contracts.common import Customer, Money


class ProgramUpdated(msgspec.Struct, frozen=True, kw_only=True):
    program_id: str
    name: str
    updated_at: dt.datetime


class PartnerEnrolled(msgspec.Struct, frozen=True, kw_only=True):
    program_id: str
    partner_id: str
    name: str
    tier: str
    type: str
    enrolled_at: dt.datetime


class RegistrationSubmitted(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    registration_id: str
    program_id: str
    partner_id: str
    partner_tier: str
    partner_type: str
    submitted_by: str
    external_ref: str | None = None
    customer: Customer
    products: list[str]
    deal_type: str
    estimated_value: Money
    expected_close: dt.date
    notes: str | None = None
    submitted_at: dt.datetime


class RegistrationAmended(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An amendment, with the registration's whole amended terms so a consumer needs no state."""

    registration_id: str
    program_id: str
    partner_id: str
    amended_by: str
    changed: list[str]
    customer: Customer
    products: list[str]
    estimated_value: Money
    expected_close: dt.date
    notes: str | None = None
    rematch: bool = False
    answers_info_request: bool = False
    amended_at: dt.datetime


class RegistrationWithdrawn(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    registration_id: str
    program_id: str
    partner_id: str
    withdrawn_by: str
    reason: str | None = None
    withdrawn_at: dt.datetime


class ExtensionRequested(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    registration_id: str
    program_id: str
    partner_id: str
    requested_by: str
    reason: str | None = None
    requested_at: dt.datetime


class OutcomeReported(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    registration_id: str
    program_id: str
    partner_id: str
    reported_by: str
    result: str  # "won" | "lost"
    amount: str | None = None
    closed_on: dt.date
    reported_at: dt.datetime


class RegistrationAppealed(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    registration_id: str
    program_id: str
    partner_id: str
    appealed_by: str
    reason: str
    appealed_at: dt.datetime


class StatusRecorded(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The registration service's record of a status the conflict service decided."""

    registration_id: str
    program_id: str
    partner_id: str
    status: str
    status_reason: str | None = None
    rule: str | None = None
    policy_version: int | None = None
    protected_until: dt.datetime | None = None
    attribution_percent: int | None = None
    conflict_id: str | None = None
    comment: str | None = None
    source_event_id: str
    decided_at: dt.datetime


REGISTRATION_EVENTS: dict[str, type[msgspec.Struct]] = {
    "program.updated": ProgramUpdated,
    "partner.enrolled": PartnerEnrolled,
    "registration.submitted": RegistrationSubmitted,
    "registration.amended": RegistrationAmended,
    "registration.withdrawn": RegistrationWithdrawn,
    "registration.extension_requested": ExtensionRequested,
    "registration.outcome_reported": OutcomeReported,
    "registration.appealed": RegistrationAppealed,
    "registration.status_recorded": StatusRecorded,
}
