"""Collision detection against programs of 10,000 to 1,000,000 registrations.

A database of its own on the same server holds one program whose claims grow from size to size,
loaded with COPY (names, domains, DUNS and tax ids in the shapes the service stores them, from the
same generator as the load). Each size then answers the same kind of probes through
`claims_repo.rivals`, each in a transaction of its own: half are customers already in the program,
written differently; half are new. The conflict service's in-memory name search reads the names
of each size once (in the warm-up probes), then only what arrived since, as the service does.

Each size is probed twice. First just after the load, its pages still outside PostgreSQL's buffer
cache (COPY writes through a small ring of buffers, so a bulk-loaded table starts cold): `cold`.
Then, after `pg_prewarm` has read the program's claims and their indexes into the cache, with
other probes of the same kinds: the headline figure, since a service that has been deciding for a
program holds the pages its probes touch in the cache (its server sized for them: the local
stack gives PostgreSQL a quarter of the machine's memory, `deploy.postgres.shared_buffers`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import random
import time
from decimal import Decimal

import asyncpg

from bench import data
from bench.harness import say
from bench.stack import create_database
from bench.stats import summary
from contracts.common import Customer
from services.conflict import claims_repo, name_index
from services.conflict.deciding import claim_of
from services.conflict.domain.claims import Claim
from services.conflict.domain.identity import normalize_name
from services.conflict.domain.policy import DEFAULT_POLICY
from services.eventlog.migrate import migrate

PROGRAM = "detect"
_COLUMNS = [
    "claim_id",
    "kind",
    "program_id",
    "partner_id",
    "tier",
    "deal_type",
    "name_key",
    "country",
    "domain",
    "duns",
    "tax_id",
    "products",
    "amount",
    "currency",
    "submitted_at",
    "status",
    "protected_until",
    "approved_at",
]
_STATUSES = (
    "approved",
    "approved",
    "approved",
    "approved",
    "pending",
    "expired",
    "expired",
    "expired",
    "rejected",
    "won",
    "lost",
)
_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_name_key = functools.lru_cache(maxsize=None)(normalize_name)


def _rows(seed: int, start: int, stop: int, partners: list[data.Partner]):
    rng = random.Random(f"{seed}/detect/{start}")
    for i in range(start, stop):
        cust = data.customer(seed, i)
        partner = partners[rng.randrange(len(partners))]
        status = rng.choice(_STATUSES)
        submitted = _EPOCH + dt.timedelta(minutes=rng.randrange(0, 2 * 365 * 24 * 60))
        approved = submitted + dt.timedelta(hours=1) if status in ("approved", "expired", "won", "lost") else None
        products = sorted(set(rng.choices(data.PRODUCTS, weights=data.PRODUCT_WEIGHTS, k=rng.choice((1, 2, 3)))))
        yield (
            f"seed-{i}",
            "registration",
            PROGRAM,
            partner.partner_id,
            partner.tier,
            "new",
            _name_key(cust.name),
            cust.country,
            cust.domain,
            cust.duns,
            cust.tax_id,
            products,
            Decimal(rng.randrange(5000, 500000)),
            data.CURRENCIES[cust.country],
            submitted,
            status,
            approved + dt.timedelta(days=90) if approved else None,
            approved,
        )


def _probe(seed: int, n: int, size: int, rng: random.Random) -> Claim:
    existing = rng.random() < 0.5
    cust = data.customer(seed, rng.randrange(size) if existing else 10**9 + n)
    typed = cust.as_registered(rng)
    products = sorted(set(rng.choices(data.PRODUCTS, weights=data.PRODUCT_WEIGHTS, k=2)))
    return claim_of(
        claim_id=f"probe-{size}-{n}",
        kind="registration",
        program_id=PROGRAM,
        status="pending",
        customer=Customer(**typed),
        products=products,
        submitted_at=dt.datetime.now(dt.UTC),
        policy=DEFAULT_POLICY,
        partner_id="p9999",
        tier="gold",
        deal_type="new",
    )


async def _plan(conn: asyncpg.Connection, claim: Claim) -> list[str]:
    """EXPLAIN ANALYZE of what `rivals` runs for `claim`, as the intake's transaction runs it: the
    read of the names that arrived since the last search, and the candidate query (auto_explain)."""
    notices: list[str] = []

    def listener(_conn: object, message: asyncpg.PostgresLogMessage) -> None:
        notices.append(message.message)

    conn.add_log_listener(listener)
    try:
        async with conn.transaction():
            await conn.execute("LOAD 'auto_explain'")
            for setting in (
                "log_min_duration = 0",
                "log_analyze = on",
                "log_buffers = on",
                "log_nested_statements = on",
            ):
                await conn.execute(f"SET LOCAL auto_explain.{setting}")
            await conn.execute("SET LOCAL auto_explain.log_level = notice")
            await claims_repo.rivals(conn, claim, DEFAULT_POLICY)
        await asyncio.sleep(0.05)  # a plan is logged when its portal closes; notices go through the loop
    finally:
        conn.remove_log_listener(listener)
    return [line for notice in notices for line in notice.splitlines()]


# the program's claims and their indexes (and the names' table), read into PostgreSQL's buffer cache;
# returns the blocks read
_PREWARM = """
    SELECT coalesce(sum(pg_prewarm(c.oid)), 0) FROM pg_class c
    WHERE c.relnamespace = 'conflict'::regnamespace AND c.relkind IN ('r', 'i')
      AND c.relname LIKE 'claim%'
