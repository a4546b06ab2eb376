"""The load generator: `python -m bench.loadgen SPEC.json OUT.json`, a process of its own.

HTTP/1.1 keep-alive connections (one pool, many asyncio tasks) on uvloop, the event loop the services
run on: each connection an asyncio protocol that writes a request made in advance and reads the
reply with httptools, the C parser uvicorn serves with. A general-purpose client (aiohttp) took
about 0.33 ms of CPU per request at 500/s and 0.16 in the burst; this one takes 0.19 and 0.06, CPU
the services get instead. It shares the machine's two cores with everything it measures,
so it reports its own CPU time.

- `open`: an open loop. Request i is due at start + i/rate whatever happened before; its latency is
  counted from that due time, so a stalled server shows up as latency instead of as fewer requests
  (no coordinated omission). Requests beyond the connection limit wait in the client, on the clock.
  Requests still unanswered `grace` seconds after the last one was due are abandoned; they, and
  transport errors, count with the time they had waited (a lower bound) in the percentiles.
- `closed`: `concurrency` workers send back to back until the duration is over (the burst).

All request bodies are made before the clock starts.
"""

from __future__ import annotations

import asyncio
import collections
import resource
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

import httptools
import msgspec
import uvloop

from bench.data import registration_requests


class LoadSpec(msgspec.Struct, kw_only=True):
    url: str
    tokens: list[str]
    seed: int
    label: str
    count: int  # bodies prepared; the run stops early if it uses them all
    mode: str  # "open" | "closed"
    duration: float
    rate: float = 0.0
    concurrency: int = 64
    connections: int = 256
    grace: float = 10.0
    timeout: float = 300.0


class LoadResult(msgspec.Struct, kw_only=True):
    label: str
    mode: str
    rate: float
    sent: int
    statuses: dict[str, int]
    failures: int  # transport errors, timeouts and abandoned requests (also in `statuses`)
    started: float  # time.monotonic(), comparable across processes on Linux
    ended: float  # when the last reply counted in the window arrived
    latencies_ms: list[float]  # open loop: from the due time; closed loop: from the send
    service_ms: list[float]  # from the moment the request was handed to the client
    ids: list[tuple[str, float]]  # accepted registration ids and when their reply arrived (monotonic)
    cpu_s: float
    ran_out: bool

    @property
    def accepted(self) -> int:
        return self.statuses.get("201", 0)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its status and Location header."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.reply: asyncio.Future[tuple[int, bytes]] | None = None
        self.location = b""
        self.open = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(ConnectionResetError(f"bad reply: {e}"))

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"location":
            self.location = value

    def on_message_complete(self) -> None:
        reply, self.reply = self.reply, None
        if not self.parser.should_keep_alive():
            self.open = False
            if self.transport is not None:
                self.transport.close()
        if reply is not None and not reply.done():
            reply.set_result((self.parser.get_status_code(), self.location))
        self.location = b""

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("connection closed"))

    def _fail(self, exc: Exception) -> None:
        self.open = False
        reply, self.reply = self.reply, None
        if reply is not None and not reply.done():
            reply.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.reply = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.reply


