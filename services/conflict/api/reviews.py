"""`GET /v1/reviews` and `POST /v1/reviews/{registration_id}`: the vendor's review queue (authority, admin)."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Request, Response, get, post
from litestar.params import Parameter
from msgspec import Meta

from services.conflict import reviews
from services.conflict.api.common import check_program_id, iso
from services.conflict.domain.review import AWAITING_REVIEW, NotAwaitingReview, ReviewInvalid
from services.eventlog.events import Metadata
from services.http.auth import require_program, require_role
from services.http.body import MAX_BODY_BYTES, decode_json
from services.http.health import json_response, runtime
from services.http.paging import bad_parameter, cursor_after, seq_of
from services.http.problems import Problem, not_found, validation_problem
from services.http.shapes import Body

REVIEWERS = ("authority", "admin")


class ReviewIn(Body, kw_only=True):
    action: Literal["approve", "reject", "request_info"]
    reason: Literal["review_rejected", "insufficient_information"] | None = None
    comment: Annotated[str, Meta(max_length=10_000)] | None = None


@get("/v1/reviews", tags=["reviews"], summary="Registrations awaiting review, oldest first (authority, admin)")
async def list_reviews(
    request: Request,
    program_id: str | None = None,
    state_filter: Annotated[str | None, Parameter(query="state")] = None,  # `state` is litestar's own kwarg
    limit: int = 50,
    cursor: str | None = None,
) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, *REVIEWERS)
    if program_id is not None:
        check_program_id(program_id)
        require_program(principal, program_id, "program")
    if state_filter is not None and state_filter not in AWAITING_REVIEW:
        raise bad_parameter("state", "must be pending_review or info_requested")
    if not 1 <= limit <= 500:
        raise bad_parameter("limit", "must be between 1 and 500")
    after = seq_of(cursor) if cursor else 0
    scope = program_id or principal.program_id  # an authority sees its own program only
    states = [state_filter] if state_filter else sorted(AWAITING_REVIEW)
    async with rt.pool.acquire() as conn:
        items, more = await reviews.queue(conn, scope, states, after, limit)
    for item in items:
        for key in ("submitted_at", "waiting_since", "review_due_at"):
            item[key] = iso(item[key])
    return json_response({"items": items, "next_cursor": cursor_after(more) if more is not None else None})


@post(
    "/v1/reviews/{registration_id:str}",
    tags=["reviews"],
    status_code=200,
    summary="Approve, reject or ask for information on a registration awaiting review (authority, admin)",
)
async def post_review(request: Request, registration_id: str) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, *REVIEWERS)
    raw = await _raw(request)  # decoded once the caller is known to see the resource
    now = rt.clock()
    meta = Metadata(
        correlation_id=registration_id, actor=principal.subject, traceparent=request.headers.get("traceparent")
    )
    async with rt.pool.acquire() as conn, conn.transaction():
        claim = await reviews.awaiting(conn, registration_id)
        if claim is None:
            raise not_found("registration")
        require_program(principal, claim.program_id, "registration")
        body = decode_json(raw, ReviewIn)
        try:
            event = await reviews.act(
                conn,
                claim,
                body.action,
                actor=principal.subject,
                now=now,
                meta=meta,
                reason=body.reason,
                comment=body.comment,
            )
        except NotAwaitingReview as e:
            raise Problem(
                409,
                "not-awaiting-review",
                "The registration is not awaiting review",
                str(e),
                registration_status=e.status,
            ) from e
        except ReviewInvalid as e:
            raise validation_problem(e.errors) from e
    out = {
        "registration_id": registration_id,
        "program_id": event.program_id,
        "action": body.action,
        "status": event.status,
        "status_reason": event.reason,
        "comment": event.comment,
        "protected_until": iso(event.protected_until),
        "decided_by": principal.subject,
        "decided_at": iso(now),
    }
    return json_response(out)


async def _raw(request: Request) -> bytes:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise Problem(413, "payload-too-large", "The request body is too large", f"at most {MAX_BODY_BYTES} bytes")
    return raw


REVIEW_ROUTES = [list_reviews, post_review]
