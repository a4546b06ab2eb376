"""The conflict projections held in memory while a replay walks the logs (pure, no I/O).

Conflict events change the state through the same `projection_changes` the live projector carries
out in SQL; registration facts make and change claims as the intake's statements do. Each change
does here what its statement does in PostgreSQL (an UPDATE of a missing claim changes nothing, an
INSERT of an existing one is ignored), so the rows `replay` copies in are the rows those statements
would have left.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from typing import Any

import msgspec

from contracts.conflict_events import DirectDealRecorded
from contracts.envelope import encode
from contracts.registration_events import (
    OutcomeReported,
    RegistrationAmended,
    RegistrationSubmitted,
    RegistrationWithdrawn,
)
from services.conflict import projection_changes as pc
from services.conflict import timer_changes as tc
from services.conflict.deciding import amended_claim, claim_of, submitted_claim
from services.conflict.domain.claims import Claim
from services.conflict.domain.policy import Policy
from services.conflict.replay_tables import Conflicts, Policies, Timers

# the columns of conflict.claims a replay writes (all but the generated `seq`), in COPY order
CLAIM_COLUMNS = (
    "claim_id", "kind", "program_id", "partner_id", "tier", "deal_type", "name_key", "country", "domain", "duns",
    "tax_id", "products", "amount", "currency", "submitted_at", "status", "protected_until", "approved_at",
    "conflict_id", "attribution_percent", "extensions", "appeals", "decided_at", "decided_by", "decided_level",
    "policy_version", "customer",
)  # fmt: skip


class ClaimRow:
    """One claim: how its submission (or recording) builds it, and what events changed since.

    Building a claim computes its identity, most of a replay's work; nothing an event does reads
    it, so it is built only when the row is written (or earlier, while the connection waits).
    """

    __slots__ = ("build", "built", "customer", "terms", "values")

    def __init__(self, build: Callable[[], Claim], customer: msgspec.Struct) -> None:
        self.build = build
        self.built: Claim | None = None
        self.customer = customer
        self.terms: tuple[RegistrationAmended, Policy] | None = None  # the latest amendment, its policy
        self.values: dict[str, Any] = dict(_DEFAULTS)  # the columns events set

    def claim(self) -> Claim:
        if self.built is None:
            self.built = self.build()
        return self.built

    def record(self) -> tuple:
        """The row in CLAIM_COLUMNS order."""
        c = self.claim()
        t = amended_claim(c, *self.terms) if self.terms is not None else c
        i, v = t.identity, self.values
        return (
            c.claim_id, c.kind, c.program_id, c.partner_id, c.tier, c.deal_type, i.name_key, i.country, i.domain,
            i.duns, i.tax_id, list(t.products), t.amount, t.currency, c.submitted_at, v.get("status", c.status),
            v["protected_until"], v["approved_at"], v["conflict_id"], v["attribution_percent"], v["extensions"],
            v["appeals"], v["decided_at"], v["decided_by"], v["decided_level"], v["policy_version"],
            encode(self.customer).decode(),
        )  # fmt: skip


# as claims_repo.insert leaves them: the columns it does not write take the table's defaults
_DEFAULTS = {
    "protected_until": None, "approved_at": None, "conflict_id": None, "attribution_percent": None,
    "extensions": 0, "appeals": 0, "decided_at": None, "decided_by": None, "decided_level": None, "policy_version": 0,
}  # fmt: skip


class ReplayState:
    """Claims, conflicts, policies and timers as the events applied so far leave them."""

    def __init__(self) -> None:
        self.claims: dict[str, ClaimRow] = {}  # in first-insert order: the order of their seq
        self.conflicts = Conflicts()
        self.policies = Policies()
        self.timers = Timers()
        self._in_conflict: dict[str, set[str]] = {}  # conflict_id -> the claims pointing at it

    def registration_fact(self, e: msgspec.Struct) -> None:
        """A registration fact: a new claim, amended terms, or a status the partner's side set."""
        match e:
            case RegistrationSubmitted():
                if e.registration_id not in self.claims:
                    policy = self.policies.in_force(e.program_id)[0]
                    self.claims[e.registration_id] = ClaimRow(partial(submitted_claim, e, policy), e.customer)
            case RegistrationAmended():
                if (row := self.claims.get(e.registration_id)) is not None:
                    # update_terms writes the amended identity, products and value; the rest stays
                    policy = self.policies.in_force(e.program_id)[0]
                    row.terms = (e, policy)
            case RegistrationWithdrawn():
                self._set(e.registration_id, status="withdrawn")
            case OutcomeReported():
                self._set(e.registration_id, status=e.result)

    def conflict_event(self, name: str, e: msgspec.Struct) -> None:
        """One of the conflict service's own events, as the live projector applies it."""
        if isinstance(e, DirectDealRecorded) and e.direct_deal_id not in self.claims:
            policy = self.policies.in_force(e.program_id)[0]
            self.claims[e.direct_deal_id] = ClaimRow(partial(_direct_deal, e, policy), e.customer)
        for change in pc.changes_of(name, e):
            _APPLY[type(change)](self, change)

    def _set(self, claim_id: str, **values: Any) -> dict[str, Any] | None:
        row = self.claims.get(claim_id)
        if row is None:
            return None
        now = row.values
        conflict_id = values.get("conflict_id")
        if conflict_id is not None and conflict_id != now["conflict_id"]:
            if now["conflict_id"] is not None:
                self._in_conflict[now["conflict_id"]].discard(claim_id)
            self._in_conflict.setdefault(conflict_id, set()).add(claim_id)
        now.update(values)
        return now

    def _status_decided(self, c: pc.StatusDecided) -> None:
        values = {
            "status": c.status,
            "protected_until": c.protected_until,
            "attribution_percent": c.attribution_percent,
            "decided_at": c.decided_at,
            "policy_version": c.policy_version,
        }
        if c.conflict_id is not None:  # coalesce($5, conflict_id)
            values["conflict_id"] = c.conflict_id
        if c.decided_by is not None:
            values["decided_by"] = c.decided_by
        self._set(c.claim_id, **values)

    def _appeal_counted(self, c: pc.AppealCounted) -> None:
        if (row := self.claims.get(c.claim_id)) is not None:
            row.values["appeals"] += 1

    def _protection_extended(self, c: pc.ProtectionExtended) -> None:
        if (values := self._set(c.claim_id, protected_until=c.protected_until)) is not None:
            values["extensions"] += 1

    def _claims_joined(self, c: pc.ClaimsJoined) -> None:
        for claim_id in c.claim_ids:
            self._set(claim_id, conflict_id=c.conflict_id)

    def _decision_level(self, c: pc.DecisionLevelRecorded) -> None:
        # WHERE conflict_id = $1 AND decided_at = $3
        for claim_id in self._in_conflict.get(c.conflict_id, ()):
            values = self.claims[claim_id].values
            if values["decided_at"] == c.resolved_at:
                values.update(decided_level=c.level, decided_by="conflict")


