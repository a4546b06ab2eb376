"""The decision engine alone: how many registrations of one program the conflict intake decides a
second when nothing else runs (no HTTP, no registration service), and where its time goes.

Runs after the services are stopped. `count` submissions of one program, made by the registration
domain's own `submit` from the load's data, are published to JetStream as the registration service
would publish them; then the product's intake consumer (`EventConsumer` + `intake.handle` and `intake.handle_batch`, as the
conflict service composes it) decides them in this process, against a database of its own on the
same server. Reported: decisions per second, the consumer's CPU per decision, and the statements it
sent with their mean round trip (asyncpg's query logger).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import os
import time
import uuid

import msgspec
from nats.aio.client import Client as NATS

from bench import data
from bench.harness import say
from bench.stack import create_database
from contracts.common import Customer, Money
from contracts.envelope import JETSTREAM_STREAMS, encode, envelope, subject_for
from services.conflict import intake
from services.eventlog import db
from services.eventlog.consumer import EventConsumer
from services.eventlog.migrate import migrate
from services.eventlog.statistics import StatisticsKeeper
from services.logs import configure_logging
from services.registration.domain import decide

PROGRAM = "bench-decide"


def _submissions(seed: int, count: int) -> list[tuple[str, bytes]]:
    """(event id, CloudEvent) of `count` submissions, as the registration service would publish them."""
    partners = data.partners(seed, 40)
    now = dt.datetime.now(dt.UTC)
    out = []
    for i, (index, body) in enumerate(data.registration_requests(seed, "decide", count, len(partners))):
        b = msgspec.json.decode(body)
        p = partners[index]
        terms = decide.Terms(
            customer=Customer(**b["customer"]),
            products=b["products"],
            deal_type=b["deal_type"],
            estimated_value=Money(**b["estimated_value"]),
            expected_close=dt.date.fromisoformat(b["expected_close"]),
            external_ref=b["external_ref"],
        )
        partner = decide.Partner(PROGRAM, p.partner_id, p.tier, p.type)
        event = decide.submit(str(uuid.uuid4()), partner, terms, "bench", now + dt.timedelta(milliseconds=i))
        event_id = str(uuid.uuid4())
        ce = envelope(
            service="registration", event_name="registration.submitted", event_id=event_id,
            subject=event.registration_id, time=event.submitted_at, data=encode(event), program_id=PROGRAM,
        )  # fmt: skip
        out.append((event_id, encode(ce)))
    return out


def _log_like_the_service() -> None:
    """The engine writes a JSON line per decision, as in the service: its cost counts, the lines are
    dropped (the last phase of a run: only the stack's own stop messages follow)."""
    configure_logging("info", stream=open(os.devnull, "w"))


async def decide_rate(server_dsn: str, nc: NATS, seed: int, count: int, cap_s: float) -> dict:
    _log_like_the_service()
    dsn = await create_database(server_dsn, "bench_decide")
    await migrate(dsn)
    js = nc.jetstream()
    subject = subject_for("registration", PROGRAM, "registration.submitted")
    for event_id, payload in _submissions(seed, count):
        await js.publish(subject, payload, headers={"Nats-Msg-Id": event_id})
    statements: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])

    def logged(q) -> None:
        s = statements[" ".join(q.query.split())[:100]]
        s[0] += 1
        s[1] += q.elapsed

    async def setup(conn) -> None:
        conn.add_query_logger(logged)

    pool = await db.create_pool(dsn, min_size=2, max_size=4, setup=setup)
    consumer = EventConsumer(
        nc=nc, pool=pool, schema="conflict", durable="bench-decide", stream=JETSTREAM_STREAMS["registration"],
        filter_subject=f"dealreg.registration.{PROGRAM}.>", handle=intake.handle, exclusive=True,
        handle_batch=intake.handle_batch, partition=lambda ce: ce.program_id,
    )  # fmt: skip
    # the service's planner statistics kept as the service keeps them: without, the claims grow from
    # none unanalyzed until autovacuum's next look (up to a minute), and the candidate query is
    # planned for an empty table until then (the rate halved, or not, by when that look came)
    keeper = StatisticsKeeper(pool, "conflict")
    stop = asyncio.Event()
    started, cpu0 = time.perf_counter(), time.process_time()
    task = asyncio.gather(consumer.run(stop), keeper.run(stop))
    try:
        for _ in range(int(cap_s / 0.02)):  # polled: the consumer signals nothing when it is done
            if consumer.applied >= count:
                break
            await asyncio.sleep(0.02)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu0
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        try:
            async with pool.acquire() as conn:
                outcomes = dict(await conn.fetch("SELECT status, count(*) FROM conflict.claims GROUP BY 1"))
        finally:
            await pool.close()
    decided = consumer.applied
    top = sorted(statements.items(), key=lambda kv: -kv[1][1])[:12]
    out = {
        "submissions": count,
        "decided": decided,
        "seconds": round(seconds, 2),
        "decided_per_s": round(decided / seconds, 1),
        "consumer_cpu_ms_per_decision": round(cpu / max(decided, 1) * 1000, 3),
        "outcomes": outcomes,
        "statements": [
            {
                "statement": q,
                "calls": n,
                "mean_ms": round(t / n * 1000, 3),
                "per_decision": round(n / max(decided, 1), 2),
            }
            for q, (n, t) in top
        ],
    }
    say(
        f"decision engine alone: {decided:,} decided in {seconds:.1f}s, {out['decided_per_s']}/s,"
        f" {out['consumer_cpu_ms_per_decision']} ms CPU each"
    )
    return out
