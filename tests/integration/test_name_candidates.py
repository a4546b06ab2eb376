"""The candidate query never misses a name match: against brute force over every claim.

A few thousand claims with names built from a small vocabulary (so that many are near one another
and many share generic words), in three countries, written by single inserts, by COPY and by
amendments that change names. For probes of every kind (existing names, names written
differently, new ones), `candidates` must return every claim that the pure rules match by name,
at each threshold, including thresholds set after the claims were written; the names PostgreSQL
finds must be exactly those whose pg_trgm similarity reaches the threshold (compared in double
precision, as the pure rules compare it); and `rivals`, which also asks for a shared product, must
return exactly the claims the pure `collision` accepts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random

import asyncpg
import msgspec
import pytest

from services.conflict import claims_repo, name_index
from services.conflict.domain.claims import Claim, collision
from services.conflict.domain.identity import Identity, match_evidence, normalize_name
from services.conflict.domain.policy import DEFAULT_POLICY, MatchSettings
from tests.conftest import unique_id
from tests.integration.scratch_database import scratch_database

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
COUNTRIES = ("US", "DE", "FR")
SURNAMES = (
    "smith johnson miller muller mueller schmidt schmitt martin martins bernard dubois durand meyer meier"
    " mayer garcia garza harris harrison taylor tailor weber webber moreau morel"
).split()
GENERIC = "solutions systems group global services consulting and und et co technologies logistics".split()
THRESHOLDS = (0.3, 0.45, 0.6, 0.75, 0.9, 1.0)
PRODUCTS = (("firewall",), ("vpn",), ("firewall", "siem"), ("siem", "vpn"), ("support",))


def random_name(rng: random.Random) -> str:
    words = rng.sample(SURNAMES, rng.choice((1, 1, 2, 3)))
    words += rng.sample(GENERIC, rng.choice((0, 1, 1, 2)))
    if rng.random() < 0.2:  # a typo
        w = rng.randrange(len(words))
        word = words[w]
        i = rng.randrange(len(word))
        words[w] = word[:i] + rng.choice("aeioubcdrst") + word[i + 1 :]
    rng.shuffle(words)
    return normalize_name(" ".join(words) + rng.choice(("", " GmbH", " Inc.", " S.A.")))


def claim(program: str, n: int, name: str, country: str) -> Claim:
    return Claim(
        claim_id=f"{program}-{n}",
        kind="registration",
        program_id=program,
        identity=Identity(name_key=name, country=country),
        products=PRODUCTS[n % len(PRODUCTS)],
        submitted_at=NOW,
        status="approved",
        partner_id=f"p{n % 7}",
        tier="gold",
        deal_type="new",
    )


def policy_at(threshold: float):
    return msgspec.structs.replace(
        DEFAULT_POLICY, match=MatchSettings(name_similarity=threshold, require_product_overlap=True)
    )


async def test_candidates_contain_every_name_match(server_dsn):
    rng = random.Random(7)
    program = unique_id("names")
    stored = [claim(program, n, random_name(rng), rng.choice(COUNTRIES)) for n in range(3000)]
    async with scratch_database(server_dsn) as pool, pool.acquire() as conn:
        for c in stored[:300]:  # one by one, as the intake and replay write them
            await claims_repo.insert(conn, c)
        await conn.copy_records_to_table(  # in bulk: the statement trigger sees all rows at once
            "claims",
            schema_name="conflict",
            columns=["claim_id", "kind", "program_id", "name_key", "country", "products", "submitted_at", "status"],
            records=[
                (c.claim_id, c.kind, program, c.identity.name_key, c.identity.country, list(c.products), NOW, c.status)
                for c in stored[300:]
            ],
        )
        for n in range(0, 3000, 50):  # amendments that rename the customer
            renamed = dataclasses.replace(
                stored[n], identity=Identity(name_key=random_name(rng), country=stored[n].identity.country)
            )
            await claims_repo.update_terms(conn, renamed)
            stored[n] = renamed
        await conn.execute("ANALYZE conflict.claims")

        probes = [claim(program, 10_000 + n, stored[rng.randrange(3000)].identity.name_key, "US") for n in range(40)]
        probes += [claim(program, 20_000 + n, random_name(rng), rng.choice(COUNTRIES)) for n in range(80)]
        # the pure rules' name scores at the lowest threshold; a higher one keeps the scores above it
        scores = [
            {
                o.claim_id: k.score
                for o in stored
                for k in match_evidence(probe.identity, o.identity, min(THRESHOLDS))
                if k.key == "name"
            }
            for probe in probes
        ]
        for threshold in THRESHOLDS:
            policy = policy_at(threshold)
            for probe, score in zip(probes, scores, strict=True):
                expected = {claim_id for claim_id, s in score.items() if s >= threshold}
                async with conn.transaction():
                    found = {o.claim_id for o in await claims_repo.candidates(conn, probe, policy, ["approved"])}
                assert expected <= found, (threshold, probe.identity, sorted(expected - found))
                exact = await conn.fetch(
                    "SELECT claim_id FROM conflict.claims WHERE program_id = $1 AND country = $2"
                    " AND similarity(name_key, $3)::float8 >= $4::float8 AND similarity(name_key, $3) > 0",
                    program,
                    probe.identity.country,
                    probe.identity.name_key,
                    threshold,
                )
                assert {r["claim_id"] for r in exact} == found, (threshold, probe.identity)

                # rivals (products must overlap under this policy): exactly what the pure rules say
                async with conn.transaction():
                    rivals = {r.claim.claim_id for r in await claims_repo.rivals(conn, probe, policy)}
                assert rivals == {o.claim_id for o in stored if collision(probe, o, threshold, True)}, threshold


async def test_names_are_kept_once_and_follow_truncate(server_dsn):
    """Each name once, however many claims carry it; a projection rebuilt from the logs starts from
    empty name tables too."""
    program = unique_id("names")
    async with scratch_database(server_dsn) as pool, pool.acquire() as conn:
        await claims_repo.insert(conn, claim(program, 1, "acme", "US"))
        await claims_repo.insert(conn, claim(program, 2, "acme", "US"))
        counts = "SELECT count(*) FROM conflict.claim_name_keys"
        assert await conn.fetchval(counts) == 1
        await conn.execute("TRUNCATE conflict.claims")
        assert await conn.fetchval(counts) == 0


async def test_names_that_arrive_after_a_search_are_found(server_dsn):
    """The names are read once, then only those that arrived since: committed by another connection,
    or written earlier in the searching transaction itself."""
    program = unique_id("names")
    async with scratch_database(server_dsn) as pool, pool.acquire() as searcher:
        await claims_repo.insert(searcher, claim(program, 1, "acme logistics", "US"))
        assert await name_index.similar_names(searcher, program, "US", "acme logistic", 0.6) == ["acme logistics"]
        async with pool.acquire() as other:
            await claims_repo.insert(other, claim(program, 2, "acme logistic", "US"))
            await claims_repo.insert(other, claim(program, 3, "acme logistic", "DE"))
        found = await name_index.similar_names(searcher, program, "US", "acme logistic", 0.6)
        assert sorted(found) == ["acme logistic", "acme logistics"]
        async with searcher.transaction():
            await claims_repo.insert(searcher, claim(program, 4, "acme logistix", "US"))
            found = await name_index.similar_names(searcher, program, "US", "acme logistic", 0.6)
            assert "acme logistix" in found
        await searcher.execute("TRUNCATE conflict.claims")  # a projection rebuilt: its names arrive again
        await claims_repo.insert(searcher, claim(program, 5, "acme logistica", "US"))
        assert "acme logistica" in await name_index.similar_names(searcher, program, "US", "acme logistic", 0.6)


async def test_each_database_has_its_own_names(server_dsn):
    """A process that meets another database (or one created anew) under the same program id reads
    that database's names from the start."""
    program = unique_id("names")
    async with scratch_database(server_dsn) as first, first.acquire() as a:
        async with scratch_database(server_dsn) as second, second.acquire() as b:
            for n in range(30):  # numbers past the other database's
                await claims_repo.insert(a, claim(program, n, f"acme {n}", "US"))
            await claims_repo.insert(b, claim(program, 1, "globex", "US"))
            assert await name_index.similar_names(a, program, "US", "globex", 0.6) == []
            assert await name_index.similar_names(b, program, "US", "globex", 0.6) == ["globex"]
            assert await name_index.similar_names(b, program, "US", "acme 7", 0.6) == []
            assert await name_index.similar_names(a, program, "US", "acme 7", 0.9) == ["acme 7"]