class _Pool:
    """At most `limit` connections to one server; a request finding none free waits for one."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: list[_Connection] = []
        self.count = 0
        self.waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    async def request(self, request: bytes) -> tuple[int, bytes]:
        conn = await self._acquire()
        try:
            return await conn.send(request)
        finally:
            self._release(conn)

    async def _acquire(self) -> _Connection:
        while True:
            while self.idle:
                conn = self.idle.pop()
                if conn.open:
                    return conn
                self.count -= 1
            if self.count < self.limit:
                self.count += 1
                try:
                    _, conn = await asyncio.get_running_loop().create_connection(_Connection, self.host, self.port)
                except BaseException:
                    self.count -= 1
                    self._wake()
                    raise
                return conn
            free = asyncio.get_running_loop().create_future()
            self.waiting.append(free)
            await free

    def _release(self, conn: _Connection) -> None:
        if conn.open and conn.reply is None:
            self.idle.append(conn)
        else:
            if conn.transport is not None:
                conn.transport.close()
            self.count -= 1
        self._wake()

    def _wake(self) -> None:
        while self.waiting:
            free = self.waiting.popleft()
            if not free.done():
                free.set_result(None)
                return

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()
        self.idle.clear()


def _requests(spec: LoadSpec) -> list[bytes]:
    """Every request of the run, made in advance: the bytes sent on the wire."""
    url = urlsplit(spec.url)
    head = [
        (
            f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {t}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        for t in spec.tokens
    ]
    return [
        head[p] + b"Content-Length: %d\r\n\r\n" % len(body) + body
        for p, body in registration_requests(spec.seed, spec.label, spec.count, len(spec.tokens))
    ]


class _Run:
    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.requests = _requests(spec)
        self.statuses: Counter[str] = Counter()
        self.failures = 0
        self.latencies: list[float] = []
        self.service: list[float] = []
        self.ids: list[tuple[str, float]] = []
        self.last_reply = 0.0

    async def one(self, pool: _Pool, i: int, due: float) -> None:
        sent = time.monotonic()
        try:
            async with asyncio.timeout(self.spec.timeout):
                status, location = await pool.request(self.requests[i])
        except (OSError, TimeoutError) as e:
            self.fail(type(e).__name__, due, sent)
            return
        except asyncio.CancelledError:
            self.fail("abandoned", due, sent)
            raise
        done = time.monotonic()
        self.last_reply = max(self.last_reply, done)
        self.statuses[str(status)] += 1
        self.latencies.append((done - due) * 1000)
        self.service.append((done - sent) * 1000)
        if status == 201:
            self.ids.append((location.rsplit(b"/", 1)[-1].decode(), done))

    def fail(self, what: str, due: float, sent: float) -> None:
        now = time.monotonic()
        self.failures += 1
        self.statuses[what] += 1
        self.latencies.append((now - due) * 1000)
        self.service.append((now - sent) * 1000)

    async def open_loop(self, pool: _Pool, start: float) -> int:
        n = min(len(self.requests), int(self.spec.rate * self.spec.duration))
        tasks = set()
        for i in range(n):
            due = start + i / self.spec.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self.one(pool, i, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            _, late = await asyncio.wait(set(tasks), timeout=self.spec.grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        return n

    async def closed_loop(self, pool: _Pool, start: float) -> int:
        end = start + self.spec.duration
        counter = iter(range(len(self.requests)))
        sent = 0

        async def worker() -> None:
            nonlocal sent
            for i in counter:
                if time.monotonic() >= end:
                    return
                sent += 1
                await self.one(pool, i, time.monotonic())

        await asyncio.gather(*(worker() for _ in range(self.spec.concurrency)))
        return sent

    async def run(self) -> LoadResult:
        limit = self.spec.concurrency if self.spec.mode == "closed" else self.spec.connections
        url = urlsplit(self.spec.url)
        pool = _Pool(url.hostname or "127.0.0.1", url.port or 80, limit)
        try:
            cpu0 = _cpu()
            start = time.monotonic() + 0.05
            loop = self.open_loop if self.spec.mode == "open" else self.closed_loop
            sent = await loop(pool, start)
            cpu = _cpu() - cpu0
        finally:
            pool.close()
        return LoadResult(
            label=self.spec.label,
            mode=self.spec.mode,
            rate=self.spec.rate,
            sent=sent,
            statuses=dict(self.statuses),
            failures=self.failures,
            started=start,
            ended=self.last_reply or start,
            latencies_ms=self.latencies,
            service_ms=self.service,
            ids=self.ids,
            cpu_s=cpu,
            ran_out=sent >= len(self.requests),
        )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    spec_path, out_path = argv
    with open(spec_path, "rb") as f:
        spec = msgspec.json.decode(f.read(), type=LoadSpec)
    result = uvloop.run(_Run(spec).run())
    with open(out_path, "wb") as f:
        f.write(msgspec.json.encode(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
