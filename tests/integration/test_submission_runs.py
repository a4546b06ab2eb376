"""Runs of submissions decided together decide exactly as one by one.

The same history of facts (colliding submissions of every tier and deal type, withdrawals, won
deals, a direct deal) is applied to two databases: one fact per transaction with `intake.handle`,
and in batches of random sizes with `intake.handle_batch`, as the consumer does (a batch that fails
is applied again one by one). The conflict log, the claims, the conflicts and the timers must come
out the same, for several policies.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import random
import uuid

import asyncpg
import msgspec
import pytest
from nats.aio.msg import Msg

from contracts.common import Customer, Money
from contracts.envelope import encode, envelope
from contracts.registration_events import OutcomeReported, RegistrationSubmitted, RegistrationWithdrawn
from services.conflict import direct_deals, intake, name_index, policy_store, submission_runs
from services.conflict.domain.policy import DEFAULT_POLICY, MatchSettings, Review
from services.conflict.recorder import lock_program, record
from services.eventlog.consumer import Delivered
from services.eventlog.events import Metadata
from services.metrics import DECISIONS
from tests.conftest import unique_id
from tests.integration.scratch_database import scratch_database

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
CUSTOMERS = [
    ("US", "northwind.com", ("Northwind Traders", "NORTHWIND TRADERS INC", "Northwind Trader", "northwind traders")),
    ("DE", "fabrikam.de", ("Fabrikam GmbH", "FABRIKAM", "Fabrikam AG", "Fabrikam Gmbh & Co. KG")),
    ("US", None, ("Adventure Works", "Adventure Works Cycles", "ADVENTURE WORKS", "Adventure-Works")),
    ("FR", "contoso.fr", ("Contoso SA", "Contoso", "CONTOSO S.A.", "Contoso Groupe")),
    ("US", None, ("Tailspin Toys", "Tailspin Toy", "TAILSPIN")),
    ("GB", "litware.co.uk", ("Litware Ltd", "Litware", "LITWARE LIMITED")),
]
TIERS = ("platinum", "gold", "silver", "registered")
PRODUCTS = (["firewall"], ["firewall", "siem"], ["vpn"], ["support"])

POLICIES = {
    "default": DEFAULT_POLICY,
    "tier_first_any_product": msgspec.structs.replace(
        DEFAULT_POLICY,
        rules=["tier_precedence", "active_protection", "first_to_register"],
        match=MatchSettings(name_similarity=0.5, require_product_overlap=False),
    ),
    "reviewed": msgspec.structs.replace(
        DEFAULT_POLICY,
        review=Review(enabled=True, sla_hours=24, on_breach="reject", auto_approve_tiers=["platinum"]),
    ),
    "disputed": msgspec.structs.replace(
        DEFAULT_POLICY,
        rules=["first_to_register"],
        review=Review(enabled=True, sla_hours=24, on_breach="approve"),
    ),
    "tie_window": msgspec.structs.replace(DEFAULT_POLICY, tie_window_minutes=5),
}


def _ce(name: str, program: str, subject: str, at: dt.datetime, e: msgspec.Struct):
    ce = envelope(
        service="registration",
        event_name=name,
        event_id=str(uuid.uuid4()),
        subject=subject,
        time=at,
        data=encode(e),
        program_id=program,
    )
    return ce, e


def history(program: str, seed: int) -> list:
    """Submissions mostly, some of them withdrawn or won later; equal instants now and then."""
    rng = random.Random(seed)
    facts, submitted, at = [], [], T0
    for n in range(160):
        if rng.random() < 0.8:
            at += dt.timedelta(seconds=rng.choice((0, 0, 1, 30, 600)))
        if submitted and rng.random() < 0.1:
            e = rng.choice(submitted)
            submitted.remove(e)
            if rng.random() < 0.5:
                w = RegistrationWithdrawn(
                    registration_id=e.registration_id,
                    program_id=program,
                    partner_id=e.partner_id,
                    withdrawn_by=e.partner_id,
                    withdrawn_at=at,
                )
                facts.append(_ce("registration.withdrawn", program, e.registration_id, at, w))
            else:
                o = OutcomeReported(
                    registration_id=e.registration_id,
                    program_id=program,
                    partner_id=e.partner_id,
                    reported_by=e.partner_id,
                    result=rng.choice(("won", "lost")),
                    closed_on=at.date(),
                    reported_at=at,
                )
                facts.append(_ce("registration.outcome_reported", program, e.registration_id, at, o))
            continue
        country, domain, names = rng.choice(CUSTOMERS)
        partner = rng.randrange(12)
        e = RegistrationSubmitted(
            registration_id=f"reg-{seed}-{n}",
            program_id=program,
            partner_id=f"partner-{partner}",
            partner_tier=TIERS[partner % len(TIERS)],
            partner_type="reseller",
            submitted_by=f"partner-{partner}",
            customer=Customer(name=rng.choice(names), country=country, domain=domain if rng.random() < 0.6 else None),
            products=rng.choice(PRODUCTS),
            deal_type=rng.choice(("new", "new", "renewal", "upsell")),
            estimated_value=Money(amount=str(rng.choice((5000, 40000, 120000))), currency="USD"),
            expected_close=dt.date(2027, 3, 31),
            submitted_at=at,
        )
        submitted.append(e)
        facts.append(_ce("registration.submitted", program, e.registration_id, at, e))
    return facts


async def prelude(conn: asyncpg.Connection, program: str, policy_name: str) -> None:
    """A published policy and a direct deal, the same in both databases."""
    async with conn.transaction():
        await lock_program(conn, program)
        if policy_name != "default":
            emit = policy_store.publication(program, POLICIES[policy_name], 1, "admin", T0)
            await record(conn, [emit], cause_id=f"policy:{program}:1", now=T0, meta=Metadata(), program_id=program)
        await direct_deals.record_deal(
            conn,
            program_id=program,
            customer=Customer(name="Contoso S.A.", country="FR", domain="contoso.fr"),
            products=["firewall"],
            owner="ae-1",
            opened_on=T0.date(),
            expected_close=None,
            external_ref=None,
            actor="ops",
            now=T0,
            meta=Metadata(actor="ops"),
        )


async def one_by_one(pool: asyncpg.Pool, facts: list) -> None:
    for ce, e in facts:
        async with pool.acquire() as conn, conn.transaction():
            await intake.handle(conn, ce, e)


async def in_batches(pool: asyncpg.Pool, facts: list, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    counts = {"batches": 0, "one_by_one": 0}
    i = 0
    while i < len(facts):
        chunk = facts[i : i + rng.choice((2, 3, 5, 8, 13, 30, 60))]
        i += len(chunk)
        delivered = [
            Delivered("test", Msg(None, subject=f"dealreg.registration.{ce.program_id}.x"), ce, e) for ce, e in chunk
        ]
        counts["batches"] += 1
        try:
            async with pool.acquire() as conn, conn.transaction():
                # as the consumer: marked with the program's lock (the first run's candidates asked
                # for with it), then the fresh ones decided
                program = chunk[0][0].program_id
                fresh = await intake.mark_batch(
                    conn, intake.CONSUMER, [ce.id for ce, _ in chunk], program, [e for _, e in chunk]
                )
                await intake.handle_batch(conn, [d for d in delivered if str(uuid.UUID(d.ce.id)) in fresh])
        except submission_runs.NotBatchable:
            counts["one_by_one"] += 1
            await one_by_one(pool, chunk)
    return counts


def decisions_counted() -> dict[tuple, float]:
    """The decisions counted so far, by reason and status."""
    return {
        tuple(sample.labels.values()): sample.value
        for metric in DECISIONS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }


def counted_since(before: dict[tuple, float]) -> dict[tuple, float]:
    after = decisions_counted()
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


async def state(conn: asyncpg.Connection) -> dict[str, list]:
    """The tables compared; the direct deal's id (a random one) written as "deal"."""
    deal = await conn.fetchval("SELECT claim_id FROM conflict.claims WHERE kind = 'direct_deal'")

    def same(value):
        return value.replace(deal, "deal") if isinstance(value, str) else value

    return {table: [tuple(same(v) for v in row) for row in rows] for table, rows in (await _tables(conn)).items()}


