"""`POST /v1/conflicts/{conflict_id}/decision`: an authority at the conflict's level or above, or an
admin, settles a dispute (`award`, `split` or `reject_all`, with a rationale)."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Request, Response, post
from msgspec import Meta

from services.conflict import disputes
from services.conflict.api.common import iso
from services.conflict.domain.decisions import AlreadyResolved, BelowLevel, Decision, DecisionInvalid
from services.eventlog.events import Metadata
from services.http.auth import require_role
from services.http.body import MAX_BODY_BYTES, decode_json
from services.http.health import json_response, runtime
from services.http.problems import Problem, forbidden, not_found, validation_problem
from services.http.shapes import Body

ClaimId = Annotated[str, Meta(min_length=1, max_length=128)]


class ShareIn(Body, kw_only=True):
    claim_id: ClaimId
    percent: int


class DecisionIn(Body, kw_only=True):
    outcome: Literal["award", "split", "reject_all"]
    winner: ClaimId | None = None
    shares: Annotated[list[ShareIn], Meta(max_length=100)] | None = None
    rationale: Annotated[str, Meta(min_length=1, max_length=10_000)]

    def to_domain(self) -> Decision:
        shares = tuple((s.claim_id, s.percent) for s in self.shares or ())
        return Decision(self.outcome, winner=self.winner, shares=shares, rationale=self.rationale)


async def _raw(request: Request) -> bytes:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise Problem(413, "payload-too-large", "The request body is too large", f"at most {MAX_BODY_BYTES} bytes")
    return raw


@post(
    "/v1/conflicts/{conflict_id:str}/decision",
    tags=["conflicts"],
    status_code=200,
    summary="Decide a conflict (authority at its level or above, admin)",
)
async def post_decision(request: Request, conflict_id: str) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, "authority", "admin")
    raw = await _raw(request)  # decoded once the caller is known to see the resource
    now = rt.clock()
    meta = Metadata(correlation_id=conflict_id, actor=principal.subject, traceparent=request.headers.get("traceparent"))
    level = principal.level if principal.role == "authority" else None
    async with rt.pool.acquire() as conn, conn.transaction():
        found = await disputes.load(conn, conflict_id)
        if found is None or not principal.sees_program(found.program_id):
            raise not_found("conflict")
        body = decode_json(raw, DecisionIn)
        try:
            resolved = await disputes.decide(
                conn, conflict_id, body.to_domain(), actor=principal.subject, authority_level=level, now=now, meta=meta
            )
        except AlreadyResolved as e:
            raise Problem(
                409, "conflict-resolved", "The conflict is already resolved", str(e), conflict_state="resolved"
            ) from e
        except BelowLevel as e:
            raise forbidden(str(e)) from e
        except DecisionInvalid as e:
            raise validation_problem(e.errors) from e
    return json_response(
        {
            "id": conflict_id,
            "program_id": resolved.program_id,
            "state": "resolved",
            "decision": {
                "outcome": resolved.outcome,
                "winner": resolved.winner,
                "shares": [{"claim_id": s.claim_id, "percent": s.percent} for s in resolved.shares],
                "rationale": resolved.rationale,
                "reason": resolved.reason,
                "level": resolved.level,
                "decided_by": resolved.decided_by,
                "resolved_at": iso(resolved.resolved_at),
            },
        }
    )


DECISION_ROUTES = [post_decision]