async def test_a_transaction_holding_the_program_lock_reads_the_names_once(server_dsn):
    """Under the program's lock no other transaction adds names to the program, so the names that
    arrived are read once per transaction; the transaction's own claims are searched at once."""
    from services.conflict.recorder import lock_program

    program = unique_id("names")
    reads: list[str] = []
    async with scratch_database(server_dsn) as pool, pool.acquire() as conn:
        await claims_repo.insert(conn, claim(program, 1, "acme logistics", "US"))
        conn.add_query_logger(lambda q: reads.append(q.query) if "claim_name_keys" in q.query else None)
        async with conn.transaction():
            await lock_program(conn, program)
            assert await name_index.similar_names(conn, program, "US", "acme logistic", 0.6) == ["acme logistics"]
            await claims_repo.insert(conn, claim(program, 2, "acme logistix", "US"))
            found = await name_index.similar_names(conn, program, "US", "acme logistic", 0.6)
            assert sorted(found) == ["acme logistics", "acme logistix"]
        assert len(reads) == 1
        async with conn.transaction():  # a new transaction reads again
            await lock_program(conn, program)
            await name_index.similar_names(conn, program, "US", "acme logistic", 0.6)
        assert len(reads) == 2


async def test_a_batch_asks_for_its_candidates_and_the_names_that_arrived_in_one_round_trip(server_dsn):
    """A run of submissions in several countries, under the program's lock, sends one query for all
    its candidates and the names that arrived since in their countries (a similar one among these
    costs one more), and finds the same candidates as claims searched one by one."""
    from services.conflict.recorder import lock_program

    program = unique_id("names")
    policy = policy_at(0.6)
    probes = [claim(program, 10 + i, f"acme logistix {c.lower()}", c) for i, c in enumerate(COUNTRIES)]
    probes += [claim(program, 40 + i, f"acme logistix {c.lower()}", c) for i, c in enumerate(COUNTRIES)]
    sent: list[str] = []

    async def elsewhere(c: Claim) -> None:  # as another process writes: this one's searches not told
        await other.fetchval(claims_repo._INSERT, *claims_repo._insert_args(c, "{}"))

    async with scratch_database(server_dsn) as pool, pool.acquire() as conn, pool.acquire() as other:
        for i, country in enumerate(COUNTRIES):  # known to this process before the batch: read since
            await claims_repo.insert(conn, claim(program, i, f"acme logistics {country.lower()}", country))
        async with conn.transaction():
            await lock_program(conn, program)
            await claims_repo.rival_candidates_many(conn, probes, policy)
        for i, country in enumerate(COUNTRIES):  # arrived since, in every country; not similar
            await elsewhere(claim(program, 20 + i, f"globex {country.lower()}", country))
        conn.add_query_logger(lambda q: sent.append(q.query))
        async with conn.transaction():
            await lock_program(conn, program)
            await asyncio.sleep(0)
            sent.clear()
            found = await claims_repo.rival_candidates_many(conn, probes, policy)
            await asyncio.sleep(0)  # query loggers are called soon after, from the loop
            assert len(sent) == 1, sent
        assert [sorted(c.claim_id for c in f) for f in found] == [[f"{program}-{i}"] for i in range(len(COUNTRIES))] * 2
        for i, country in enumerate(COUNTRIES):  # arrived since, in every country; similar
            await elsewhere(claim(program, 5 + i, f"acme logistic {country.lower()}", country))
        expected = []
        async with conn.transaction():  # one by one, without the lock: each reads on its own
            for probe in probes:
                expected.append(
                    sorted(
                        c.claim_id
                        for c in await claims_repo.candidates(
                            conn, probe, policy, claims_repo.RIVAL_STATUSES, probe.products
                        )
                    )
                )
        name_index.forget(program)  # as the names were before: the similar ones not yet known
        async with conn.transaction():
            await lock_program(conn, program)
            await claims_repo.rival_candidates_many(conn, probes[:1], policy)  # the names read whole
        for i in range(len(COUNTRIES)):
            await elsewhere(claim(program, 30 + i, f"acme logistic {COUNTRIES[i].lower()}", COUNTRIES[i]))
            for probe in (i, len(COUNTRIES) + i):  # two probes in each country: both find it
                expected[probe] = sorted([*expected[probe], f"{program}-{30 + i}"])
        async with conn.transaction():
            await lock_program(conn, program)
            found = await claims_repo.rival_candidates_many(conn, probes, policy)
        assert [sorted(c.claim_id for c in f) for f in found] == expected
        for i, country in enumerate(COUNTRIES):
            assert {f"{program}-{n}" for n in (i, 5 + i, 30 + i)} <= set(expected[i]), (country, expected[i])


