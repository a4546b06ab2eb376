"""The vendor's own claims: a direct deal beats later registrations, and opens a conflict on a
customer a partner already owns."""

from __future__ import annotations

import datetime as dt

import asyncpg

from contracts.common import Customer, RuleVerdict
from contracts.conflict_events import DirectDealRecorded, DirectDealReleased
from contracts.envelope import encode
from services.conflict import claims_repo, policy_store
from services.conflict.deciding import claim_of
from services.conflict.domain.effects import Emit, open_conflict
from services.conflict.domain.rules import Judgement
from services.conflict.recorder import lock_program, record
from services.eventlog.events import Metadata
from services.ids import new_id


def stream(deal_id: str) -> str:
    return f"directdeal-{deal_id}"


async def record_deal(
    conn: asyncpg.Connection,
    *,
    program_id: str,
    customer: Customer,
    products: list[str],
    owner: str,
    opened_on: dt.date,
    expected_close: dt.date | None,
    external_ref: str | None,
    actor: str,
    now: dt.datetime,
    meta: Metadata,
) -> DirectDealRecorded:
    await lock_program(conn, program_id)
    policy, version = await policy_store.in_force(conn, program_id)
    deal_id = str(new_id())
    opened = dt.datetime.combine(opened_on, dt.time.min, tzinfo=dt.UTC)
    claim = claim_of(
        claim_id=deal_id,
        kind="direct_deal",
        program_id=program_id,
        customer=customer,
        products=products,
        submitted_at=opened,
        status="open",
        policy=policy,
        partner_id=None,
    )
    claim = await claims_repo.insert(conn, claim, encode(customer).decode())
    event = DirectDealRecorded(
        direct_deal_id=deal_id,
        program_id=program_id,
        external_ref=external_ref,
        customer=customer,
        products=products,
        owner=owner,
        opened_on=opened_on,
        expected_close=expected_close,
        recorded_by=actor,
        recorded_at=now,
    )
    emits = [Emit(stream(deal_id), "direct_deal.recorded", event)]
    holders = [r for r in await claims_repo.rivals(conn, claim, policy) if r.claim.holds_at(now)]
    if holders:
        judgement = Judgement(
            trail=(
                RuleVerdict(
                    rule="direct_sales_priority", verdict="no_separation", detail="a partner already owns the customer"
                ),
            ),
            evidence=tuple(r.evidence for r in holders),
        )
        emits += open_conflict(
            (claim, *(r.claim for r in holders)),
            judgement,
            policy,
            version,
            now,
            f"directdeal:{deal_id}",
            cause="direct_deal",
        )
    await record(conn, emits, cause_id=f"directdeal:{deal_id}", now=now, meta=meta, program_id=program_id)
    return event


async def release_deal(
    conn: asyncpg.Connection, program_id: str, deal_id: str, actor: str, now: dt.datetime, meta: Metadata
) -> bool | None:
    """Release the deal; None when there is no such deal in the program, False when already released."""
    await lock_program(conn, program_id)
    claim = await claims_repo.load(conn, deal_id)
    if claim is None or claim.program_id != program_id or not claim.is_direct:
        return None
    if claim.status != "open":
        return False
    event = DirectDealReleased(direct_deal_id=deal_id, program_id=program_id, released_by=actor, released_at=now)
    await record(
        conn,
        [Emit(stream(deal_id), "direct_deal.released", event)],
        cause_id=f"release:{deal_id}",
        now=now,
        meta=meta,
        program_id=program_id,
    )
    return True
