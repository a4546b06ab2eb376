"""Appeals of decisions (SPEC section 8, "Appeal"): what the pure `domain/appeal.py` needs, read
under the program's lock (the consumer took it), and its events recorded."""

from __future__ import annotations

import datetime as dt

import asyncpg

from contracts.conflict_events import RegistrationStatusChanged
from contracts.envelope import CloudEvent, decode_data
from contracts.registration_events import RegistrationAppealed
from services.conflict import claims_repo, disputes, policy_store
from services.conflict.domain.appeal import appeal
from services.conflict.domain.claims import Claim, Rival
from services.conflict.domain.effects import claim_stream
from services.conflict.domain.policy import Policy
from services.conflict.recorder import STORE, record
from services.eventlog.events import Metadata

_DECISIONS = ("registration.approved", "registration.waitlisted", "registration.rejected")


async def appealed(conn: asyncpg.Connection, ce: CloudEvent, e: RegistrationAppealed) -> None:
    """Accept or refuse a partner's appeal (inside the consumer's transaction)."""
    claim = await claims_repo.load(conn, e.registration_id)
    if claim is None:
        return
    policy = await policy_store.by_version(conn, claim.program_id, claim.policy_version)
    rule = await decided_rule(conn, claim.claim_id)
    dispute = None
    if claim.decided_by == "conflict" and claim.conflict_id:
        dispute = await disputes.load(conn, claim.conflict_id)
    beaten_by = () if dispute is not None else await _beaten_by(conn, claim, rule, policy, e.appealed_at)
    emits = appeal(
        claim, rule, policy, e.appealed_at, cause_id=ce.id, beaten_by=beaten_by, dispute=dispute, reason=e.reason
    )
    meta = Metadata(correlation_id=claim.claim_id, causation_id=ce.id, actor=e.appealed_by, traceparent=ce.traceparent)
    await record(conn, emits, cause_id=ce.id, now=e.appealed_at, meta=meta, program_id=claim.program_id)


async def decided_rule(conn: asyncpg.Connection, claim_id: str) -> str | None:
    """The rule the registration's last decision recorded, from its own stream."""
    for r in reversed(await STORE.read_stream(conn, claim_stream(claim_id))):
        if r.event_type in _DECISIONS:
            event = decode_data("conflict", r.event_type, r.data.encode())
            assert isinstance(event, RegistrationStatusChanged)
            return event.rule
    return None


async def _beaten_by(
    conn: asyncpg.Connection, claim: Claim, rule: str | None, policy: Policy, now: dt.datetime
) -> tuple[Rival, ...]:
    """The live claims that beat `claim` under a rule: the vendor's direct deals for
    `direct_sales_priority`, otherwise the registrations holding the customer."""
    rivals = await claims_repo.rivals(conn, claim, policy)
    if rule == "direct_sales_priority":
        return tuple(r for r in rivals if r.claim.is_direct and r.claim.status == "open")
    return tuple(r for r in rivals if r.claim.holds_at(now))
