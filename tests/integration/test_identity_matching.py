"""The identity table against PostgreSQL: the indexed candidate query and pg_trgm `similarity()`
find a rival exactly when the pure rules say the two sides name the same customer, and the query
asks the indexes rather than scanning the claims."""

from __future__ import annotations

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


class RecordingConnection:
    """Forwards to a real connection and remembers the last query fetched, to EXPLAIN it."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.fetched: list[tuple[str, tuple]] = []

    async def execute(self, sql: str, *args: Any) -> Any:
        return await self.conn.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        self.fetched.append((sql, args))
        return await self.conn.fetch(sql, *args)


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
    each identity key is looked up in its own index: no sequential scan of the claims."""
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
        async with conn.transaction():
            recorder = RecordingConnection(conn)
            found = await claims_repo.candidates(recorder, probe, POLICY, claims_repo.RIVAL_STATUSES)
            sql, args = recorder.fetched[-1]
            plan = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args))[0]["Plan"]
    assert sorted(c.claim_id for c in found) == sorted(
        [f"{program}-17", f"{program}-42", f"{program}-99", near.claim_id]
    )
    nodes = _nodes(plan)
    scans = [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes]
    assert not [s for s in scans if s[0] == "Seq Scan"], scans
    used = {n.get("Index Name") for n in nodes if n.get("Index Name")}
    assert {"claims_domain", "claims_duns", "claims_tax_id", "claims_name_trgm"} <= used, scans
