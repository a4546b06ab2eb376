"""Idempotency keys for POST /v1/registrations, scoped per partner, kept 24 hours.

The key row is inserted in the same transaction as the registration it produced, so two
concurrent requests with one key record one registration: the second blocks on the key's unique
index until the first commits, then finds the stored response.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import asyncpg
import msgspec

TTL = dt.timedelta(hours=24)


@dataclass(frozen=True)
class StoredResponse:
    request_hash: str
    status_code: int
    headers: dict[str, str]
    body: bytes


def request_hash(body: bytes) -> str:
    """Hash of the request's JSON value (so whitespace and key order do not matter)."""
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted")
    except msgspec.DecodeError:
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


async def find(
    conn: asyncpg.Connection, program_id: str, partner_id: str, key: str, now: dt.datetime
) -> StoredResponse | None:
    row = await conn.fetchrow(
        "SELECT request_hash, status_code, headers::text, body FROM registration.idempotency_keys"
        " WHERE program_id = $1 AND partner_id = $2 AND key = $3 AND created_at > $4",
        program_id,
        partner_id,
        key,
        now - TTL,
    )
    if row is None:
        return None
    return StoredResponse(row[0], row[1], msgspec.json.decode(row[2]), bytes(row[3]))


async def remember(
    conn: asyncpg.Connection, program_id: str, partner_id: str, key: str, response: StoredResponse, now: dt.datetime
) -> None:
    """Store the response; raises asyncpg.UniqueViolationError when a concurrent request won."""
    await conn.execute(
        "DELETE FROM registration.idempotency_keys WHERE program_id = $1 AND partner_id = $2 AND key = $3"
        " AND created_at <= $4",
        program_id,
        partner_id,
        key,
        now - TTL,
    )
    await conn.execute(
        "INSERT INTO registration.idempotency_keys"
        " (program_id, partner_id, key, request_hash, status_code, headers, body, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)",
        program_id,
        partner_id,
        key,
        response.request_hash,
        response.status_code,
        msgspec.json.encode(response.headers).decode(),
        response.body,
        now,
    )
