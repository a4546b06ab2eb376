"""Claims as the conflict service decides on them: registrations and direct deals (pure)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from contracts.common import Evidence
from services.conflict.domain.identity import Identity, match_evidence

OPEN_STATUSES = frozenset({"pending", "pending_review", "info_requested", "under_review"})
LIVE_STATUSES = OPEN_STATUSES | {"approved"}
CLOSED_STATUSES = frozenset({"rejected", "expired", "withdrawn", "won", "lost", "released"})
_IDS = uuid.UUID("0b8c5a52-7d0e-4d53-9a55-37d8f0f3c1aa")


def derived_id(*parts: str) -> str:
    """A deterministic id for something a decision creates, so a replay creates the same ids."""
    return str(uuid.uuid5(_IDS, "/".join(parts)))


@dataclass(frozen=True, slots=True)
class Claim:
    claim_id: str
    kind: str  # "registration" | "direct_deal"
    program_id: str
    identity: Identity
    products: tuple[str, ...]
    submitted_at: dt.datetime
    status: str
    partner_id: str | None = None
    tier: str | None = None
    deal_type: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    protected_until: dt.datetime | None = None
    approved_at: dt.datetime | None = None
    conflict_id: str | None = None
    attribution_percent: int | None = None
    extensions: int = 0
    appeals: int = 0
    decided_at: dt.datetime | None = None
    decided_by: str | None = None  # "rule" | "conflict"
    decided_level: int | None = None
    policy_version: int = 0
    seq: int = 0  # arrival order in the conflict service's log

    @property
    def is_direct(self) -> bool:
        return self.kind == "direct_deal"

    def live_at(self, now: dt.datetime) -> bool:
        """Live claims collide: open or approved-and-unexpired registrations, unreleased direct deals."""
        if self.is_direct:
            return self.status == "open"
        if self.status == "approved":
            return self.protected_until is None or self.protected_until > now
        return self.status in OPEN_STATUSES

    def holds_at(self, now: dt.datetime) -> bool:
        return not self.is_direct and self.status == "approved" and self.live_at(now)


@dataclass(frozen=True, slots=True)
class Rival:
    """A live claim that collides with a claim being decided, and why."""

    claim: Claim
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class Situation:
    """Everything a decision may look at, read from the projections under the program's lock."""

    group: tuple[Claim, ...]
    rivals: tuple[Rival, ...] = ()
    history: tuple[Claim, ...] = field(default=())  # closed claims on the same customer (incumbency)


def collision(a: Claim, b: Claim, name_threshold: float, require_product_overlap: bool) -> Evidence | None:
    """Evidence that `a` and `b` collide (same customer, shared product if required), or None."""
    keys = match_evidence(a.identity, b.identity, name_threshold)
    if not keys:
        return None
    overlap = sorted(set(a.products) & set(b.products))
    if require_product_overlap and not overlap:
        return None
    return Evidence(
        claims=[a.claim_id, b.claim_id],
        keys=[k.key for k in keys],
        scores={k.key: round(k.score, 4) for k in keys},
        overlapping_products=overlap,
    )