async def _tables(conn: asyncpg.Connection) -> dict[str, list]:
    return {
        "events": [
            tuple(r)
            for r in await conn.fetch(
                "SELECT e.event_id, e.stream_id, e.stream_version, e.event_type, e.data::text, e.occurred_at,"
                " e.causation_id, e.correlation_id, e.actor, e.program_id, e.subject, o.subject"
                " FROM conflict.events e LEFT JOIN conflict.outbox o USING (global_position)"
                " WHERE e.stream_id NOT LIKE 'directdeal-%' ORDER BY e.global_position"
            )
        ],
        "claims": [
            tuple(r)
            for r in await conn.fetch(
                "SELECT claim_id, kind, program_id, partner_id, tier, deal_type, name_key, country, domain, duns,"
                " tax_id, products, amount, currency, submitted_at, status, protected_until, approved_at,"
                " conflict_id, attribution_percent, extensions, appeals, decided_at, decided_by, decided_level,"
                " policy_version, customer::text FROM conflict.claims ORDER BY seq"
            )
        ],
        "conflicts": [tuple(r) for r in await conn.fetch("SELECT * FROM conflict.conflicts ORDER BY conflict_id")],
        "timers": [
            tuple(r)
            for r in await conn.fetch(
                "SELECT timer_id, kind, ref_id, due_at, payload::text FROM conflict.timers ORDER BY timer_id"
            )
        ],
    }