"""


def _probes(seed: int, size: int, count: int, kind: str) -> list[Claim]:
    """`count` probes of `size` and 50 to warm up with; `kind` draws a set of its own."""
    rng = random.Random(f"{seed}/probes/{size}" + ("" if kind == "cold" else f"/{kind}"))
    return [_probe(seed, n, size, rng) for n in range(count + 50)]


async def _probe_many(conn: asyncpg.Connection, claims: list[Claim], cap_s: float) -> tuple[list[float], int]:
    """Each claim's `rivals` in a transaction of its own, until `cap_s` has passed: the latencies (ms)
    past the first 50 (which warm the process's caches), and how many of those found rivals."""
    timings, found = [], 0
    deadline = time.perf_counter() + cap_s
    for n, claim in enumerate(claims):
        if time.perf_counter() > deadline:
            break
        async with conn.transaction():
            t0 = time.perf_counter()
            rivals = await claims_repo.rivals(conn, claim, DEFAULT_POLICY)
            elapsed = (time.perf_counter() - t0) * 1000
        if n >= 50:
            timings.append(elapsed)
            found += bool(rivals)
    return timings, found


async def _first_search(conn: asyncpg.Connection, claims: list[Claim]) -> tuple[float, int]:
    """The first `rivals` of a process that knows no names yet (a restart), for a probe in the
    program's largest country: it reads all that country's names before it searches them."""
    country = await conn.fetchval(
        "SELECT country FROM conflict.claim_name_keys WHERE program_id = $1 GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
        PROGRAM,
    )
    claim = next((c for c in claims if c.identity.country == country), claims[0])
    name_index.forget(PROGRAM)
    async with conn.transaction():
        t0 = time.perf_counter()
        await claims_repo.rivals(conn, claim, DEFAULT_POLICY)
        elapsed = (time.perf_counter() - t0) * 1000
    read = name_index.known_names(PROGRAM, claim.identity.country)
    # every country's names known again, as before: the next size's probes read only what arrives
    await name_index.similar_names_any_country(
        conn, PROGRAM, claim.identity.name_key, DEFAULT_POLICY.match.name_similarity
    )
    return round(elapsed, 1), read


async def detection(server_dsn: str, seed: int, sizes: tuple[int, ...], probes: int, cap_s: float = 90.0) -> dict:
    dsn = await create_database(server_dsn, "bench_detect")
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    partners = data.partners(seed, 200)
    out: dict[str, dict] = {}
    try:
        have = 0
        for size in sorted(sizes):
            started = time.perf_counter()
            await conn.copy_records_to_table(
                "claims", schema_name="conflict", columns=_COLUMNS, records=_rows(seed, have, size, partners)
            )
            await conn.execute("ANALYZE conflict.claims")
            seeded_s = time.perf_counter() - started
            added, have = size - have, size
            # a slow size still leaves time for the rest of the run
            cold, _ = await _probe_many(conn, _probes(seed, size, probes, "cold"), cap_s / 2)
            prewarmed = await conn.fetchval(_PREWARM)
            claims = _probes(seed, size, probes, "warm")
            warm, found = await _probe_many(conn, claims, cap_s / 2)
            restart_ms, restart_names = await _first_search(conn, claims)
            out[str(size)] = {
                "latency_ms": summary(warm),
                "cold_latency_ms": summary(cold),
                "probes_with_rivals": found,
                # a process that has just started reads the names of the probe's program and country
                "first_search_after_restart_ms": restart_ms,
                "names_read_by_it": restart_names,
                "prewarmed_mb": round(prewarmed * 8 / 1024),
                "seed_s": round(seeded_s, 1),
                "seed_rows_per_s": round(added / seeded_s),
                "plan": await _plan(conn, claims[0]),
            }
            say(
                f"detection at {size:,}: p50 {out[str(size)]['latency_ms']['p50']} ms, "
                f"p99 {out[str(size)]['latency_ms']['p99']} ms, cold p99 {out[str(size)]['cold_latency_ms']['p99']}"
                f" ms, first after a restart {restart_ms:,.0f} ms ({restart_names:,} names read; seeded in {seeded_s:.0f}s)"
            )
    finally:
        await conn.close()
    return out
