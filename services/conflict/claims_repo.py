"""Claims in PostgreSQL: insert, load, and find rivals through the matching indexes.

Candidates come from the indexes (equal domain, DUNS or tax id, or a trigram match on the
normalized name in the same country); the pure `collision` check then confirms each one with the
same rules, so what PostgreSQL finds and what a replay computes agree.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
import msgspec

from services.conflict import name_index
from services.conflict.domain.claims import Claim, Rival, collision
from services.conflict.domain.identity import Identity
from services.conflict.domain.policy import Policy

# the columns of a claim that `to_claim` reads, in its order (a candidate's too)
COLUMNS = (
    "claim_id, kind, program_id, partner_id, tier, deal_type, name_key, country, domain, duns, tax_id, products,"
    " amount, currency, submitted_at, status, protected_until, approved_at, conflict_id, attribution_percent,"
    " extensions, appeals, decided_at, decided_by, decided_level, policy_version, seq"
)
RIVAL_STATUSES = ["pending", "pending_review", "info_requested", "under_review", "approved", "open"]


def to_claim(r: asyncpg.Record | tuple) -> Claim:
    """The claim of a row of `COLUMNS`, in their order (unpacked by position: a probe's candidates
    are many, and reading 27 columns by name cost a third of building each)."""
    (
        claim_id, kind, program_id, partner_id, tier, deal_type, name_key, country, domain, duns, tax_id, products,
        amount, currency, submitted_at, status, protected_until, approved_at, conflict_id, attribution_percent,
        extensions, appeals, decided_at, decided_by, decided_level, policy_version, seq,
    ) = r  # fmt: skip
    return Claim(
        claim_id=claim_id,
        kind=kind,
        program_id=program_id,
        partner_id=partner_id,
        tier=tier,
        deal_type=deal_type,
        identity=Identity(name_key, country, domain, duns, tax_id),
        products=tuple(products),
        amount=amount,
        currency=currency,
        submitted_at=submitted_at,
        status=status,
        protected_until=protected_until,
        approved_at=approved_at,
        conflict_id=conflict_id,
        attribution_percent=attribution_percent,
        extensions=extensions,
        appeals=appeals,
        decided_at=decided_at,
        decided_by=decided_by,
        decided_level=decided_level,
        policy_version=policy_version,
        seq=seq,
    )


_INSERT = """
    INSERT INTO conflict.claims (claim_id, kind, program_id, partner_id, tier, deal_type, name_key, country,
        domain, duns, tax_id, products, amount, currency, submitted_at, status, customer)
    VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17::jsonb)
    ON CONFLICT (claim_id) DO UPDATE SET claim_id = excluded.claim_id
    RETURNING seq
