"""An in-memory stand-in for the conflict service's projections, for pure dispute tests.

It applies `Emit`s the way `services/conflict/projector.py` applies events to `conflict.claims`, so
a test can drive the pure state machines step after step with a moved clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from contracts.conflict_events import ConflictOpened, ConflictResolved, OwnershipChanged, RegistrationStatusChanged
from services.conflict.domain.claims import Claim
from services.conflict.domain.dispute import Dispute, fold
from services.conflict.domain.effects import Emit, conflict_stream
from services.conflict.domain.identity import Identity

T0 = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)
_BY_CONFLICT = {"authority_decision", "sla_default"}


def claim(
    claim_id: str,
    *,
    minutes: float = 0,
    seq: int = 0,
    tier: str = "gold",
    status: str = "pending",
    kind: str = "registration",
    **extra,
) -> Claim:
    """A claim on Acme submitted `minutes` after T0."""
    return Claim(
        claim_id=claim_id,
        kind=kind,
        program_id="acme",
        identity=Identity(name_key="acme", country="US", domain="acme.com"),
        products=("firewall",),
        submitted_at=T0 + dt.timedelta(minutes=minutes),
        status=status,
        partner_id=None if kind == "direct_deal" else f"partner-{claim_id}",
        tier=tier,
        seq=seq,
        amount=None,
        currency=None,
        **extra,
    )


@dataclass
class World:
    claims: dict[str, Claim]
    log: list[Emit] = field(default_factory=list)

    @classmethod
    def of(cls, *claims: Claim) -> World:
        return cls({c.claim_id: c for c in claims})

    def apply(self, emits: list[Emit]) -> list[Emit]:
        for e in emits:
            self.log.append(e)
            match e.event:
                case RegistrationStatusChanged() as s:
                    self._status(s)
                case OwnershipChanged() as o if e.name == "ownership.granted":
                    self.claims[o.claim_id] = replace(
                        self.claims[o.claim_id], approved_at=o.valid_from, protected_until=o.valid_until
                    )
                case ConflictOpened() as o:
                    for ref in o.claims:
                        self.claims[ref.claim_id] = replace(self.claims[ref.claim_id], conflict_id=o.conflict_id)
                case ConflictResolved() as r:
                    for cid, c in self.claims.items():
                        if c.conflict_id == r.conflict_id and c.decided_at == r.resolved_at:
                            self.claims[cid] = replace(c, decided_level=r.level, decided_by="conflict")
        return emits

    def _status(self, s: RegistrationStatusChanged) -> None:
        if s.status in ("appeal_refused", "extension_denied"):
            return
        c = self.claims[s.registration_id]
        decided_by = c.decided_by
        if s.status in ("approved", "waitlisted", "rejected"):
            decided_by = "conflict" if s.reason in _BY_CONFLICT else "rule"
        appeals = c.appeals + (1 if s.status == "under_review" and s.rule == "appeal" else 0)
        self.claims[c.claim_id] = replace(
            c,
            status=s.status,
            protected_until=s.protected_until,
            attribution_percent=s.attribution_percent,
            conflict_id=s.conflict_id or c.conflict_id,
            decided_at=s.decided_at,
            policy_version=s.policy_version,
            decided_by=decided_by,
            appeals=appeals,
        )

    def dispute(self, conflict_id: str) -> Dispute | None:
        return fold(e.event for e in self.log if e.stream == conflict_stream(conflict_id))

    def conflict_ids(self) -> list[str]:
        return list(dict.fromkeys(e.event.conflict_id for e in self.log if e.name == "conflict.opened"))

    def named(self, name: str) -> list[Emit]:
        return [e for e in self.log if e.name == name]

    def listed(self) -> list[Claim]:
        return list(self.claims.values())
