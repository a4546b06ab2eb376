"""Decisions the conflict service records and publishes on `dealreg.conflict.<program>.<event>`.

CRMs subscribe to these. Anything a partner may see names no rival partner.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from contracts.common import ClaimRef, Customer, Evidence, RuleVerdict, Share

REGISTRATION_STATUSES = (
    "approved",
    "pending_review",
    "info_requested",
    "waitlisted",
    "under_review",
    "rejected",
    "expired",
    "appeal_refused",
    "extension_denied",
)


class RegistrationStatusChanged(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """`registration.<status>`: a status the conflict service gave a registration, with its reason."""

    registration_id: str
    program_id: str
    partner_id: str
    status: str
    reason: str | None = None
    rule: str | None = None
    policy_version: int = 0
    protected_until: dt.datetime | None = None
    attribution_percent: int | None = None
    conflict_id: str | None = None
    comment: str | None = None
    decided_by: str | None = None
    decided_at: dt.datetime


class ConflictOpened(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    conflict_id: str
    program_id: str
    claims: list[ClaimRef]
    evidence: list[Evidence] = []
    rule_trail: list[RuleVerdict] = []
    policy_version: int
    cause: str = "collision"  # "collision" | "appeal" | "direct_deal"
    opened_at: dt.datetime


class ConflictEscalated(msgspec.Struct, frozen=True, kw_only=True):
    conflict_id: str
    program_id: str
    level: int
    authority_role: str
    due_at: dt.datetime
    escalated_at: dt.datetime


class ConflictResolved(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    conflict_id: str
    program_id: str
    outcome: str  # "award" | "split" | "reject_all"
    winner: str | None = None
    shares: list[Share] = []
    rationale: str
    reason: str  # "authority_decision" | "sla_default"
    level: int
    decided_by: str
    resolved_at: dt.datetime


class ConflictReopened(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    conflict_id: str
    program_id: str
    appealed_registration_id: str
    reason: str | None = None
    level: int
    reopened_at: dt.datetime


class OwnershipChanged(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """`ownership.granted|extended|expiring|released`: a claim's hold on a customer and products."""

    claim_id: str
    program_id: str
    kind: str = "registration"
    registration_id: str | None = None
    partner_id: str | None = None
    products: list[str] = []
    valid_from: dt.datetime
    valid_until: dt.datetime | None = None
    attribution_percent: int | None = None
    reason: str | None = None
    at: dt.datetime


class SlaBreached(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    program_id: str
    conflict_id: str | None = None
    registration_id: str | None = None
    level: int  # always on the wire: a consumer must never have to assume it
    due_at: dt.datetime
    breached_at: dt.datetime


class PolicyPublished(msgspec.Struct, frozen=True, kw_only=True):
    program_id: str
    version: int
    policy: dict[str, Any]
    published_by: str
    published_at: dt.datetime


class DirectDealRecorded(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    direct_deal_id: str
    program_id: str
    external_ref: str | None = None
    customer: Customer
    products: list[str]
    owner: str
    opened_on: dt.date
    expected_close: dt.date | None = None
    recorded_by: str
    recorded_at: dt.datetime


class DirectDealReleased(msgspec.Struct, frozen=True, kw_only=True):
    direct_deal_id: str
    program_id: str
    released_by: str
    released_at: dt.datetime


CONFLICT_EVENTS: dict[str, type[msgspec.Struct]] = {
    **{f"registration.{status}": RegistrationStatusChanged for status in REGISTRATION_STATUSES},
    "conflict.opened": ConflictOpened,
    "conflict.escalated": ConflictEscalated,
    "conflict.resolved": ConflictResolved,
    "conflict.reopened": ConflictReopened,
    "ownership.granted": OwnershipChanged,
    "ownership.extended": OwnershipChanged,
    "ownership.expiring": OwnershipChanged,
    "ownership.released": OwnershipChanged,
    "sla.breached": SlaBreached,
    "policy.published": PolicyPublished,
    "direct_deal.recorded": DirectDealRecorded,
    "direct_deal.released": DirectDealReleased,
}
