"""Running the pure rules against the projections: deciding tie groups and re-evaluating waitlists."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

import asyncpg

from contracts.common import Customer, Evidence
from contracts.registration_events import RegistrationAmended, RegistrationSubmitted
from services.conflict import claims_repo
from services.conflict.domain.claims import Claim, Rival, Situation, collision
from services.conflict.domain.effects import effects_of
from services.conflict.domain.identity import identity_of
from services.conflict.domain.policy import Policy
from services.conflict.domain.rules import Judgement, judge
from services.conflict.recorder import record
from services.eventlog.events import Metadata


def claim_of(
    *,
    claim_id: str,
    kind: str,
    program_id: str,
    customer: Customer,
    products: list[str],
    submitted_at: dt.datetime,
    status: str,
    policy: Policy,
    partner_id: str | None = None,
    tier: str | None = None,
    deal_type: str | None = None,
    amount: str | None = None,
    currency: str | None = None,
) -> Claim:
    try:
        value = Decimal(amount) if amount is not None else None
    except InvalidOperation:
        value = None
    return Claim(
        claim_id=claim_id,
        kind=kind,
        program_id=program_id,
        identity=identity_of(
            customer.name,
            customer.country,
            customer.domain,
            customer.duns,
            customer.tax_id,
            ignore_domains=policy.match.ignore_domains,
        ),
        products=tuple(products),
        submitted_at=submitted_at,
        status=status,
        partner_id=partner_id,
        tier=tier,
        deal_type=deal_type,
        amount=value,
        currency=currency,
    )


def submitted_claim(e: RegistrationSubmitted, policy: Policy) -> Claim:
    """The claim a submission makes, its identity keyed under the policy in force."""
    return claim_of(
        claim_id=e.registration_id,
        kind="registration",
        program_id=e.program_id,
        customer=e.customer,
        products=e.products,
        submitted_at=e.submitted_at,
        status="pending",
        policy=policy,
        partner_id=e.partner_id,
        tier=e.partner_tier,
        deal_type=e.deal_type,
        amount=e.estimated_value.amount,
        currency=e.estimated_value.currency,
    )


def amended_claim(current: Claim, e: RegistrationAmended, policy: Policy) -> Claim:
    """The claim with the amended customer, products and value."""
    return claim_of(
        claim_id=current.claim_id,
        kind="registration",
        program_id=e.program_id,
        customer=e.customer,
        products=e.products,
        submitted_at=current.submitted_at,
        status=current.status,
        policy=policy,
        partner_id=current.partner_id,
        tier=current.tier,
        deal_type=current.deal_type,
        amount=e.estimated_value.amount,
        currency=e.estimated_value.currency,
    )


async def situation(conn: asyncpg.Connection, group: tuple[Claim, ...], policy: Policy) -> Situation:
    members = {c.claim_id for c in group}
    rivals: dict[str, Rival] = {}
    history: dict[str, Claim] = {}
    # closed deals matter only to incumbency, which only a renewal can invoke
    incumbency = "incumbent_on_renewal" in policy.rules
    for c in group:
        for r in await claims_repo.rivals(conn, c, policy, exclude=members):
            rivals.setdefault(r.claim.claim_id, r)
    if incumbency and any(c.deal_type == "renewal" for c in (*group, *(r.claim for r in rivals.values()))):
        for c in group:
            for h in await claims_repo.history(conn, c, policy):
                history.setdefault(h.claim_id, h)
    return Situation(group, tuple(rivals.values()), tuple(history.values()))


def _within_group(group: tuple[Claim, ...], policy: Policy) -> list[Evidence]:
    out = []
    for i, a in enumerate(group):
        for b in group[i + 1 :]:
            ev = collision(a, b, policy.match.name_similarity, policy.match.require_product_overlap)
            if ev is not None:
                out.append(ev)
    return out


async def decide(
    conn: asyncpg.Connection,
    group: tuple[Claim, ...],
    policy: Policy,
    version: int,
    now: dt.datetime,
    cause_id: str,
    meta: Metadata,
) -> Judgement:
    """Judge `group` against the live claims and record what follows (caller holds the program lock)."""
    s = await situation(conn, group, policy)
    judgement = judge(s, policy, now)
    extra = _within_group(group, policy)
    if extra:
        judgement = Judgement(
            judgement.outcomes, judgement.trail, judgement.conflict_claims, judgement.evidence + tuple(extra)
        )
    emits = effects_of(judgement, policy, version, now, cause_id)
    await record(conn, emits, cause_id=cause_id, now=now, meta=meta, program_id=group[0].program_id)
    return judgement


async def reevaluate_waitlist(
    conn: asyncpg.Connection,
    released: Claim,
    policy: Policy,
    version: int,
    now: dt.datetime,
    cause_id: str,
    meta: Metadata,
) -> None:
    """The holder let go: waitlisted claims are judged again, oldest first, and may be approved."""
    for waiting in await claims_repo.waitlisted_behind(conn, released, policy):
        fresh = await claims_repo.load(conn, waiting.claim_id)
        if fresh is None or fresh.status != "waitlisted":
            continue
        await decide(conn, (fresh,), policy, version, now, f"{cause_id}/{fresh.claim_id}", meta)
