"""Disputes against the log: a conflict's state from its stream, authorities' decisions and SLA timers.

The pure state machines (`domain/dispute.py`, `domain/decisions.py`, `domain/escalation.py`) decide;
this module reads what they need under the program's lock and records what they return.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from contracts.conflict_events import ConflictResolved
from contracts.envelope import decode_data
from services.conflict import claims_repo, policy_store, timers
from services.conflict.deciding import reevaluate_waitlist
from services.conflict.domain import decisions, escalation
from services.conflict.domain.claims import Claim
from services.conflict.domain.dispute import Dispute, fold
from services.conflict.domain.effects import Emit, conflict_stream
from services.conflict.recorder import STORE, lock_program, record
from services.eventlog.events import Metadata


async def load(conn: asyncpg.Connection, conflict_id: str) -> Dispute | None:
    """The conflict folded from its own stream; None when there is no such conflict."""
    recorded = await STORE.read_stream(conn, conflict_stream(conflict_id))
    return fold(decode_data("conflict", r.event_type, r.data.encode()) for r in recorded)


async def claims_of(conn: asyncpg.Connection, d: Dispute) -> list[Claim]:
    return await claims_repo.load_many(conn, d.claim_ids)


async def decide(
    conn: asyncpg.Connection,
    conflict_id: str,
    decision: decisions.Decision,
    *,
    actor: str,
    authority_level: int | None,
    now: dt.datetime,
    meta: Metadata,
) -> ConflictResolved:
    """Apply an authority's decision (raises the domain's errors); call inside a transaction after
    checking that the caller sees the conflict's program."""
    found = await load(conn, conflict_id)
    if found is None:
        raise LookupError(conflict_id)
    await lock_program(conn, found.program_id)
    d = await load(conn, conflict_id)  # again, now that no one else decides in this program
    assert d is not None
    claims = await claims_of(conn, d)
    policy = await policy_store.by_version(conn, d.program_id, d.policy_version)
    emits = decisions.decide(d, claims, decision, policy, now, actor=actor, authority_level=authority_level)
    cause_id = f"decision:{conflict_id}:{d.resolutions}"
    await record(conn, emits, cause_id=cause_id, now=now, meta=meta, program_id=d.program_id)
    await _free_if_nobody_won(conn, claims, emits, now, cause_id, meta)
    return emits[-1].event


async def fire_sla(conn: asyncpg.Connection, t: timers.Timer) -> None:
    """A level's `due_at` passed: breach it and escalate, or apply `on_final_breach` (scheduler firing)."""
    d = await load(conn, t.ref_id)
    if d is None:
        return
    level = int(t.payload.get("level", d.level))
    if not escalation.sla_due(d, level, t.due_at):
        return  # decided, or already past that level: the timer is stale
    claims = await claims_of(conn, d)
    policy = await policy_store.by_version(conn, d.program_id, d.policy_version)
    emits = escalation.breach(d, level, claims, policy, t.due_at)
    cause_id = f"timer:{t.timer_id}"
    meta = Metadata(correlation_id=d.conflict_id, causation_id=t.timer_id, actor="scheduler")
    await record(conn, emits, cause_id=cause_id, now=t.due_at, meta=meta, program_id=d.program_id)
    await _free_if_nobody_won(conn, claims, emits, t.due_at, cause_id, meta)


async def _free_if_nobody_won(
    conn: asyncpg.Connection,
    before: list[Claim],
    emits: list[Emit],
    now: dt.datetime,
    cause_id: str,
    meta: Metadata,
) -> None:
    """A decision that took the customer from its holder and gave it to no one lets the claims
    waiting behind that holder be judged again, as when a holder withdraws."""
    if not any(e.name == "conflict.resolved" for e in emits):
        return
    if any(e.name == "registration.approved" for e in emits):
        return
    holders = [c for c in before if c.status == "approved" and not c.is_direct]
    if not holders:
        return
    policy, version = await policy_store.in_force(conn, holders[0].program_id)
    for c in holders:
        await reevaluate_waitlist(conn, c, policy, version, now, f"{cause_id}/free/{c.claim_id}", meta)
