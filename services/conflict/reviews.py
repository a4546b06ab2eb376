"""Vendor review against the projections: the queue, a reviewer's action, and the review SLA timer."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import msgspec

from contracts.conflict_events import RegistrationStatusChanged
from services.conflict import claims_repo, policy_store, timers
from services.conflict.domain import review
from services.conflict.domain.claims import Claim
from services.conflict.domain.policy import Policy, review_sla
from services.conflict.recorder import lock_program, record
from services.eventlog.events import Metadata


async def awaiting(conn: asyncpg.Connection, registration_id: str) -> Claim | None:
    """The registration as the conflict service knows it (None for an unknown id or a direct deal)."""
    claim = await claims_repo.load(conn, registration_id)
    return None if claim is None or claim.is_direct else claim


async def act(
    conn: asyncpg.Connection,
    claim: Claim,
    action: str,
    *,
    actor: str,
    now: dt.datetime,
    meta: Metadata,
    reason: str | None = None,
    comment: str | None = None,
) -> RegistrationStatusChanged:
    """Apply a reviewer's action (raises `review.NotAwaitingReview` / `review.ReviewInvalid`); call
    inside a transaction. Returns the registration's new status event."""
    await lock_program(conn, claim.program_id)
    fresh = await claims_repo.load(conn, claim.claim_id)
    assert fresh is not None
    policy = await policy_store.by_version(conn, fresh.program_id, fresh.policy_version)
    emits = review.review(fresh, action, policy, fresh.policy_version, now, actor=actor, reason=reason, comment=comment)
    since = fresh.decided_at.isoformat() if fresh.decided_at else "-"
    await record(
        conn, emits, cause_id=f"review:{fresh.claim_id}:{since}", now=now, meta=meta, program_id=fresh.program_id
    )
    return emits[0].event


async def fire_review_sla(conn: asyncpg.Connection, t: timers.Timer) -> None:
    """The review SLA passed: `on_breach` decides, unless the registration is no longer waiting for
    the vendor since then (scheduler firing)."""
    claim = await awaiting(conn, t.ref_id)
    if claim is None:
        return
    policy = await policy_store.by_version(conn, claim.program_id, claim.policy_version)
    emits = review.breach(claim, policy, claim.policy_version, t.due_at)
    meta = Metadata(correlation_id=claim.claim_id, causation_id=t.timer_id, actor="scheduler")
    await record(conn, emits, cause_id=f"timer:{t.timer_id}", now=t.due_at, meta=meta, program_id=claim.program_id)


_QUEUE = """
    SELECT seq, claim_id, program_id, partner_id, tier, deal_type, products, amount, currency, customer::text,
           submitted_at, status, decided_at, policy_version
    FROM conflict.claims
    WHERE kind = 'registration' AND status = ANY($1::text[]) AND seq > $2 AND ($3::text IS NULL OR program_id = $3)
    ORDER BY seq LIMIT $4
"""


async def queue(
    conn: asyncpg.Connection, program_id: str | None, states: list[str], after: int, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Registrations awaiting review, oldest first, after sequence `after`; returns the page and the
    sequence to continue after (None on the last page)."""
    rows = await conn.fetch(_QUEUE, states, after, program_id, limit + 1)
    policies: dict[tuple[str, int], Policy] = {}
    items = []
    for r in rows[:limit]:
        key = (r["program_id"], r["policy_version"])
        if key not in policies:
            policies[key] = await policy_store.by_version(conn, *key)
        waiting = r["status"] == "pending_review" and r["decided_at"] is not None
        due = r["decided_at"] + review_sla(policies[key]) if waiting else None
        items.append(
            {
                "registration_id": r["claim_id"],
                "program_id": r["program_id"],
                "partner_id": r["partner_id"],
                "tier": r["tier"],
                "customer": msgspec.json.decode(r["customer"]),
                "products": list(r["products"]),
                "deal_type": r["deal_type"],
                "estimated_value": {"amount": str(r["amount"]), "currency": r["currency"]},
                "submitted_at": r["submitted_at"],
                "state": r["status"],
                "waiting_since": r["decided_at"],
                "review_due_at": due,
            }
        )
    more = rows[limit - 1]["seq"] if len(rows) > limit else None
    return items, more