@pytest.mark.parametrize("policy_name", sorted(POLICIES))
async def test_runs_decide_as_one_by_one(server_dsn, policy_name, monkeypatch):
    program = unique_id("runs")
    facts = history(program, seed=len(policy_name))
    results, counted = [], []
    taken = []  # the first runs decided on the candidates read with the program's lock
    take = name_index.take_prefetched

    def taking(conn, probes, threshold):
        kept = take(conn, probes, threshold)
        taken.append(kept is not None)
        return kept

    monkeypatch.setattr(name_index, "take_prefetched", taking)
    for batched in (False, True):
        async with scratch_database(server_dsn) as pool:
            async with pool.acquire() as conn:
                await prelude(conn, program, policy_name)
            before = decisions_counted()
            if batched:
                counts = await in_batches(pool, facts, seed=3)
            else:
                await one_by_one(pool, facts)
            counted.append(counted_since(before))
            async with pool.acquire() as conn:
                results.append(await state(conn))
    sequential, batched = results
    assert all(row[-1] for row in sequential["events"])  # every event's outbox row, compared too
    for table in sequential:
        assert batched[table] == sequential[table], table
    # each decision counted (and logged) once: not again for a run rolled back and decided one by one
    assert counted[1] == counted[0]
    # the history is rich enough to mean something: claims of many statuses, conflicts opened
    statuses = {row[15] for row in sequential["claims"]}
    assert len(statuses) >= 4, statuses
    if policy_name == "disputed":  # claims awaiting review contend; equal instants open conflicts
        assert sequential["conflicts"], "no conflict was opened"
    assert counts["one_by_one"] < counts["batches"] / 2, counts
    if policy_name != "tie_window":  # (whose submissions are pooled one by one)
        assert sum(taken) >= 5, taken


async def test_a_run_rolled_back_counts_and_logs_its_decisions_once(server_dsn, monkeypatch):
    """A run refused once decided (here: at its last write) is rolled back and decided again one by
    one: its decisions are counted, and logged, for the one-by-one commit only."""
    program = unique_id("runs")
    facts = history(program, seed=1)
    flush = submission_runs._Writes.flush

    async def refused(self, conn, *args):
        await flush(self, conn, *args)
        raise submission_runs.NotBatchable("refused at the last write")

    counted = []
    for refuse in (False, True):
        if refuse:
            monkeypatch.setattr(submission_runs._Writes, "flush", refused)
        async with scratch_database(server_dsn) as pool:
            async with pool.acquire() as conn:
                await prelude(conn, program, "default")
            before = decisions_counted()
            counts = await in_batches(pool, facts, seed=3)
            counted.append(counted_since(before))
    assert counts["one_by_one"] > counts["batches"] / 2  # runs were refused, and decided again
    assert counted[1] == counted[0]
    assert sum(counted[0].values()) >= len({e.registration_id for _, e in facts if hasattr(e, "products")})


def _delivered(facts: list) -> list[Delivered]:
    return [Delivered("test", Msg(None, subject=f"dealreg.registration.{ce.program_id}.x"), ce, e) for ce, e in facts]


async def _written(conn: asyncpg.Connection) -> dict[str, tuple[int, int, int]]:
    """Rows inserted, updated and deleted in the claims and timers by this backend, not yet reported."""
    rows = await conn.fetch(
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_xact_user_tables"
        " WHERE schemaname = 'conflict' AND relname IN ('claims', 'timers')"
    )
    return {r["relname"]: (r["n_tup_ins"], r["n_tup_upd"], r["n_tup_del"]) for r in rows}


