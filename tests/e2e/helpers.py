"""Shared test helpers: waiting with a deadline, a JetStream reader as a CRM, fresh databases,
and the calls a partner portal makes to set a program up and register a deal."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
from litestar.testing import TestClient
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from contracts.conflict_events import RegistrationStatusChanged
from contracts.envelope import CloudEvent, decode_envelope, encode, envelope, subject_for
from services.eventlog import db
from services.eventlog.migrate import migrate
from tests.e2e.conftest import token

T = TypeVar("T")


async def wait_until(
    predicate: Callable[[], T | Awaitable[T]], deadline: float = 10.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll `predicate` (sync or async) until it returns something truthy; fail after `deadline` s."""
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"not true within {deadline}s: {what or predicate}")
        await asyncio.sleep(interval)


@dataclass
class Received:
    msg: Msg
    event: CloudEvent | None  # None when the payload is not a CloudEvent (dead letters may not be)

    @property
    def msg_id(self) -> str | None:
        return (self.msg.headers or {}).get("Nats-Msg-Id")


class JetStreamReader:
    """A durable JetStream pull consumer on `filter_subject`, read as a CRM reads it (acking each)."""

    def __init__(self, nc: NATS, stream: str, filter_subject: str) -> None:
        self.js = nc.jetstream()
        self.stream = stream
        self.filter_subject = filter_subject
        self.durable = f"reader-{uuid.uuid4().hex[:10]}"
        self.received: list[Received] = []
        self._sub = None

    async def __aenter__(self) -> JetStreamReader:
        self._sub = await self.js.pull_subscribe(
            self.filter_subject,
            durable=self.durable,
            stream=self.stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, inactive_threshold=60.0
            ),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()
        with contextlib.suppress(Exception):
            await self.js.delete_consumer(self.stream, self.durable)

    async def poll(self) -> list[Received]:
        """Fetch what is there now (acking it); returns everything received so far."""
        try:
            msgs = await self._sub.fetch(100, timeout=0.2)
        except (NatsTimeout, TimeoutError):
            msgs = []
        for msg in msgs:
            await msg.ack()
            try:
                event = decode_envelope(msg.data)
            except (msgspec.DecodeError, UnicodeDecodeError):
                event = None
            self.received.append(Received(msg, event))
        return self.received

    async def until(self, count: int, deadline: float = 10.0) -> list[Received]:
        """Wait until at least `count` messages arrived; returns them all."""
        return await wait_until(
            lambda: self._enough(count),
            deadline,
            interval=0.0,
            what=f"{count} messages on {self.filter_subject}",
        )

    async def _enough(self, count: int) -> list[Received] | None:
        got = await self.poll()
        return got if len(got) >= count else None

    async def quiet(self, seconds: float = 0.5) -> list[Received]:
        """Keep reading for `seconds` (to show nothing more arrives); returns everything."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await self.poll()
        return self.received


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


@contextlib.asynccontextmanager
async def fresh_database(server_dsn: str) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """A new, migrated database (its DSN and a pool on it): for workers that must run alone."""
    name = f"dealreg_iso_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = with_database(server_dsn, name)
    await migrate(dsn)
    pool = await db.create_pool(dsn, min_size=1, max_size=10)
    try:
        yield dsn, pool
    finally:
        await pool.close()


# --- the partner portal's calls -----------------------------------------------------------------

ADMIN = token("admin")


def registration_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_ref": f"opp-{uuid.uuid4().hex[:8]}",
        "customer": {
            "name": "Acme Corporation",
            "domain": "https://www.acme.com",
            "country": "US",
            "region": "NA",
            "city": "Austin",
            "postal_code": "78701",
            "duns": "123456789",
            "tax_id": "US-12-3456789",
        },
        "products": ["firewall", "support"],
        "deal_type": "new",
        "estimated_value": {"amount": "125000.00", "currency": "USD"},
        "expected_close": "2027-03-31",
        "notes": "Met CISO at summit",
    }
    body.update(overrides)
    return body


async def enrol(client, program: str, *partners: str, tier: str = "gold", type_: str = "reseller") -> None:
    """Create `program` and enrol `partners` in it (admin)."""
    r = await client.put(f"/v1/programs/{program}", json={"name": f"Program {program}"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    for partner in partners:
        r = await client.put(
            f"/v1/programs/{program}/partners/{partner}",
            json={"name": f"Partner {partner}", "tier": tier, "type": type_},
            headers=ADMIN,
        )
        assert r.status_code == 200, r.text


def partner_token(program: str, partner: str, subject: str | None = None) -> dict[str, str]:
    return token("partner", program=program, partner=partner, subject=subject)


async def register(client, program: str, partner: str, **overrides: Any) -> dict[str, Any]:
    """Submit a registration as `partner`; returns the resource (asserting 201)."""
    r = await client.post(
        "/v1/registrations", json=registration_body(**overrides), headers=partner_token(program, partner)
    )
    assert r.status_code == 201, r.text
    return r.json()


# --- the conflict service's side, played by the test -------------------------------------------


async def publish_status(
    nc: NATS,
    registration: dict[str, Any],
    status: str,
    *,
    event_id: str | None = None,
    msg_id: str | None = None,
    **fields: Any,
) -> CloudEvent:
    """Publish a conflict-service `registration.<status>` CloudEvent about `registration`, as that
    service would (Nats-Msg-Id = event id unless `msg_id` says otherwise)."""
    now = dt.datetime.now(dt.UTC)
    data = RegistrationStatusChanged(
        registration_id=registration["id"],
        program_id=registration["program_id"],
        partner_id=registration["partner_id"],
        status=status,
        reason=fields.pop("reason", "no_collision" if status == "approved" else status),
        decided_at=fields.pop("decided_at", now),
        **fields,
    )
    name = f"registration.{status}"
    event_id = event_id or str(uuid.uuid4())
    ce = envelope(
        service="conflict",
        event_name=name,
        event_id=event_id,
        subject=registration["id"],
        time=now,
        data=encode(data),
        program_id=registration["program_id"],
    )
    await nc.jetstream().publish(
        subject_for("conflict", registration["program_id"], name),
        encode(ce),
        headers={"Nats-Msg-Id": msg_id or event_id},
    )
    return ce


async def set_status(client, nc: NATS, registration: dict[str, Any], status: str, **fields: Any) -> dict[str, Any]:
    """Have the conflict service give `registration` a status; wait until the API shows it."""
    headers = partner_token(registration["program_id"], registration["partner_id"])
    before = (await client.get(f"/v1/registrations/{registration['id']}", headers=headers)).json()["version"]
    await publish_status(nc, registration, status, **fields)

    async def moved() -> dict[str, Any] | None:
        r = await client.get(f"/v1/registrations/{registration['id']}", headers=headers)
        return r.json() if r.json()["version"] > before else None

    return await wait_until(moved, what=f"registration {registration['id']} to record {status}")


@contextlib.contextmanager
def sync_client(settings, **bootstrap_options: Any) -> Iterator[TestClient]:
    """The real app (without background workers unless asked) behind a synchronous client.

    The async test client serialises requests; calls from several threads through this one reach
    the app concurrently, which is what races need."""
    from services.registration.app import bootstrap

    bootstrap_options.setdefault("background", False)
    with TestClient(app=bootstrap(settings, **bootstrap_options)) as client:
        yield client


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Run `calls` in threads released together; their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))
