"""Policies per program: the version in force, and publishing a new one as `policy.published`."""

from __future__ import annotations

import datetime as dt

import asyncpg
import msgspec

from contracts.conflict_events import PolicyPublished
from services.conflict.domain.effects import Emit
from services.conflict.domain.policy import DEFAULT_POLICY, Policy, policy_to_json
from services.eventlog.db import transaction_local

_decoder = msgspec.json.Decoder(Policy)


async def in_force(conn: asyncpg.Connection, program_id: str) -> tuple[Policy, int]:
    """The latest published policy of the program (version 0, the default, until one is published).

    Remembered for the rest of the transaction: policies are published under the program's lock,
    which the deciding transactions hold."""
    local = transaction_local(conn)
    key = ("policy", program_id)
    if local is not None and key in local:
        return local[key]
    found = await _latest(conn, program_id)
    if local is not None:
        local[key] = found
    return found


def remember(local: dict, program_id: str, row: asyncpg.Record | tuple | None) -> None:
    """Keep for the transaction the latest policy, read under the program's lock as (version, policy
    text), or None for none published; this process keeps it too (`last_seen`)."""
    local[("policy", program_id)] = _seen[program_id] = _found(row)


# the policy each program had when this process last took its lock
_seen: dict[str, tuple[Policy, int]] = {}


def last_seen(program_id: str) -> tuple[Policy, int] | None:
    """The program's policy in force when this process last read it under the program's lock (None
    if it never did): what a statement that takes the lock may guess it is, before it is held."""
    return _seen.get(program_id)


async def _latest(conn: asyncpg.Connection, program_id: str) -> tuple[Policy, int]:
    row = await conn.fetchrow(
        "SELECT version, policy::text FROM conflict.policies WHERE program_id = $1 ORDER BY version DESC LIMIT 1",
        program_id,
    )
    return _found(row)


def _found(row: asyncpg.Record | tuple | None) -> tuple[Policy, int]:
    if row is None:
        return DEFAULT_POLICY, 0
    return _decoder.decode(row[1]), row[0]


async def by_version(conn: asyncpg.Connection, program_id: str, version: int) -> Policy:
    if version == 0:
        return DEFAULT_POLICY
    text = await conn.fetchval(
        "SELECT policy::text FROM conflict.policies WHERE program_id = $1 AND version = $2", program_id, version
    )
    return _decoder.decode(text) if text else DEFAULT_POLICY


def publication(program_id: str, policy: Policy, version: int, actor: str, now: dt.datetime) -> Emit:
    return Emit(
        f"policy-{program_id}",
        "policy.published",
        PolicyPublished(
            program_id=program_id,
            version=version,
            policy=policy_to_json(policy),
            published_by=actor,
            published_at=now,
        ),
    )


async def next_version(conn: asyncpg.Connection, program_id: str) -> int:
    current = await conn.fetchval("SELECT max(version) FROM conflict.policies WHERE program_id = $1", program_id)
    return (current or 0) + 1


async def project(conn: asyncpg.Connection, e: PolicyPublished) -> None:
    if (local := transaction_local(conn)) is not None:
        local.pop(("policy", e.program_id), None)
    await conn.execute(
        "INSERT INTO conflict.policies (program_id, version, policy, published_at) VALUES ($1, $2, $3::jsonb, $4)"
        " ON CONFLICT DO NOTHING",
        e.program_id,
        e.version,
        msgspec.json.encode(e.policy).decode(),
        e.published_at,
    )
