"""`GET /v1/ownership`: every claim that held a customer at an instant, from the ownership events."""

from __future__ import annotations

import datetime as dt

import msgspec
from litestar import Request, Response, get

from contracts.conflict_events import OwnershipChanged
from services.conflict import claims_repo, name_index, policy_store
from services.conflict.api.common import check_program_id, iso
from services.conflict.domain.claims import Claim
from services.conflict.domain.identity import identity_of
from services.conflict.recorder import STORE
from services.http.auth import require_program, require_role
from services.http.health import json_response, runtime
from services.http.paging import bad_parameter

_decoder = msgspec.json.Decoder(OwnershipChanged)
ALL_STATUSES = [
    "pending",
    "pending_review",
    "info_requested",
    "under_review",
    "approved",
    "waitlisted",
    "rejected",
    "expired",
    "withdrawn",
    "won",
    "lost",
    "open",
    "released",
]


def intervals(events: list[tuple[str, OwnershipChanged]]) -> list[tuple[dt.datetime, dt.datetime | None]]:
    """[from, until) spans of one claim's hold, from its ownership events in order."""
    spans: list[list] = []
    for name, e in events:
        if name == "ownership.granted":
            spans.append([e.valid_from, e.valid_until])
        elif name == "ownership.extended" and spans:
            spans[-1][1] = e.valid_until
        elif name == "ownership.released" and spans:
            end = spans[-1][1]
            spans[-1][1] = e.at if end is None or e.at < end else end
    return [(a, b) for a, b in spans]


@get("/v1/ownership", tags=["ownership"], summary="Who held a customer at an instant (ops, admin)")
async def get_ownership(
    request: Request,
    program_id: str,
    at: str,
    domain: str | None = None,
    duns: str | None = None,
    name: str | None = None,
    country: str | None = None,
) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, "ops", "admin")
    check_program_id(program_id)
    require_program(principal, program_id, "program")
    if not (domain or duns or name):
        raise bad_parameter("domain", "give one of domain, duns or name")
    try:
        instant = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError as e:
        raise bad_parameter("at", "must be an RFC 3339 date-time") from e
    if instant.tzinfo is None:
        raise bad_parameter("at", "must carry a time zone (Z or an offset)")
    async with rt.pool.acquire() as conn:
        policy, _ = await policy_store.in_force(conn, program_id)
        probe_identity = identity_of(
            name or "", country or "", domain, duns, None, ignore_domains=policy.match.ignore_domains
        )
        probe = Claim(
            claim_id="",
            kind="probe",
            program_id=program_id,
            identity=probe_identity,
            products=(),
            submitted_at=instant,
            status="probe",
        )
        found = await claims_repo.candidates(conn, probe, policy, ALL_STATUSES)
        if name and not country:
            found += await _by_name_any_country(conn, program_id, probe_identity.name_key, policy)
        items = []
        seen = set()
        for c in found:
            if c.claim_id in seen:
                continue
            seen.add(c.claim_id)
            recorded = await STORE.read_stream(conn, f"claim-{c.claim_id}")
            owned = [(e.event_type, _decoder.decode(e.data)) for e in recorded if e.event_type.startswith("ownership.")]
            for start, end in intervals(owned):
                if start <= instant and (end is None or instant < end):
                    items.append(
                        {
                            "claim_id": c.claim_id,
                            "kind": c.kind,
                            "registration_id": None if c.is_direct else c.claim_id,
                            "partner_id": c.partner_id,
                            "products": list(c.products),
                            "from": iso(start),
                            "until": iso(end),
                        }
                    )
    return json_response({"items": items})


_BY_NAMES = f"SELECT {claims_repo.COLUMNS} FROM conflict.claims WHERE program_id = $1 AND name_key = ANY($2::text[])"


async def _by_name_any_country(conn, program_id: str, name_key: str, policy) -> list[Claim]:
    """Claims whose name is similar in their country, in any of the program's countries (each
    country's names searched as the intake searches one)."""
    found = set(await name_index.similar_names_any_country(conn, program_id, name_key, policy.match.name_similarity))
    if not found:
        return []
    rows = await conn.fetch(_BY_NAMES, program_id, sorted({name for _, name in found}))
    return [c for c in map(claims_repo.to_claim, rows) if (c.identity.country, c.identity.name_key) in found]


OWNERSHIP_ROUTES = [get_ownership]