async def test_a_run_writes_each_claim_once_as_decided(server_dsn):
    """The run's claims are inserted with their decisions (approved, waitlisted, awaiting review),
    never inserted pending and then updated: no claim row updated, no timer deleted."""
    program = unique_id("runs")
    submissions = [(ce, e) for ce, e in history(program, seed=7) if isinstance(e, RegistrationSubmitted)][:40]
    async with scratch_database(server_dsn) as pool:
        async with pool.acquire() as conn:
            await prelude(conn, program, "disputed")
        async with pool.acquire() as conn, conn.transaction():
            before = await _written(conn)  # the backend's counts may hold earlier transactions' too
            await intake.handle_batch(conn, _delivered(submissions))
            after = await _written(conn)
            written = {table: tuple(a - b for a, b in zip(after[table], before[table], strict=True)) for table in after}
            statuses = {r[0] for r in await conn.fetch("SELECT DISTINCT status FROM conflict.claims")}
    assert written["claims"] == (40, 0, 0), written
    assert written["timers"][2] == 0, written
    assert {"approved", "waitlisted", "pending_review"} <= statuses, statuses


async def test_a_run_writes_its_claims_in_the_statement_of_its_events(server_dsn):
    """The run's claims are written, as decided and in order, by the statement that appends its
    events (one round trip for both), and so are the expiry timers of the ownership it grants: no
    statement of their own."""
    program = unique_id("runs")
    submissions = [(ce, e) for ce, e in history(program, seed=5) if isinstance(e, RegistrationSubmitted)][:12]
    sent: list[str] = []
    async with scratch_database(server_dsn) as pool:
        async with pool.acquire() as conn:
            await prelude(conn, program, "default")
            conn.add_query_logger(lambda q: sent.append(q.query))
            async with conn.transaction():
                await intake.handle_batch(conn, _delivered(submissions))
            await asyncio.sleep(0)  # query loggers are called through the loop
            claims = await conn.fetch(
                "SELECT claim_id, status FROM conflict.claims WHERE kind = 'registration' ORDER BY seq"
            )
            decided = await conn.fetch("SELECT DISTINCT stream_id FROM conflict.events")
            expiring = await conn.fetch("SELECT kind, ref_id FROM conflict.timers WHERE kind IN ('expiry', 'expiring')")
    assert not [q for q in sent if "INSERT INTO conflict.claims" in q], sent
    assert not [q for q in sent if "INSERT INTO conflict.timers" in q], sent
    assert [q for q in sent if "conflict.insert_claims" in q and "conflict.insert_expiry_timers" in q]
    approved = {r["claim_id"] for r in claims if r["status"] == "approved"}
    assert approved and {r["ref_id"] for r in expiring if r["kind"] == "expiry"} == approved
    assert [r["claim_id"] for r in claims] == [e.registration_id for _, e in submissions]
    assert "pending" not in {r["status"] for r in claims}
    assert decided


async def test_a_run_with_a_claim_stored_already_is_decided_one_by_one(server_dsn):
    """A submission whose claim is stored already (never so from the registration service, which
    submits a registration once) stops the run before anything is written; one by one, the stored
    claim is kept and decided as before."""
    program = unique_id("runs")
    submissions = [(ce, e) for ce, e in history(program, seed=11) if isinstance(e, RegistrationSubmitted)][:6]
    async with scratch_database(server_dsn) as pool:
        async with pool.acquire() as conn:
            await prelude(conn, program, "default")
            async with conn.transaction():
                await intake.handle(conn, *submissions[2])
            before = await state(conn)
            with pytest.raises(submission_runs.NotBatchable):
                async with conn.transaction():
                    await intake.handle_batch(conn, _delivered(submissions))
            assert await state(conn) == before  # rolled back: nothing of the run is left
            await one_by_one(pool, submissions)
            claims = await conn.fetch("SELECT claim_id, status FROM conflict.claims WHERE kind = 'registration'")
    assert sorted(r["claim_id"] for r in claims) == sorted(e.registration_id for _, e in submissions)


def _submitted(program: str, n: int, name: str, country: str, domain: str | None = None) -> tuple:
    """A submission of history's shape, for a customer known only by `name` and `country` (and
    `domain`, when given)."""
    base = next(e for _, e in history(program, seed=5) if isinstance(e, RegistrationSubmitted))
    at = T0 + dt.timedelta(seconds=n)
    e = msgspec.structs.replace(
        base,
        registration_id=f"reg-names-{program}-{n}",
        customer=Customer(name=name, country=country, domain=domain),
        products=["firewall"],
        submitted_at=at,
    )
    return _ce("registration.submitted", program, e.registration_id, at, e)


