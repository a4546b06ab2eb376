"""Random event logs for replay tests: every event the conflict projections read, and the awkward
cases (duplicates, facts about unknown claims, decisions at equal instants, policies published out
of order, expiry warnings already past), written straight into the two logs."""

from __future__ import annotations

import datetime as dt
import random
import uuid

import asyncpg
import msgspec

from contracts import conflict_events as ce
from contracts import registration_events as re_
from contracts.common import ClaimRef, Customer, Money, Share
from services.conflict.domain.policy import DEFAULT_POLICY, Policy, policy_to_json

T0 = dt.datetime(2031, 3, 1, 9, 0, tzinfo=dt.UTC)
NAMES = [("Acme Corporation", "acme.com"), ("ACME Corp.", "https://www.acme.com"), ("Globex", "globex.io"),
         ("Initech GmbH", "initech.de"), ("Umbrella", "mail.example.com"), ("Hooli", None)]  # fmt: skip
STATUSES = [*ce.REGISTRATION_STATUSES, "pending_review", "info_requested", "under_review"]


class LogWriter:
    """Builds one program family's history and appends it to the logs."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.programs = [f"rp-{seed}-{i}-{uuid.uuid4().hex[:6]}" for i in range(2)]
        self.claims: list[tuple[str, str]] = []  # (program, claim id)
        self.conflicts: list[tuple[str, str]] = []
        self.versions = dict.fromkeys(self.programs, 0)
        self.instants = [T0 + dt.timedelta(minutes=i) for i in range(12)]  # shared, so times coincide
        self.rows: list[tuple[str, str, str, bytes, dt.datetime]] = []  # (log, type, program, data, recorded)
        self.clock = T0

    def build(self, events: int) -> LogWriter:
        steps = [self._submit] * 6 + [self._status] * 6 + [self._ownership] * 4 + [
            self._amend, self._let_go, self._open, self._escalate, self._resolve, self._reopen, self._breach,
            self._policy, self._direct_deal, self._release,
        ]  # fmt: skip
        while len(self.rows) < events:
            self.rnd.choice(steps)()
        return self

    async def append(self, conn: asyncpg.Connection) -> None:
        for log in ("registration", "conflict"):
            await conn.executemany(
                f"INSERT INTO {log}.events (event_id, stream_id, stream_version, event_type, program_id, data,"
                " subject, occurred_at, recorded_at) VALUES ($1, $2, 1, $3, $4, $5::jsonb, $6, $7, $7)",
                [
                    (uuid.uuid4(), f"gen-{uuid.uuid4()}", name, program, data.decode(), program, at)
                    for src, name, program, data, at in self.rows
                    if src == log
                ],
            )

    # -- helpers ------------------------------------------------------------------------------

    def _emit(self, log: str, name: str, event: msgspec.Struct, program: str) -> None:
        if self.rnd.random() < 0.9:  # otherwise recorded at the same instant as the one before
            self.clock += dt.timedelta(milliseconds=self.rnd.randint(1, 5))
        self.rows.append((log, name, program, msgspec.json.encode(event), self.clock))

    def _claim(self) -> tuple[str, str]:
        if self.claims and self.rnd.random() < 0.9:
            return self.rnd.choice(self.claims)
        return self.rnd.choice(self.programs), f"unknown-{self.rnd.randint(1, 3)}"

    def _conflict(self) -> tuple[str, str]:
        if self.conflicts and self.rnd.random() < 0.9:
            return self.rnd.choice(self.conflicts)
        return self.rnd.choice(self.programs), "no-such-conflict"

    def _instant(self) -> dt.datetime:
        return self.rnd.choice(self.instants)

    def _maybe(self, value):
        return value if self.rnd.random() < 0.7 else None

    def _customer(self) -> Customer:
        name, domain = self.rnd.choice(NAMES)
        return Customer(name=name, country=self.rnd.choice(["US", "de"]), domain=domain,
                        duns=self._maybe("12-345-6789"), tax_id=self._maybe(" de 123.456 "))  # fmt: skip

    # -- registration facts -------------------------------------------------------------------

    def _submit(self) -> None:
        if self.claims and self.rnd.random() < 0.1:
            program, rid = self.rnd.choice(self.claims)  # the same submission logged twice
        else:
            program, rid = self.rnd.choice(self.programs), str(uuid.uuid4())
            self.claims.append((program, rid))
        e = re_.RegistrationSubmitted(
            registration_id=rid, program_id=program, partner_id=f"p{self.rnd.randint(1, 3)}", partner_tier="gold",
            partner_type="reseller", submitted_by="u", customer=self._customer(),
            products=self.rnd.sample(["firewall", "vpn", "edr"], 2), deal_type=self.rnd.choice(["new", "renewal"]),
            estimated_value=Money(amount=self.rnd.choice(["1000", "2500.50", "1E+3", "oops"]), currency="USD"),
            expected_close=dt.date(2031, 6, 1), submitted_at=self._instant(),
        )  # fmt: skip
        self._emit("registration", "registration.submitted", e, program)

    def _amend(self) -> None:
        program, rid = self._claim()
        e = re_.RegistrationAmended(
            registration_id=rid, program_id=program, partner_id="p1", amended_by="u", changed=["customer"],
            customer=self._customer(), products=["vpn"], estimated_value=Money(amount="99.90", currency="EUR"),
            expected_close=dt.date(2031, 7, 1), amended_at=self._instant(),
        )  # fmt: skip
        self._emit("registration", "registration.amended", e, program)

    def _let_go(self) -> None:
        program, rid = self._claim()
        if self.rnd.random() < 0.5:
            e = re_.RegistrationWithdrawn(registration_id=rid, program_id=program, partner_id="p1", withdrawn_by="u",
                                          withdrawn_at=self._instant())  # fmt: skip
            self._emit("registration", "registration.withdrawn", e, program)
        else:
            e = re_.OutcomeReported(registration_id=rid, program_id=program, partner_id="p1", reported_by="u",
                                    result=self.rnd.choice(["won", "lost"]), closed_on=dt.date(2031, 5, 1),
                                    reported_at=self._instant())  # fmt: skip
            self._emit("registration", "registration.outcome_reported", e, program)
        if self.rnd.random() < 0.2:  # facts the replay does not read
            e = re_.ExtensionRequested(registration_id=rid, program_id=program, partner_id="p1", requested_by="u",
                                       requested_at=self._instant())  # fmt: skip
            self._emit("registration", "registration.extension_requested", e, program)

    # -- conflict events ----------------------------------------------------------------------

    def _status(self) -> None:
        program, rid = self._claim()
        status = self.rnd.choice(STATUSES)
        e = ce.RegistrationStatusChanged(
            registration_id=rid, program_id=program, partner_id="p1", status=status,
            reason=self.rnd.choice([None, "authority_decision", "sla_default", "first_to_register"]),
            rule=self.rnd.choice([None, "appeal", "review"]), policy_version=self.rnd.randint(0, 3),
            protected_until=self._maybe(self._instant() + dt.timedelta(days=90)),
            attribution_percent=self._maybe(self.rnd.choice([50, 100])),
            conflict_id=self._maybe(self._conflict()[1]), decided_at=self._instant(),
        )  # fmt: skip
        self._emit("conflict", f"registration.{status}", e, program)

    def _ownership(self) -> None:
        program, rid = self._claim()
        name = self.rnd.choice(["granted", "granted", "extended", "released", "expiring"])
        at = self._instant()
        until = self.rnd.choice([None, at + dt.timedelta(days=90), at + dt.timedelta(hours=3), at])
        e = ce.OwnershipChanged(claim_id=rid, program_id=program, valid_from=at, valid_until=until, at=at)
        self._emit("conflict", f"ownership.{name}", e, program)

    def _open(self) -> None:
        if self.conflicts and self.rnd.random() < 0.1:
            program, cid = self.rnd.choice(self.conflicts)  # opened twice
        else:
            program, cid = self.rnd.choice(self.programs), str(uuid.uuid4())
            self.conflicts.append((program, cid))
        refs = [ClaimRef(claim_id=self._claim()[1], kind="registration", submitted_at=T0) for _ in range(2)]
        e = ce.ConflictOpened(conflict_id=cid, program_id=program, claims=refs, policy_version=1,
                              opened_at=self._instant())  # fmt: skip
        self._emit("conflict", "conflict.opened", e, program)

    def _escalate(self) -> None:
        program, cid = self._conflict()
        at = self._instant()
        e = ce.ConflictEscalated(conflict_id=cid, program_id=program, level=self.rnd.randint(1, 3),
                                 authority_role="channel_manager", due_at=at + dt.timedelta(hours=48), escalated_at=at)  # fmt: skip
        self._emit("conflict", "conflict.escalated", e, program)

    def _resolve(self) -> None:
        program, cid = self._conflict()
        e = ce.ConflictResolved(
            conflict_id=cid, program_id=program, outcome="split", shares=[Share(claim_id="x", percent=50)],
            rationale="both", reason="authority_decision", level=self.rnd.randint(1, 3), decided_by="cm",
            resolved_at=self._instant(),
        )  # fmt: skip
        self._emit("conflict", "conflict.resolved", e, program)

    def _reopen(self) -> None:
        program, cid = self._conflict()
        e = ce.ConflictReopened(conflict_id=cid, program_id=program, appealed_registration_id=self._claim()[1],
                                reason=self._maybe("new evidence"), level=2, reopened_at=self._instant())  # fmt: skip
        self._emit("conflict", "conflict.reopened", e, program)

    def _breach(self) -> None:
        program, cid = self._conflict()
        e = ce.SlaBreached(program_id=program, conflict_id=self._maybe(cid), level=self.rnd.randint(1, 3),
                           due_at=self._instant(), breached_at=self._instant())  # fmt: skip
        self._emit("conflict", "sla.breached", e, program)

    def _policy(self) -> None:
        program = self.rnd.choice(self.programs)
        if self.rnd.random() < 0.8:
            self.versions[program] += 1
        version = max(1, self.versions[program] - self.rnd.choice([0, 0, 0, 1]))  # now and then an old one again
        policy = _policy(self.rnd, version)
        e = ce.PolicyPublished(program_id=program, version=version, policy=policy_to_json(policy),
                               published_by="admin", published_at=self._instant())  # fmt: skip
        self._emit("conflict", "policy.published", e, program)

    def _direct_deal(self) -> None:
        program = self.rnd.choice(self.programs)
        did = self.rnd.choice(self.claims)[1] if self.claims and self.rnd.random() < 0.1 else str(uuid.uuid4())
        self.claims.append((program, did))
        e = ce.DirectDealRecorded(direct_deal_id=did, program_id=program, customer=self._customer(),
                                  products=["edr"], owner="ae", opened_on=dt.date(2031, 2, 1), recorded_by="admin",
                                  recorded_at=self._instant())  # fmt: skip
        self._emit("conflict", "direct_deal.recorded", e, program)

    def _release(self) -> None:
        program, did = self._claim()
        e = ce.DirectDealReleased(direct_deal_id=did, program_id=program, released_by="admin",
                                  released_at=self._instant())  # fmt: skip
        self._emit("conflict", "direct_deal.released", e, program)


def _policy(rnd: random.Random, version: int) -> Policy:
    """A policy whose warning, review SLA and ignored domains vary (they shape timers and identities)."""
    return msgspec.structs.replace(
        DEFAULT_POLICY,
        expiry_warning_days=rnd.choice([0, 0.5, 14, 1 / 3]),
        review=msgspec.structs.replace(DEFAULT_POLICY.review, sla_hours=rnd.choice([0.001, 24, 48.5])),
        match=msgspec.structs.replace(DEFAULT_POLICY.match, ignore_domains=rnd.choice([[], ["acme.com"]])),
        version=version,
    )
