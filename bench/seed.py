"""Programs and partners, enrolled through the registration API as an admin would, and their tokens."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx

from bench.data import Partner
from services.tokens import mint

_TTL = dt.timedelta(hours=3)


def admin_token(key: str) -> str:
    return mint(key, role="admin", now=dt.datetime.now(dt.UTC), ttl=_TTL)


def partner_tokens(key: str, program_id: str, partners: list[Partner]) -> list[str]:
    now = dt.datetime.now(dt.UTC)
    return [
        mint(key, role="partner", now=now, program_id=program_id, partner_id=p.partner_id, ttl=_TTL) for p in partners
    ]


async def enrol(registration_url: str, key: str, program_id: str, partners: list[Partner]) -> None:
    """Create `program_id` and enrol every partner in it (idempotent PUTs)."""
    headers = {"Authorization": f"Bearer {admin_token(key)}"}
    async with httpx.AsyncClient(base_url=registration_url, headers=headers, timeout=30.0) as client:
        r = await client.put(f"/v1/programs/{program_id}", json={"name": f"Benchmark {program_id}"})
        r.raise_for_status()
        semaphore = asyncio.Semaphore(8)

        async def put(p: Partner) -> None:
            async with semaphore:
                body = {"name": p.name, "tier": p.tier, "type": p.type}
                (await client.put(f"/v1/programs/{program_id}/partners/{p.partner_id}", json=body)).raise_for_status()

        await asyncio.gather(*(put(p) for p in partners))
