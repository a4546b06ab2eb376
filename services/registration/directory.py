"""Programs and partners: event-sourced (`program.updated`, `partner.enrolled`) with a read model."""

from __future__ import annotations

import datetime as dt

import asyncpg

from contracts.envelope import encode
from contracts.registration_events import PartnerEnrolled, ProgramUpdated
from services.eventlog.events import ANY_VERSION, Metadata, NewEvent
from services.registration.domain.decide import Partner
from services.registration.repository import STORE

PARTNER_TYPES = ("reseller", "distributor", "msp", "si", "referral")
PARTNERS = "partners"  # the runtime's PartnerCache, in `Runtime.extras`


async def put_program(conn: asyncpg.Connection, program_id: str, name: str, meta: Metadata, now: dt.datetime) -> dict:
    event = ProgramUpdated(program_id=program_id, name=name, updated_at=now)
    async with conn.transaction():
        await STORE.append(
            conn,
            f"program-{program_id}",
            ANY_VERSION,
            [NewEvent("program.updated", encode(event), program_id, now)],
            program_id=program_id,
            metadata=meta,
        )
        await conn.execute(
            "INSERT INTO registration.programs (program_id, name, updated_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (program_id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at",
            program_id,
            name,
            now,
        )
    return {"program_id": program_id, "name": name, "updated_at": now.isoformat().replace("+00:00", "Z")}


async def program_exists(conn: asyncpg.Connection, program_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM registration.programs WHERE program_id = $1", program_id))


async def enroll_partner(
    conn: asyncpg.Connection,
    program_id: str,
    partner_id: str,
    name: str,
    tier: str,
    type_: str,
    meta: Metadata,
    now: dt.datetime,
) -> dict:
    event = PartnerEnrolled(
        program_id=program_id, partner_id=partner_id, name=name, tier=tier, type=type_, enrolled_at=now
    )
    async with conn.transaction():
        await STORE.append(
            conn,
            f"partner-{program_id}-{partner_id}",
            ANY_VERSION,
            [NewEvent("partner.enrolled", encode(event), partner_id, now)],
            program_id=program_id,
            metadata=meta,
        )
        await conn.execute(
            "INSERT INTO registration.partners (program_id, partner_id, name, tier, type, enrolled_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (program_id, partner_id) DO UPDATE SET"
            " name = excluded.name, tier = excluded.tier, type = excluded.type, enrolled_at = excluded.enrolled_at",
            program_id,
            partner_id,
            name,
            tier,
            type_,
            now,
        )
    return {"program_id": program_id, "partner_id": partner_id, "name": name, "tier": tier, "type": type_}


async def find_partner(conn: asyncpg.Connection, program_id: str, partner_id: str) -> Partner | None:
    row = await conn.fetchrow(
        "SELECT tier, type FROM registration.partners WHERE program_id = $1 AND partner_id = $2", program_id, partner_id
    )
    return Partner(program_id, partner_id, row["tier"], row["type"]) if row else None


class PartnerCache:
    """Partners as this process last read them, so that a submission needs no read of its own.

    A stale entry never makes a wrong registration: the event states the partner's tier and type,
    and the statement recording it checks them (migration 0011); refused, the submitter forgets
    the entry and reads the partner again. Only partners found are kept, at most `size` of them.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._known: dict[tuple[str, str], Partner] = {}

    async def find(self, pool: asyncpg.Pool, program_id: str, partner_id: str) -> Partner | None:
        key = (program_id, partner_id)
        if (partner := self._known.get(key)) is not None:
            return partner
        async with pool.acquire() as conn:
            partner = await find_partner(conn, program_id, partner_id)
        if partner is not None:
            if len(self._known) >= self.size:
                del self._known[next(iter(self._known))]  # the oldest entry
            self._known[key] = partner
        return partner

    def forget(self, program_id: str, partner_id: str) -> None:
        self._known.pop((program_id, partner_id), None)