async def test_candidates_learn_the_names_that_arrived_in_the_same_round_trip(server_dsn):
    """Once a program's names are known, `candidates` asks for the claims of the similar names known
    and for the names that arrived since in one query; only a new similar name costs a second one.
    The other claims are written as another process would write them (this process's searches are
    not told of them)."""
    program = unique_id("names")
    probe = claim(program, 0, "acme logistic", "US")
    policy = policy_at(0.6)
    sent: list[str] = []

    async def found() -> list[str]:
        sent.clear()
        ids = [c.claim_id for c in await claims_repo.candidates(conn, probe, policy, ["approved"])]
        await asyncio.sleep(0)  # query loggers are called soon after, from the loop
        return ids

    async def elsewhere(c: Claim) -> None:
        await other.fetchval(claims_repo._INSERT, *claims_repo._insert_args(c, "{}"))

    async with scratch_database(server_dsn) as pool, pool.acquire() as conn, pool.acquire() as other:
        await claims_repo.insert(conn, claim(program, 1, "acme logistics", "US"))
        assert await found() == [f"{program}-1"]  # the program's names read for the first time
        conn.add_query_logger(lambda q: sent.append(q.query) if "conflict." in q.query else None)
        assert await found() == [f"{program}-1"]
        assert len(sent) == 1
        await elsewhere(claim(program, 2, "globex", "US"))  # not similar: one query
        assert await found() == [f"{program}-1"]
        assert len(sent) == 1
        await elsewhere(claim(program, 3, "acme logistix", "US"))  # similar: read at once
        await elsewhere(claim(program, 4, "acme logistix", "DE"))  # another country
        assert await found() == [f"{program}-1", f"{program}-3"]
        assert len(sent) == 2
        assert await found() == [f"{program}-1", f"{program}-3"]
        assert len(sent) == 1
        await elsewhere(dataclasses.replace(claim(program, 5, "initech", "US"), identity=Identity(
            name_key="initech", country="US", domain="acme.com"
        )))  # fmt: skip
        probe = dataclasses.replace(probe, identity=dataclasses.replace(probe.identity, domain="acme.com"))
        assert await found() == [f"{program}-1", f"{program}-3", f"{program}-5"]
        assert len(sent) == 1