async def _as_the_consumer(conn: asyncpg.Connection, program: str, batch: list) -> None:
    """`batch` (all new) marked with the program's lock, then decided, in one transaction, as the
    intake's consumer does."""
    async with conn.transaction():
        ids = [ce.id for ce, _ in batch]
        fresh = await intake.mark_batch(conn, intake.CONSUMER, ids, program, [e for _, e in batch])
        assert fresh == set(ids)
        await intake.handle_batch(conn, _delivered(batch))
    await asyncio.sleep(0)  # query loggers are called through the loop


@pytest.mark.parametrize("size", [3, 20])
async def test_a_batch_reads_the_names_that_arrived_with_its_marks_and_lock(server_dsn, size):
    """The intake's first statement marks the batch, takes the program's lock and, once the lock is
    held, reads the names that arrived in the countries of its submissions: a name committed by the
    lock's holder while the batch waited is found (only by name: no other key is shared). The
    candidates then come in one more round trip, and no other statement reads names, whatever the
    batch's size."""
    program = unique_id("runs")
    held = _submitted(program, 0, "Northwind Traders GmbH", "de")
    names = [("Northwind Traders", " DE"), ("Fabrikam Inc", "US"), ("Tailspin Toys", "GB")]
    batch = [_submitted(program, n, *names[(n - 1) % 3]) for n in range(1, size + 1)]
    sent: list[str] = []
    async with scratch_database(server_dsn) as pool, pool.acquire() as holder, pool.acquire() as waiter:
        await prelude(holder, program, "default")
        waiter.add_query_logger(lambda q: sent.append(q.query))

        async with holder.transaction():
            await intake.handle(holder, *held)
            name_index.forget(program)  # as if the holder were another replica: its names unknown here
            waiting = asyncio.create_task(_as_the_consumer(waiter, program, batch))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # it waits for the lock
        await waiting
        twin = await waiter.fetchval(
            "SELECT status FROM conflict.claims WHERE claim_id = $1", batch[0][1].registration_id
        )
    assert twin == "waitlisted"  # protected by the claim of the lock's holder
    assert len([q for q in sent if "conflict.names_arrived" in q]) == 1
    assert not [q for q in sent if "claim_name_keys" in q], sent
    assert len([q for q in sent if "AS probe" in q]) == 1 and not [q for q in sent if "a.seqs" in q], sent


async def test_a_batch_asks_for_its_first_run_candidates_with_its_marks_and_lock(server_dsn):
    """With the names of its countries known and its program's policy seen, the intake asks for the
    candidates of the submissions a batch starts with in the statement that takes the program's
    lock, run once the lock is held: a claim committed by the lock's holder while the batch waited
    is found by its domain there, and one found only by a name that arrived then, by one more query
    for that name. No other candidate query is sent."""
    program = unique_id("runs")
    warm = [_submitted(program, n, name, country) for n, (name, country) in enumerate(
        [("Litware Ltd", "DE"), ("Contoso Groupe", "US"), ("Wide World Importers", "DE")], start=100)]  # fmt: skip
    by_name = _submitted(program, 0, "Northwind Traders GmbH", "DE")
    by_domain = _submitted(program, 1, "Fabrikam Holdings", "US", "fabrikam.example")
    batch = [
        _submitted(program, 2, "Northwind Traders", "DE"),
        _submitted(program, 3, "Adatum Corporation", "US", "https://www.fabrikam.example/"),
    ]
    sent: list[str] = []
    async with scratch_database(server_dsn) as pool, pool.acquire() as holder, pool.acquire() as waiter:
        await prelude(holder, program, "default")
        await _as_the_consumer(waiter, program, warm)  # this process knows the names of both countries now
        waiter.add_query_logger(lambda q: sent.append(q.query))

        async with holder.transaction():
            # as if the holder were another replica: what it learns of the names is not known here
            known = copy.deepcopy(name_index._known)
            await intake.handle(holder, *by_name)
            await intake.handle(holder, *by_domain)
            name_index._known.clear()
            name_index._known.update(known)
            waiting = asyncio.create_task(_as_the_consumer(waiter, program, batch))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # it waits for the lock
        await waiting
        statuses = dict(
            await waiter.fetch(
                "SELECT claim_id, status FROM conflict.claims WHERE claim_id = ANY($1::text[])",
                [e.registration_id for _, e in batch],
            )
        )
    assert statuses == {e.registration_id: "waitlisted" for _, e in batch}  # behind the holder's claims
    assert len([q for q in sent if "conflict.candidates_under_lock" in q]) == 1, sent
    assert not [q for q in sent if "AS probe" in q], sent  # no candidate query of the run's own
    assert len([q for q in sent if "FROM conflict.candidate_claims" in q]) == 1, sent  # the name that arrived