def _direct_deal(e: DirectDealRecorded, policy: Policy) -> Claim:
    opened = dt.datetime.combine(e.opened_on, dt.time.min, tzinfo=dt.UTC)
    return claim_of(claim_id=e.direct_deal_id, kind="direct_deal", program_id=e.program_id, customer=e.customer,
                    products=e.products, submitted_at=opened, status="open", policy=policy)  # fmt: skip


_APPLY = {
    pc.StatusDecided: ReplayState._status_decided,
    pc.AppealCounted: ReplayState._appeal_counted,
    pc.ClaimStatusSet: lambda s, c: s._set(c.claim_id, status=c.status),
    pc.ProtectionGranted: lambda s, c: s._set(c.claim_id, approved_at=c.approved_at, protected_until=c.protected_until),
    pc.ProtectionExtended: ReplayState._protection_extended,
    pc.ClaimsJoined: ReplayState._claims_joined,
    pc.DecisionLevelRecorded: ReplayState._decision_level,
    pc.ConflictRecorded: lambda s, c: s.conflicts.recorded(c),
    pc.ConflictEscalation: lambda s, c: s.conflicts.escalated(c),
    pc.ConflictDecision: lambda s, c: s.conflicts.decided(c),
    pc.ConflictReopening: lambda s, c: s.conflicts.reopened(c),
    tc.TimerSet: lambda s, c: s.timers.set(c),
    tc.ReviewTimerSet: lambda s, c: s.timers.set(c.timer(s.policies.by_version(c.program_id, c.policy_version))),
    tc.ExpiryTimersSet: lambda s, c: [
        s.timers.set(t) for t in c.timers(s.policies.expiry_warning_days(c.ownership.program_id))
    ],
    tc.TimersCancelled: lambda s, c: s.timers.cancelled(c),
    tc.TimerCleared: lambda s, c: s.timers.cleared(c),
    pc.PolicyRecorded: lambda s, c: s.policies.record(c.event),
}
