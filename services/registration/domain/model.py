"""The Registration aggregate: its state, folded from its own stream of events (pure)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from contracts.common import Customer, Money
from contracts.registration_events import (
    ExtensionRequested,
    OutcomeReported,
    RegistrationAmended,
    RegistrationAppealed,
    RegistrationSubmitted,
    RegistrationWithdrawn,
    StatusRecorded,
)

LIVE = frozenset({"pending", "pending_review", "info_requested", "approved", "waitlisted", "under_review"})
CUSTOMER_EDITABLE = frozenset({"pending", "pending_review", "info_requested"})
APPEALABLE = frozenset({"rejected", "waitlisted"})
# statuses the conflict service sets; appeal_refused / extension_denied only change the reason
STATUS_EVENTS = frozenset(
    {"approved", "pending_review", "info_requested", "waitlisted", "under_review", "rejected", "expired"}
)


@dataclass(frozen=True, slots=True)
class Decision:
    status: str
    reason: str | None
    rule: str | None
    policy_version: int | None
    protected_until: dt.datetime | None
    decided_at: dt.datetime
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Registration:
    id: str
    program_id: str
    partner_id: str
    submitted_by: str
    external_ref: str | None
    customer: Customer
    products: tuple[str, ...]
    deal_type: str
    estimated_value: Money
    expected_close: dt.date
    notes: str | None
    status: str
    submitted_at: dt.datetime
    updated_at: dt.datetime
    version: int = 1
    status_reason: str | None = None
    protected_until: dt.datetime | None = None
    attribution_percent: int | None = None
    decision: Decision | None = None

    @property
    def is_live(self) -> bool:
        return self.status in LIVE


def started(e: RegistrationSubmitted) -> Registration:
    return Registration(
        id=e.registration_id,
        program_id=e.program_id,
        partner_id=e.partner_id,
        submitted_by=e.submitted_by,
        external_ref=e.external_ref,
        customer=e.customer,
        products=tuple(e.products),
        deal_type=e.deal_type,
        estimated_value=e.estimated_value,
        expected_close=e.expected_close,
        notes=e.notes,
        status="pending",
        submitted_at=e.submitted_at,
        updated_at=e.submitted_at,
    )


def evolve(state: Registration, event: object) -> Registration:
    """The state after one more event of the registration's stream."""
    v = state.version + 1
    match event:
        case RegistrationAmended():
            return replace(
                state,
                customer=event.customer,
                products=tuple(event.products),
                estimated_value=event.estimated_value,
                expected_close=event.expected_close,
                notes=event.notes,
                updated_at=event.amended_at,
                version=v,
            )
        case RegistrationWithdrawn():
            return replace(
                state,
                status="withdrawn",
                status_reason="withdrawn",
                protected_until=None,
                attribution_percent=None,
                updated_at=event.withdrawn_at,
                version=v,
            )
        case OutcomeReported() if event.result == "lost":  # a lost deal holds nothing any more
            return replace(
                state,
                status="lost",
                status_reason="lost",
                protected_until=None,
                attribution_percent=None,
                updated_at=event.reported_at,
                version=v,
            )
        case OutcomeReported():  # won: the approval it won under stays on record
            return replace(
                state, status=event.result, status_reason=event.result, updated_at=event.reported_at, version=v
            )
        case ExtensionRequested():
            return replace(state, updated_at=event.requested_at, version=v)
        case RegistrationAppealed():
            return replace(state, updated_at=event.appealed_at, version=v)
        case StatusRecorded():
            return _record_status(state, event, v)
    return replace(state, version=v)


def _record_status(state: Registration, e: StatusRecorded, version: int) -> Registration:
    decision = Decision(e.status, e.status_reason, e.rule, e.policy_version, e.protected_until, e.decided_at, e.comment)
    if e.status not in STATUS_EVENTS:  # appeal_refused, extension_denied: the reason changes, not the status
        return replace(
            state, status_reason=e.status_reason, decision=decision, updated_at=e.decided_at, version=version
        )
    if state.status in ("withdrawn", "won", "lost"):  # the partner's own final facts stand
        return replace(state, version=version)
    return replace(
        state,
        status=e.status,
        status_reason=e.status_reason,
        protected_until=e.protected_until if e.status in ("approved", "waitlisted") else None,
        attribution_percent=e.attribution_percent if e.status == "approved" else None,
        decision=decision,
        updated_at=e.decided_at,
        version=version,
    )
