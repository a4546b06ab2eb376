"""Tie groups (tie_window_minutes > 0): claims on one customer arriving within the window are
decided together, once, when the window of the group's first claim closes."""

from __future__ import annotations

import asyncpg

from services.conflict import claims_repo, policy_store, timers
from services.conflict.deciding import decide
from services.conflict.domain.claims import Claim
from services.conflict.domain.policy import Policy, tie_window
from services.eventlog.events import Metadata


async def join_or_open(conn: asyncpg.Connection, claim: Claim, policy: Policy, now) -> str:
    """Join the open group of a claim this one collides with, or open one; returns the group id."""
    rivals = await claims_repo.rivals(conn, claim, policy)
    group_id = await conn.fetchval(
        "SELECT group_id FROM conflict.tie_groups WHERE program_id = $1 AND members && $2::text[]"
        " ORDER BY closes_at LIMIT 1",
        claim.program_id,
        [r.claim.claim_id for r in rivals],
    )
    if group_id is not None:
        await conn.execute(
            "UPDATE conflict.tie_groups SET members = array_append(members, $2) WHERE group_id = $1",
            group_id,
            claim.claim_id,
        )
        return group_id
    closes_at = claim.submitted_at + tie_window(policy)
    await conn.execute(
        "INSERT INTO conflict.tie_groups (group_id, program_id, closes_at, members) VALUES ($1, $2, $3, $4)",
        claim.claim_id,
        claim.program_id,
        closes_at,
        [claim.claim_id],
    )
    await timers.schedule(conn, f"tie:{claim.claim_id}", claim.program_id, "tie_close", claim.claim_id, closes_at)
    return claim.claim_id


async def close(conn: asyncpg.Connection, timer: timers.Timer) -> None:
    """The window closed: decide the whole group against the claims already live."""
    members = await conn.fetchval("DELETE FROM conflict.tie_groups WHERE group_id = $1 RETURNING members", timer.ref_id)
    if not members:
        return
    claims = [c for c in await claims_repo.load_many(conn, members) if c.status == "pending"]
    if not claims:
        return
    policy, version = await policy_store.in_force(conn, timer.program_id)
    meta = Metadata(causation_id=timer.timer_id, actor="rules")
    await decide(conn, tuple(claims), policy, version, timer.due_at, f"timer:{timer.timer_id}", meta)
