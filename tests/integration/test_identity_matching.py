"""The identity table against PostgreSQL: the indexed candidate query and pg_trgm `similarity()`
find a rival exactly when the pure rules say the two sides name the same customer, and the query
asks the indexes rather than scanning the claims."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import msgspec
import pytest

from services.conflict import claims_repo
from services.conflict.domain.claims import Claim
from services.conflict.domain.identity import identity_of
from services.conflict.domain.policy import DEFAULT_POLICY, MatchSettings
from tests.conftest import unique_id
from tests.identity_cases import IDENTITY_CASES, IGNORE_DOMAINS, NAME_THRESHOLD, Side
from tests.integration.scratch_database import scratch_database

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
POLICY = msgspec.structs.replace(
    DEFAULT_POLICY,
    match=MatchSettings(
        name_similarity=NAME_THRESHOLD, require_product_overlap=True, ignore_domains=list(IGNORE_DOMAINS)
    ),
)


def claim(program: str, side: Side, suffix: str) -> Claim:
    return Claim(
        claim_id=f"{program}-{suffix}",
        kind="registration",
        program_id=program,
        identity=identity_of(**side, ignore_domains=IGNORE_DOMAINS),
        products=("firewall",),
        submitted_at=NOW,
        status="pending",
        partner_id=f"partner-{suffix}",
        tier="gold",
        deal_type="new",
    )


@pytest.mark.parametrize(
    ("left", "right", "same_customer"), [case[1:] for case in IDENTITY_CASES], ids=[case[0] for case in IDENTITY_CASES]
)
async def test_identity_table_in_postgresql(pool, left: Side, right: Side, same_customer: bool):
    program = unique_id("ident")
    async with pool.acquire() as conn, conn.transaction():
        a = await claims_repo.insert(conn, claim(program, left, "left"))
        b = await claims_repo.insert(conn, claim(program, right, "right"))
        found_from_a = [r.claim.claim_id for r in await claims_repo.rivals(conn, a, POLICY)]
        found_from_b = [r.claim.claim_id for r in await claims_repo.rivals(conn, b, POLICY)]
    assert found_from_a == ([b.claim_id] if same_customer else [])
    assert found_from_b == ([a.claim_id] if same_customer else [])


async def plans_of(conn: Any, call: Any) -> tuple[Any, list[dict]]:
    """What `call` returns, and the plans of every statement it runs, nested ones (in functions) too."""
    notices: list[str] = []

    def listener(_conn: Any, message: Any) -> None:
        notices.append(message.message)

    conn.add_log_listener(listener)
    try:
        async with conn.transaction():
            await conn.execute("LOAD 'auto_explain'")
            for setting, value in (("log_min_duration", "0"), ("log_nested_statements", "on"), ("log_format", "json")):
                await conn.execute(f"SET LOCAL auto_explain.{setting} = {value}")
            await conn.execute("SET LOCAL auto_explain.log_level = notice")
            result = await call()
        # a query's plan is logged when its portal closes, at the latest with the transaction
        await asyncio.sleep(0.05)  # and notices reach listeners through the event loop
    finally:
        conn.remove_log_listener(listener)
    return result, [json.loads(n[n.index("{") :])["Plan"] for n in notices if '"Plan"' in n]


def _nodes(plan: dict) -> list[dict]:
    out = [plan]
    for child in plan.get("Plans", []):
        out += _nodes(child)
    return out


# Names of random letters (trigrams spread like real names'), one domain, DUNS and tax id each.
_BULK = """
    INSERT INTO conflict.claims (claim_id, kind, program_id, partner_id, tier, deal_type, name_key, country,
                                 domain, duns, tax_id, products, submitted_at, status)
    SELECT $1 || '-' || i, 'registration', $1, 'p' || (i % 40), 'gold', 'new',
           translate(md5(i::text), '0123456789', 'qrstuvwxyz') || ' ' || translate(md5((i * 7)::text), '0123456789',
                                                                                   'ghijklmnop'),
           (ARRAY['US', 'DE', 'FR', 'GB'])[1 + i % 4], 'company' || i || '.com', (100000000 + i)::text, 'TX' || i,
           ARRAY['firewall'], now(), 'pending'
    FROM generate_series(1, $2::int) AS i
"""


async def test_the_candidate_query_uses_the_indexes(server_dsn):
    """With tens of thousands of claims (below that PostgreSQL rightly prefers reading the small table),
    each identity key is looked up in its own index: no sequential scan of the claims. Similar names
    come from memory (the names that arrived since are read through their own index), and their claims
    from the (program, name) index."""
    program = unique_id("bulk")
    async with scratch_database(server_dsn) as pool, pool.acquire() as conn:
        await conn.execute(_BULK, program, 50_000)
        async with conn.transaction():
            near = await claims_repo.insert(
                conn,
                claim(
                    program,
                    {"name": "Acme Globex Initech Corp", "country": "US", "domain": None, "duns": None, "tax_id": None},
                    "near",
                ),
            )
            probe = await claims_repo.insert(
                conn,
                claim(
                    program,
                    {
                        "name": "Acme Globex Initech",
                        "country": "US",
                        "domain": "https://www.company17.com",
                        "duns": "100000042",
                        "tax_id": "TX99",
                    },
                    "probe",
                ),
            )
        await conn.execute("ANALYZE conflict.claims")
        found, plans = await plans_of(
            conn, lambda: claims_repo.candidates(conn, probe, POLICY, claims_repo.RIVAL_STATUSES)
        )
    assert sorted(c.claim_id for c in found) == sorted(
        [f"{program}-17", f"{program}-42", f"{program}-99", near.claim_id]
    )
    nodes = [node for plan in plans for node in _nodes(plan)]
    scans = [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes]
    assert not [s for s in scans if s[0] == "Seq Scan" and s[1] != "pg_database"], scans
    used = {n.get("Index Name") for n in nodes if n.get("Index Name")}
    assert {"claims_domain", "claims_duns", "claims_tax_id", "claims_program_name"} <= used, scans
    # planned once per session (migration 0012): a generic plan, its conditions on parameters
    domain_reads = [n for n in nodes if n.get("Index Name") == "claims_domain"]
    assert all("$4" in n["Index Cond"] for n in domain_reads), domain_reads
    # similar names are searched in memory: the database is asked only for names that arrived since
    arrivals = [n for n in nodes if n.get("Index Name") == "claim_name_keys_arrival"]
    assert len(arrivals) == 1 and "seq >" in arrivals[0]["Index Cond"], scans