async def test_candidates_in_another_database_search_its_own_names(server_dsn):
    """Names known from one database are not taken for another's: meeting another database (same
    program id), `candidates` reads that database's names from the start."""
    program = unique_id("names")
    policy = policy_at(0.6)
    probe = claim(program, 0, "globex", "US")
    async with scratch_database(server_dsn) as first, first.acquire() as a:
        for n in range(30):  # numbers past the other database's
            await claims_repo.insert(a, claim(program, n + 1, f"acme {n}", "US"))
        assert await claims_repo.candidates(a, probe, policy, ["approved"]) == []
        async with scratch_database(server_dsn) as second, second.acquire() as b:
            await b.fetchval(claims_repo._INSERT, *claims_repo._insert_args(claim(program, 99, "globex", "US"), "{}"))
            assert [c.claim_id for c in await claims_repo.candidates(b, probe, policy, ["approved"])] == [
                f"{program}-99"
            ]
        assert await claims_repo.candidates(a, probe, policy, ["approved"]) == []


async def test_a_program_forgotten_is_read_again_whole_and_the_others_are_kept(server_dsn):
    """`forget` leaves the process as if it had just started for that program: its next search reads
    every name of the country, and finds the same; another program's names stay known."""
    program, other = unique_id("names"), unique_id("names")
    async with scratch_database(server_dsn) as pool, pool.acquire() as conn:
        for n, name in enumerate(("acme logistics", "acme logistic", "globex")):
            await claims_repo.insert(conn, claim(program, n, name, "US"))
        await claims_repo.insert(conn, claim(other, 9, "initech", "US"))
        before = await name_index.similar_names(conn, program, "US", "acme logistic", 0.6)
        await name_index.similar_names(conn, other, "US", "initech", 0.6)
        assert name_index.known_names(program, "US") == 3 and name_index.known_names(other, "US") == 1

        name_index.forget(program)
        assert name_index.known_names(program, "US") == 0 and name_index.known_names(other, "US") == 1
        reads: list[str] = []
        conn.add_query_logger(lambda q: reads.append(q.query) if "claim_name_keys" in q.query else None)
        assert await name_index.similar_names(conn, program, "US", "acme logistic", 0.6) == before
        await asyncio.sleep(0)  # asyncpg calls its query loggers soon after, not at once
        assert name_index.known_names(program, "US") == 3 and len(reads) == 1


