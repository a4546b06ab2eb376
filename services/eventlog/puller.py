"""A durable JetStream pull consumer's messages as they are stored: one pull request kept open.

`PullSubscription.fetch` asks the server anew for every batch. When nothing is waiting, that is a
request answered at once (`no_wait`), its "404 no messages", then a request that waits: two
requests and a status per batch, and under a steady trickle of events a batch is one event. The
`Puller` keeps a request for `batch` messages open on the server instead, and asks for `batch` more
once fewer than half a batch is on its way or waiting to be taken (a request may also end: expire,
or be cut short by the server). So it never holds more than one and a half batches, however far
behind the consumer falls. Messages reach the client as soon as they are stored, and wait in
memory while the previous batch is applied, so batches grow by themselves under load with no round
trip between them.

A request dies with the connection that sent it (a NATS restart, say). The server sends an idle
heartbeat every `heartbeat` seconds while a request waits with nothing to deliver, so a puller that
has heard nothing for three of those asks again; after any other answer than messages, a heartbeat
or an expiry (the consumer deleted, no responders...) it asks again one heartbeat later, never in a
loop with the server.
"""

from __future__ import annotations

import asyncio
import collections

import msgspec
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DEFAULT_PREFIX, Header

log = structlog.get_logger(__name__)

_PENDING_MESSAGES = "Nats-Pending-Messages"  # what an ended request had still to deliver
_HEARTBEAT = "100"


class Puller:
    def __init__(
        self, nc: NATS, stream: str, durable: str, *, batch: int = 256, expires: float = 30.0, heartbeat: float = 1.0
    ) -> None:
        """`batch`: messages asked for in one request (at most 1.5 times that are ever on their way
        or waiting to be taken); `expires`: how long a request waits on the server; `heartbeat`: how
        often the server says a waiting request is alive."""
        self.nc = nc
        self.batch = batch
        self.heartbeat = heartbeat
        self._next = f"{DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._request_body = msgspec.json.encode(
            {"batch": batch, "expires": int(expires * 1e9), "idle_heartbeat": int(heartbeat * 1e9)}
        )
        self._inbox = ""
        self._sub: Subscription | None = None
        self._ready: collections.deque[Msg] = collections.deque()
        self._arrived = asyncio.Event()
        self._outstanding = 0  # asked for and neither delivered nor lapsed
        self._ask_after = 0.0  # loop time after which, hearing nothing, `take` asks again
        self.requests = 0

    async def start(self) -> None:
        self._inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(self._inbox, cb=self._on_message)
        await self._ask()

    async def stop(self) -> None:
        """Stop receiving; messages received and not taken are handed back at once (nak)."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()
        while self._ready:
            msg = self._ready.popleft()
            try:
                await msg.nak()
            except Exception:  # the connection is gone: they come again once ack_wait has passed
                return

    async def take(self, limit: int, wait: float) -> list[Msg]:
        """Up to `limit` messages, in the order the server sent them, waiting up to `wait` seconds for
        the first (none: an empty list)."""
        if not self._ready:
            if asyncio.get_running_loop().time() > self._ask_after:
                # not even a heartbeat: the requests died with their connection (or never reached
                # the server); what they had asked for will not come
                self._outstanding = 0
                await self._ask()
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), wait)
            except TimeoutError:
                return []
        ready = self._ready
        taken = [ready.popleft() for _ in range(min(limit, len(ready)))]
        await self._refill()
        return taken

    @property
    def waiting(self) -> int:
        """Messages received and not taken yet."""
        return len(self._ready)

    async def _refill(self) -> None:
        if self._sub is not None and self._outstanding + self.waiting <= self.batch // 2:
            await self._ask()

    def _heard(self, wait: float) -> None:
        self._ask_after = asyncio.get_running_loop().time() + wait

    async def _ask(self) -> None:
        self._heard(3 * self.heartbeat)
        self._outstanding += self.batch
        self.requests += 1
        await self.nc.publish(self._next, self._request_body, reply=self._inbox)

    async def _on_message(self, msg: Msg) -> None:
        status = msg.headers.get(Header.STATUS) if msg.headers else None
        if status is None:
            self._ready.append(msg)
            self._outstanding -= 1
            self._arrived.set()
        elif status == "408":  # a request expired: what it had left is not coming
            pending = msg.headers.get(_PENDING_MESSAGES, "")
            lapsed = int(pending) if pending.isdigit() else self._outstanding
            self._outstanding -= min(lapsed, max(self._outstanding, 0))
        elif status != _HEARTBEAT:
            # the server ended the requests (consumer deleted, leader changed, too many waiting), or
            # nothing answers them: ask again a heartbeat from now, not at once
            log.warning(
                "puller.request_ended", subject=self._next, status=status, reason=msg.headers.get("Description")
            )
            self._outstanding = 0
            self._heard(self.heartbeat)
            return
        self._heard(3 * self.heartbeat)
        await self._refill()
