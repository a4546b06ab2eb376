"""`POST/DELETE /v1/programs/{program_id}/direct-deals`: the vendor's own claims (admin, integration)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Request, Response, delete, post
from msgspec import Meta

from services.conflict import direct_deals
from services.conflict.api.common import check_program_id, iso
from services.eventlog.events import Metadata
from services.http.auth import require_program, require_role
from services.http.body import read_body
from services.http.health import json_response, runtime
from services.http.problems import Problem, not_found, validation_problem
from services.http.shapes import Body, CustomerIn, Products
from services.terms import customer_errors


class DirectDealIn(Body, kw_only=True):
    external_ref: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    customer: CustomerIn
    products: Products
    owner: Annotated[str, Meta(min_length=1, max_length=200)]
    opened_on: dt.date
    expected_close: dt.date | None = None


@post(
    "/v1/programs/{program_id:str}/direct-deals",
    tags=["direct deals"],
    status_code=201,
    summary="Record the vendor's own deal (admin, integration)",
)
async def post_direct_deal(request: Request, program_id: str) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, "admin", "integration")
    check_program_id(program_id)
    require_program(principal, program_id, "program")
    body = await read_body(request, DirectDealIn)
    customer = body.customer.to_domain()
    errors = customer_errors(customer)
    if errors:
        raise validation_problem(errors)
    if len(set(body.products)) != len(body.products):
        raise validation_problem([("products", "must not repeat a product")])
    now = rt.clock()
    meta = Metadata(actor=principal.subject, traceparent=request.headers.get("traceparent"))
    async with rt.pool.acquire() as conn, conn.transaction():
        event = await direct_deals.record_deal(
            conn,
            program_id=program_id,
            customer=customer,
            products=body.products,
            owner=body.owner,
            opened_on=body.opened_on,
            expected_close=body.expected_close,
            external_ref=body.external_ref,
            actor=principal.subject,
            now=now,
            meta=meta,
        )
    out = msgspec.to_builtins(event)
    out["id"] = event.direct_deal_id
    out["status"] = "open"
    out["recorded_at"] = iso(now)
    return json_response(out, 201, {"Location": f"/v1/programs/{program_id}/direct-deals/{event.direct_deal_id}"})


@delete(
    "/v1/programs/{program_id:str}/direct-deals/{deal_id:str}",
    tags=["direct deals"],
    status_code=200,
    summary="Release a direct deal (admin, integration)",
)
async def delete_direct_deal(request: Request, program_id: str, deal_id: str) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, "admin", "integration")
    check_program_id(program_id)
    require_program(principal, program_id, "program")
    meta = Metadata(actor=principal.subject, traceparent=request.headers.get("traceparent"))
    async with rt.pool.acquire() as conn, conn.transaction():
        released = await direct_deals.release_deal(conn, program_id, deal_id, principal.subject, rt.clock(), meta)
    if released is None:
        raise not_found("direct deal")
    if released is False:
        raise Problem(409, "already-released", "The direct deal is already released", f"direct deal {deal_id}")
    return json_response({"id": deal_id, "program_id": program_id, "status": "released"})


DIRECT_DEAL_ROUTES = [post_direct_deal, delete_direct_deal]