"""


def _insert_args(c: Claim, customer_json: str) -> tuple:
    i = c.identity
    return (
        c.claim_id, c.kind, c.program_id, c.partner_id, c.tier, c.deal_type, i.name_key, i.country, i.domain,
        i.duns, i.tax_id, list(c.products), c.amount, c.currency, c.submitted_at, c.status, customer_json,
    )  # fmt: skip


async def insert(conn: asyncpg.Connection, c: Claim, customer_json: str = "{}") -> Claim:
    """Record a new claim (idempotent on its id); returns it with its arrival sequence."""
    seq = await conn.fetchval(_INSERT, *_insert_args(c, customer_json))
    name_index.added(c.program_id, c.identity.country, c.identity.name_key)
    return _with_seq(c, seq)


_rows_encoder = msgspec.json.Encoder()


def decided_rows(claims: list[Claim], customers_json: list[str]) -> str:
    """New claims as they stand (decided already), as `conflict.insert_claims` (migration 0015) takes
    them: a JSON array of their rows, in order."""
    rows = []
    for c, customer in zip(claims, customers_json, strict=True):
        i = c.identity
        rows.append(
            {
                "claim_id": c.claim_id, "kind": c.kind, "program_id": c.program_id, "partner_id": c.partner_id,
                "tier": c.tier, "deal_type": c.deal_type, "name_key": i.name_key, "country": i.country,
                "domain": i.domain, "duns": i.duns, "tax_id": i.tax_id, "products": list(c.products),
                "amount": c.amount, "currency": c.currency, "submitted_at": c.submitted_at, "status": c.status,
                "customer": msgspec.Raw(customer.encode()), "protected_until": c.protected_until,
                "approved_at": c.approved_at, "conflict_id": c.conflict_id,
                "attribution_percent": c.attribution_percent, "extensions": c.extensions, "appeals": c.appeals,
                "decided_at": c.decided_at, "decided_by": c.decided_by, "decided_level": c.decided_level,
                "policy_version": c.policy_version,
            }
        )  # fmt: skip
    return _rows_encoder.encode(rows).decode()


def decided_written(claims: list[Claim]) -> None:
    """The claims written by `INSERT_CLAIMS` are known at once to the searches of the transaction."""
    name_index.added_many((c.program_id, c.identity.country, c.identity.name_key) for c in claims)


def _with_seq(c: Claim, seq: int) -> Claim:
    from dataclasses import replace

    return replace(c, seq=seq)


async def update_terms(conn: asyncpg.Connection, c: Claim) -> None:
    await conn.execute(
        "UPDATE conflict.claims SET name_key=$2, country=$3, domain=$4, duns=$5, tax_id=$6, products=$7,"
        " amount=$8, currency=$9 WHERE claim_id=$1",
        c.claim_id,
        c.identity.name_key,
        c.identity.country,
        c.identity.domain,
        c.identity.duns,
        c.identity.tax_id,
        list(c.products),
        c.amount,
        c.currency,
    )
    name_index.added(c.program_id, c.identity.country, c.identity.name_key)


async def load(conn: asyncpg.Connection, claim_id: str) -> Claim | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM conflict.claims WHERE claim_id = $1", claim_id)
    return to_claim(row) if row else None


async def load_many(conn: asyncpg.Connection, claim_ids: Iterable[str]) -> list[Claim]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM conflict.claims WHERE claim_id = ANY($1::text[]) ORDER BY seq", list(claim_ids)
    )
    return [to_claim(r) for r in rows]


async def candidates(
    conn: asyncpg.Connection,
    c: Claim,
    policy: Policy,
    statuses: list[str],
    sharing_products: Iterable[str] | None = None,
) -> list[Claim]:
    """Claims in the program that the indexes say may name the same customer, in `statuses` (and,
    given `sharing_products`, holding at least one of them)."""
    args = [
        c.program_id, c.claim_id, statuses, c.identity.domain, c.identity.duns, c.identity.tax_id, c.identity.country,
        None, list(sharing_products) if sharing_products is not None else None,
    ]  # fmt: skip
    threshold = policy.match.name_similarity
    return [to_claim(r) for r in await name_index.candidate_rows(conn, COLUMNS, args, c.identity.name_key, threshold)]


def rival_probes(claims: list[Claim], policy: Policy) -> list[tuple[list, str]]:
    """The candidate queries of `rivals` for each of `claims`: (arguments, name key), as
    `name_index.candidate_rows_many` takes them."""
    return [
        (
            [
                c.program_id, c.claim_id, RIVAL_STATUSES, c.identity.domain, c.identity.duns, c.identity.tax_id,
                c.identity.country, None, _overlap_required(c, policy),
            ],
            c.identity.name_key,
        )
        for c in claims
    ]  # fmt: skip


async def rival_candidates_many(
    conn: asyncpg.Connection, claims: list[Claim], policy: Policy, *, prefetched: bool = False
) -> list[list[Claim]]:
    """The candidates `rivals` confirms, for each of `claims` (under their program's lock), in one
    round trip with the names that arrived since the last search (`name_index.candidate_rows_many`).

    `prefetched`: the transaction has written nothing yet, so the candidates read with its program
    lock, when they were asked for these very queries (`name_index.prefetch`), are still those."""
    probes = rival_probes(claims, policy)
    threshold = policy.match.name_similarity
    kept = name_index.take_prefetched(conn, probes, threshold)  # taken in any case: stale after a write
    if kept is not None and prefetched:
        found = kept
    else:
        found = await name_index.candidate_rows_many(conn, COLUMNS, probes, threshold)
    return [[to_claim(r) for r in rows] for rows in found]


def _overlap_required(c: Claim, policy: Policy) -> tuple[str, ...] | None:
    return c.products if policy.match.require_product_overlap else None


async def rivals(conn: asyncpg.Connection, c: Claim, policy: Policy, exclude: Iterable[str] = ()) -> list[Rival]:
    """Live claims that collide with `c` (confirmed by the pure collision rules)."""
    found = await candidates(conn, c, policy, RIVAL_STATUSES, _overlap_required(c, policy))
    return confirmed_rivals(c, found, policy, set(exclude))


def confirmed_rivals(c: Claim, found: Iterable[Claim], policy: Policy, skip: set[str]) -> list[Rival]:
    """The candidates `found` for `c` that the pure collision rules confirm (those in `skip` left out)."""
    out = []
    for other in found:
        if other.claim_id in skip:
            continue
        evidence = collision(c, other, policy.match.name_similarity, policy.match.require_product_overlap)
        if evidence is not None:
            out.append(Rival(other, evidence))
    return out


async def history(conn: asyncpg.Connection, c: Claim, policy: Policy) -> list[Claim]:
    """Closed deals (won or lost) on the same customer, for incumbency."""
    found = await candidates(conn, c, policy, ["won", "lost"])
    return [o for o in found if collision(c, o, policy.match.name_similarity, False) is not None]


async def waitlisted_behind(conn: asyncpg.Connection, c: Claim, policy: Policy) -> list[Claim]:
    """Waitlisted claims that collide with `c`, oldest first."""
    found = await candidates(conn, c, policy, ["waitlisted"], _overlap_required(c, policy))
    keep = [o for o in found if collision(c, o, policy.match.name_similarity, policy.match.require_product_overlap)]
    return sorted(keep, key=lambda o: (o.submitted_at, o.seq))
