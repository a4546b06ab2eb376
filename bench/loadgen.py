"""The load generator: `python -m bench.loadgen SPEC.json OUT.json`, a process of its own.

aiohttp with HTTP/1.1 keep-alive connections (one pool, many asyncio tasks) on uvloop, the event
loop the services run on (about 0.39 ms of CPU per request at 500/s, against 0.43 on the default
loop). It shares the machine's two cores with everything it measures, so it reports its own CPU time.

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
import resource
import sys
import time
from collections import Counter

import aiohttp
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


class _Run:
    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        headers = [{"Authorization": f"Bearer {t}", "Content-Type": "application/json"} for t in spec.tokens]
        self.requests = [
            (headers[p], body) for p, body in registration_requests(spec.seed, spec.label, spec.count, len(spec.tokens))
        ]
        self.statuses: Counter[str] = Counter()
        self.failures = 0
        self.latencies: list[float] = []
        self.service: list[float] = []
        self.ids: list[tuple[str, float]] = []
        self.last_reply = 0.0

    async def one(self, session: aiohttp.ClientSession, i: int, due: float) -> None:
        headers, body = self.requests[i]
        sent = time.monotonic()
        try:
            async with session.post(self.spec.url, data=body, headers=headers) as resp:
                await resp.read()
                status, location = resp.status, resp.headers.get("Location", "")
        except (aiohttp.ClientError, TimeoutError) as e:
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
            self.ids.append((location.rsplit("/", 1)[-1], done))

    def fail(self, what: str, due: float, sent: float) -> None:
        now = time.monotonic()
        self.failures += 1
        self.statuses[what] += 1
        self.latencies.append((now - due) * 1000)
        self.service.append((now - sent) * 1000)

    async def open_loop(self, session: aiohttp.ClientSession, start: float) -> int:
        n = min(len(self.requests), int(self.spec.rate * self.spec.duration))
        tasks = set()
        for i in range(n):
            due = start + i / self.spec.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self.one(session, i, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            _, late = await asyncio.wait(set(tasks), timeout=self.spec.grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        return n

    async def closed_loop(self, session: aiohttp.ClientSession, start: float) -> int:
        end = start + self.spec.duration
        counter = iter(range(len(self.requests)))
        sent = 0

        async def worker() -> None:
            nonlocal sent
            for i in counter:
                if time.monotonic() >= end:
                    return
                sent += 1
                await self.one(session, i, time.monotonic())

        await asyncio.gather(*(worker() for _ in range(self.spec.concurrency)))
        return sent

    async def run(self) -> LoadResult:
        limit = self.spec.concurrency if self.spec.mode == "closed" else self.spec.connections
        connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=self.spec.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            cpu0 = _cpu()
            start = time.monotonic() + 0.05
            loop = self.open_loop if self.spec.mode == "open" else self.closed_loop
            sent = await loop(session, start)
            cpu = _cpu() - cpu0
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
