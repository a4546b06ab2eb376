"""Decisions as a CRM receives them: a JetStream consumer on `dealreg.conflict.<program>.registration.>`."""

from __future__ import annotations

import asyncio
import time

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from contracts.envelope import JETSTREAM_STREAMS


class _Subject(msgspec.Struct):
    subject: str  # the CloudEvent's subject: the registration id


_decode = msgspec.json.Decoder(_Subject).decode


class DecisionWatcher:
    """Records when the first decision about each registration of one program arrived (monotonic)."""

    def __init__(self, nc: NATS, program_id: str) -> None:
        self.nc = nc
        self.program_id = program_id
        self.first: dict[str, float] = {}
        self.stored: dict[str, float] = {}  # when JetStream stored that first decision (epoch seconds)
        self.events = 0
        self._sub = None

    async def __aenter__(self) -> DecisionWatcher:
        # an ordered push consumer: ephemeral, flow-controlled, no acks; the program is new, so ALL is NEW
        self._sub = await self.nc.jetstream().subscribe(
            f"dealreg.conflict.{self.program_id}.registration.>",
            stream=JETSTREAM_STREAMS["conflict"],
            cb=self._on_message,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            idle_heartbeat=2.0,
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def _on_message(self, msg: Msg) -> None:
        now = time.monotonic()
        self.events += 1
        registration_id = _decode(msg.data).subject
        if registration_id not in self.first:
            self.first[registration_id] = now
            self.stored[registration_id] = msg.metadata.timestamp.timestamp()

    def decided(self, ids: list[str] | None = None) -> int:
        if ids is None:
            return len(self.first)
        return sum(1 for i in ids if i in self.first)

    async def wait_for(self, ids: list[str], cap_s: float, poll_s: float = 0.1) -> float | None:
        """Seconds until every id in `ids` is decided (None after `cap_s`)."""
        started = time.monotonic()
        pending = [i for i in ids if i not in self.first]
        while pending:
            if time.monotonic() - started > cap_s:
                return None
            await asyncio.sleep(poll_s)
            pending = [i for i in pending if i not in self.first]
        return time.monotonic() - started
