"""What the dispute and review tests share: a program with a published policy, partners registering
a customer, a CRM reading the conflict stream, and waiting for a registration to show something."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from contracts.envelope import JETSTREAM_STREAMS
from tests.e2e.conftest import token
from tests.e2e.helpers import JetStreamReader, wait_until
from tests.e2e.test_conflict_flow import registration, setup_program

ADMIN = token("admin")
FAST = 0.0005  # hours: 1.8 s


def escalation(*sla_hours: float) -> list[dict[str, Any]]:
    roles = ("channel_manager", "regional_director", "vp_channel")
    return [{"level": i + 1, "role": roles[i], "sla_hours": h} for i, h in enumerate(sla_hours)]


async def program_with_policy(registration_api, conflict_api, partners: dict[str, str], **policy: Any) -> str:
    """A program with `partners` ({id: tier}) and `policy` published as its version 1."""
    program = await setup_program(registration_api, partners)
    r = await conflict_api.put(f"/v1/programs/{program}/policy", json=policy, headers=ADMIN)
    assert r.status_code == 200, r.text
    return program


def partner(program: str, partner_id: str) -> dict[str, str]:
    return token("partner", program=program, partner=partner_id)


def authority(program: str, level: int, subject: str | None = None) -> dict[str, str]:
    return token("authority", program=program, level=level, subject=subject)


async def register(
    api, program: str, partner_id: str, name: str = "Acme", domain: str = "acme.com", **extra: Any
) -> str:
    r = await api.post(
        "/v1/registrations", json=registration(name, domain, **extra), headers=partner(program, partner_id)
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def shown(
    api, program: str, partner_id: str, rid: str, deadline: float = 15.0, **expected: Any
) -> dict[str, Any]:
    """Wait until the partner sees its registration with every `expected` field value."""

    async def check():
        body = (await api.get(f"/v1/registrations/{rid}", headers=partner(program, partner_id))).json()
        return body if all(body.get(k) == v for k, v in expected.items()) else None

    return await wait_until(check, deadline, what=f"registration {rid} to show {expected}")


class Crm:
    """A CRM consuming `dealreg.conflict.<program>.>` with a JetStream consumer."""

    def __init__(self, reader: JetStreamReader) -> None:
        self.reader = reader

    async def events(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(event name, subject, data) of everything received so far, in order."""
        got = await self.reader.poll()
        return [(r.event.event_name, r.event.subject, json.loads(bytes(r.event.data))) for r in got]

    async def wait(
        self,
        name: str,
        where: Callable[[dict[str, Any]], bool] = lambda d: True,
        count: int = 1,
        deadline: float = 15.0,
    ) -> list[dict[str, Any]]:
        """Wait until `count` events `name` matching `where` arrived; returns their data."""

        async def check():
            found = [d for n, _, d in await self.events() if n == name and where(d)]
            return found if len(found) >= count else None

        return await wait_until(check, deadline, interval=0.0, what=f"{count} x {name}")

    async def names(self, subject: str | None = None) -> list[str]:
        return [n for n, s, _ in await self.events() if subject is None or s == subject]


@contextlib.asynccontextmanager
async def crm(nc, program: str) -> AsyncIterator[Crm]:
    async with JetStreamReader(nc, JETSTREAM_STREAMS["conflict"], f"dealreg.conflict.{program}.>") as reader:
        yield Crm(reader)


async def tie(registration_api, crm_: Crm, program: str, a: str = "p1", b: str = "p2") -> tuple[str, str, str]:
    """Two partners register the same customer within the tie window; returns (first, second, conflict)."""
    first = await register(registration_api, program, a, "Acme Corporation", "acme.com")
    second = await register(registration_api, program, b, "ACME Corp.", "https://www.acme.com")
    opened = await crm_.wait("conflict.opened")
    assert {c["claim_id"] for c in opened[0]["claims"]} == {first, second}
    return first, second, opened[0]["conflict_id"]