async def test_the_names_that_arrived_are_read_through_the_arrival_index_alone(server_dsn):
    """`conflict.names_arrived` reads, in each country asked, only the names after its number: no
    scan of the program's other names, even with statistics taken while the program was small (as
    a live program's are at first), when the planner cannot tell how few names are asked for."""
    program = unique_id("arrivals")
    countries = ["US", "DE", "FR", "GB", "ES"]
    insert = "INSERT INTO conflict.claim_name_keys (program_id, country, name_key) VALUES ($1, $2, $3)"
    async with scratch_database(server_dsn) as pool, pool.acquire() as conn:
        await conn.executemany(insert, [(program, countries[i % 5], f"early {i}") for i in range(50)])
        await conn.execute("ANALYZE conflict.claim_name_keys")
        await conn.executemany(insert, [(program, countries[i % 5], f"name {i}") for i in range(5000)])
        since = [
            await conn.fetchval(
                "SELECT seq FROM conflict.claim_name_keys WHERE program_id = $1 AND country = $2"
                " ORDER BY seq DESC OFFSET 3 LIMIT 1",
                program,
                country,
            )
            for country in countries
        ]
        async with conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM conflict.names_arrived($1, $2::text[], $3::bigint[], NULL)", program, countries, since
            )
            read = await conn.fetchrow(
                "SELECT seq_tup_read, idx_tup_fetch FROM pg_stat_xact_user_tables"
                " WHERE schemaname = 'conflict' AND relname = 'claim_name_keys'"
            )
    arrived = list(zip(row["countries"], row["seqs"], strict=True))
    assert arrived == sorted(arrived) and sorted(c for c, _ in arrived) == sorted(countries * 3)
    # a few rows a country (the range's, and what its bitmap rechecks), not the program's 5,050
    assert read["seq_tup_read"] == 0 and read["idx_tup_fetch"] < 100, dict(read)


async def test_the_names_that_arrived_are_read_by_a_plan_made_once(server_dsn):
    """`conflict.names_arrived` reads with its cached generic plan from its first call on, rather
    than planning its statement anew for each call's arrays (auto_explain shows the plan each call
    runs: a generic one reads parameters, a custom one the call's values)."""
    program = unique_id("arrivals")
    async with scratch_database(server_dsn) as pool, pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO conflict.claim_name_keys (program_id, country, name_key) VALUES ($1, 'US', 'acme')", program
        )
        plans: list[str] = []

        def listen(_: object, message: asyncpg.PostgresLogMessage) -> None:
            plans.append(message.message)

        conn.add_log_listener(listen)
        await conn.execute(
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;"
            " SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = notice"
        )
        for _ in range(3):
            row = await conn.fetchrow(
                "SELECT * FROM conflict.names_arrived($1, $2::text[], $3::bigint[], NULL)", program, ["US"], [0]
            )
            assert row["names"] == ["acme"]
        await asyncio.sleep(0.05)  # notices reach the listener through the loop
        conn.remove_log_listener(listen)
        inner = [p for p in plans if "claim_name_keys" in p and "names_arrived" not in p]
    assert len(inner) == 3, plans
    assert all(program not in p and "$1" in p for p in inner), inner
