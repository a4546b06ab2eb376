"""Partner-facing registration endpoints (SPEC section 4)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response, get, patch, post

from contracts.envelope import encode
from services.eventlog.events import ConcurrencyError, Metadata
from services.http.auth import require_role
from services.http.body import MAX_BODY_BYTES, decode_json
from services.http.health import Runtime, json_response, runtime
from services.http.paging import cursor_after, seq_of
from services.http.problems import Problem, not_found, validation_problem
from services.ids import new_id
from services.registration import idempotency, repository, views
from services.registration.api.errors import to_problem
from services.registration.api.schemas import AppealIn, OutcomeIn, ReasonIn, RegistrationIn, RegistrationPatch
from services.registration.directory import PARTNERS, PartnerCache, find_partner
from services.registration.domain import decide
from services.registration.domain.errors import DomainError, NotEnrolled
from services.registration.domain.model import Registration, started
from services.tokens import Principal

READERS = ("partner", "ops", "admin", "authority")


async def _raw(request: Request) -> bytes:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise Problem(413, "payload-too-large", "The request body is too large", f"at most {MAX_BODY_BYTES} bytes")
    return raw


def _meta(request: Request, principal: Principal) -> Metadata:
    return Metadata(
        correlation_id=request.headers.get("x-correlation-id") or str(uuid.uuid4()),
        actor=principal.subject,
        traceparent=request.headers.get("traceparent"),
    )


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def _visible(principal: Principal, program_id: str, partner_id: str) -> bool:
    if not principal.sees_program(program_id):
        return False
    return principal.role != "partner" or principal.partner_id == partner_id


def _storable(text: str) -> bool:
    """PostgreSQL text holds neither NUL nor a lone surrogate: such a value can match nothing."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _text_param(name: str, value: str | None) -> str | None:
    if value is not None and not _storable(value):
        raise Problem(
            400,
            "invalid-parameter",
            "A parameter is not valid",
            f"{name} is not valid text",
            errors=[{"field": name, "message": "must not contain NUL or unpaired surrogates"}],
        )
    return value


async def _load_visible(conn: asyncpg.Connection, principal: Principal, registration_id: str) -> Registration:
    if not _storable(registration_id):
        raise not_found("registration")
    state = await repository.load(conn, registration_id)
    if state is None or not _visible(principal, state.program_id, state.partner_id):
        raise not_found("registration")
    return state


def _reply(state: Registration, status: int = 200, extra_headers: dict[str, str] | None = None) -> Response:
    return json_response(views.resource(state), status, {**_etag(state.version), **(extra_headers or {})})


@post("/v1/registrations", tags=["registrations"], summary="Register a deal (partner)", status_code=201)
async def submit(request: Request) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, "partner")
    raw = await _raw(request)
    key = request.headers.get("idempotency-key")
    if key is not None and not (1 <= len(key) <= 255 and key.isprintable()):
        raise validation_problem([("Idempotency-Key", "must be 1 to 255 printable characters")])
    body = decode_json(raw, RegistrationIn)
    now = rt.clock()
    try:
        terms = decide.Terms(
            customer=body.customer.to_domain(),
            products=body.products,
            deal_type=body.deal_type,
            estimated_value=body.estimated_value.to_domain(),
            expected_close=body.expected_close,
            notes=body.notes,
            external_ref=body.external_ref,
        )
        if key:
            return await _submit_once(request, rt, principal, key, idempotency.request_hash(raw), terms, now)
        state = await _submit_grouped(request, rt, principal, terms, now)
    except (DomainError, ConcurrencyError) as e:
        raise to_problem(e) from e
    return _reply(state, 201, {"Location": f"/v1/registrations/{state.id}"})


async def _submit_grouped(
    request: Request, rt: Runtime, principal: Principal, terms: decide.Terms, now
) -> Registration:
    """Without an Idempotency-Key: the partner from the cache, the submission committed with the
    others in flight (group commit); read the partner again if it changed since it was cached."""
    program_id, partner_id = principal.program_id or "", principal.partner_id or ""
    partners: PartnerCache = rt.extras[PARTNERS]
    for attempt in range(3):
        partner = await partners.find(rt.pool, program_id, partner_id)
        if partner is None:
            raise NotEnrolled(program_id, partner_id)
        event = decide.submit(str(new_id()), partner, terms, principal.subject, now)
        try:
            return await repository.submit(rt.extras[repository.SUBMISSIONS], event, _meta(request, principal))
        except repository.PartnerChanged:
            partners.forget(program_id, partner_id)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _submit_once(
    request: Request, rt: Runtime, principal: Principal, key: str, digest: str, terms: decide.Terms, now
) -> Response:
    """With an Idempotency-Key: the stored response and the submission in one transaction."""
    program_id, partner_id = principal.program_id or "", principal.partner_id or ""
    async with rt.pool.acquire() as conn:
        if stored := await idempotency.find(conn, program_id, partner_id, key, now):
            return _replay(stored, digest)
        partner = await find_partner(conn, program_id, partner_id)
        if partner is None:
            raise NotEnrolled(program_id, partner_id)
        event = decide.submit(str(new_id()), partner, terms, principal.subject, now)
        state = started(event)
        headers = {**_etag(1), "Location": f"/v1/registrations/{state.id}"}
        try:
            async with conn.transaction():
                stored = idempotency.StoredResponse(digest, 201, headers, encode(views.resource(state)))
                await idempotency.remember(conn, program_id, partner_id, key, stored, now)
                await repository.save(conn, None, "registration.submitted", event, _meta(request, principal))
        except asyncpg.UniqueViolationError:
            # a concurrent request with the same key committed first: answer as it did
            stored = await idempotency.find(conn, program_id, partner_id, key, now)
            if stored is None:
                raise
            return _replay(stored, digest)
    return _reply(state, 201, {"Location": f"/v1/registrations/{state.id}"})


def _replay(stored: idempotency.StoredResponse, digest: str) -> Response:
    if stored.request_hash != digest:
        raise Problem(
            422,
            "idempotency-key-reused",
            "Idempotency-Key was used with another body",
            "an Idempotency-Key may only be retried with the same request body",
        )
    return Response(
        content=stored.body,
        status_code=stored.status_code,
        media_type="application/json",
        headers={**stored.headers, "Idempotent-Replayed": "true"},
    )


@get("/v1/registrations/{registration_id:str}", tags=["registrations"], summary="A registration")
async def get_one(request: Request, registration_id: str) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, *READERS)
    if not _storable(registration_id):
        raise not_found("registration")
    async with rt.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT program_id, partner_id, version, resource::text FROM registration.registrations"
            " WHERE registration_id = $1",
            registration_id,
        )
    if row is None or not _visible(principal, row[0], row[1]):
        raise not_found("registration")
    return Response(content=row[3].encode(), media_type="application/json", headers=_etag(row[2]))


@get("/v1/registrations/{registration_id:str}/decision", tags=["registrations"], summary="Why it has its status")
async def get_decision(request: Request, registration_id: str) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, *READERS)
    async with rt.pool.acquire() as conn:
        state = await _load_visible(conn, principal, registration_id)
    return json_response(views.decision(state), headers=_etag(state.version))


@get("/v1/registrations/{registration_id:str}/history", tags=["registrations"], summary="Its events, oldest first")
async def get_history(request: Request, registration_id: str) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, *READERS)
    if not _storable(registration_id):
        raise not_found("registration")
    async with rt.pool.acquire() as conn:
        events = await repository.load_events(conn, registration_id)
    state = repository.fold(events)
    if state is None or not _visible(principal, state.program_id, state.partner_id):
        raise not_found("registration")
    return json_response({"items": [views.history_item(e, d) for e, d in events]}, headers=_etag(state.version))


@get(
    "/v1/registrations",
    tags=["registrations"],
    summary="List registrations (own for partners, the program's for staff)",
)
async def list_registrations(
    request: Request,
    status: str | None = None,
    external_ref: str | None = None,
    program_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, *READERS)
    if not 1 <= limit <= 500:
        raise Problem(
            400,
            "invalid-parameter",
            "A parameter is not valid",
            "limit must be 1 to 500",
            errors=[{"field": "limit", "message": "must be between 1 and 500"}],
        )
    for name, value in (
        ("status", status),
        ("external_ref", external_ref),
        ("program_id", program_id),
        ("cursor", cursor),
    ):
        _text_param(name, value)
    where, args = _scope(principal, program_id)
    after = seq_of(cursor) if cursor else 0
    args.append(after)
    where.append(f"seq > ${len(args)}")
    for column, value in (("status", status), ("external_ref", external_ref)):
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    args.append(limit + 1)
    sql = (
        f"SELECT seq, resource::text FROM registration.registrations WHERE {' AND '.join(where)}"
        f" ORDER BY seq LIMIT ${len(args)}"
    )
    async with rt.pool.acquire() as conn:
        rows = await conn.fetch(sql, *args)
    page = rows[:limit]
    items = b",".join(r[1].encode() for r in page)
    next_cursor = cursor_after(page[-1][0]) if len(rows) > limit else None
    body = b'{"items":[' + items + b'],"next_cursor":' + msgspec.json.encode(next_cursor) + b"}"
    return Response(content=body, media_type="application/json")


def _scope(principal: Principal, program_id: str | None) -> tuple[list[str], list[Any]]:
    if principal.role == "partner":
        return ["program_id = $1", "partner_id = $2"], [principal.program_id, principal.partner_id]
    if principal.program_id is not None:
        if program_id is not None and program_id != principal.program_id:
            return ["false"], []
        return ["program_id = $1"], [principal.program_id]
    if program_id is not None:
        return ["program_id = $1"], [program_id]
    return ["true"], []


def _if_match(request: Request) -> int:
    header = request.headers.get("if-match")
    if header is None:
        raise Problem(428, "precondition-required", "If-Match is required", 'send If-Match: "<version>" from the ETag')
    tag = header.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise Problem(412, "stale-version", "If-Match does not match", "If-Match must be an ETag this API returned")
    return int(tag)


@patch("/v1/registrations/{registration_id:str}", tags=["registrations"], summary="Amend (partner, If-Match)")
async def amend(request: Request, registration_id: str) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, "partner")
    raw = await _raw(request)
    async with rt.pool.acquire() as conn:
        state = await _load_visible(conn, principal, registration_id)
        expected = _if_match(request)
        body = decode_json(raw, RegistrationPatch)
        if expected != state.version:
            raise Problem(
                412,
                "stale-version",
                "The registration changed meanwhile",
                f"it is at version {state.version}; reload it and try again",
            )
        unset = msgspec.UNSET
        change = decide.Amendment(
            customer=body.customer.to_domain() if body.customer is not unset else None,
            products=body.products if body.products is not unset else None,
            estimated_value=body.estimated_value.to_domain() if body.estimated_value is not unset else None,
            expected_close=body.expected_close if body.expected_close is not unset else None,
            notes=body.notes if body.notes is not unset else None,
            notes_given=body.notes is not unset,
        )
        try:
            event = decide.amend(state, change, principal.subject, rt.clock())
            state = await repository.save(conn, state, "registration.amended", event, _meta(request, principal))
        except (DomainError, ConcurrencyError) as e:
            raise to_problem(e) from e
    return _reply(state)


async def _act(request: Request, registration_id: str, body_type: type, act) -> Response:
    rt: Runtime = runtime(request)
    principal = rt.principal(request)
    require_role(principal, "partner")
    raw = await _raw(request)
    async with rt.pool.acquire() as conn:
        state = await _load_visible(conn, principal, registration_id)
        body = decode_json(raw, body_type) if raw.strip() or body_type is not ReasonIn else ReasonIn()
        try:
            name, event = act(state, body, principal.subject, rt.clock())
            state = await repository.save(conn, state, name, event, _meta(request, principal))
        except (DomainError, ConcurrencyError) as e:
            raise to_problem(e) from e
    return _reply(state)


@post("/v1/registrations/{registration_id:str}/withdraw", tags=["registrations"], status_code=200)
async def withdraw(request: Request, registration_id: str) -> Response:
    return await _act(
        request,
        registration_id,
        ReasonIn,
        lambda s, b, a, now: ("registration.withdrawn", decide.withdraw(s, b.reason, a, now)),
    )


@post("/v1/registrations/{registration_id:str}/extension", tags=["registrations"], status_code=200)
async def extension(request: Request, registration_id: str) -> Response:
    return await _act(
        request,
        registration_id,
        ReasonIn,
        lambda s, b, a, now: ("registration.extension_requested", decide.request_extension(s, b.reason, a, now)),
    )


@post("/v1/registrations/{registration_id:str}/outcome", tags=["registrations"], status_code=200)
async def outcome(request: Request, registration_id: str) -> Response:
    return await _act(
        request,
        registration_id,
        OutcomeIn,
        lambda s, b, a, now: (
            "registration.outcome_reported",
            decide.report_outcome(s, b.result, b.amount, b.closed_on, a, now),
        ),
    )


@post("/v1/registrations/{registration_id:str}/appeal", tags=["registrations"], status_code=200)
async def appeal(request: Request, registration_id: str) -> Response:
    return await _act(
        request,
        registration_id,
        AppealIn,
        lambda s, b, a, now: ("registration.appealed", decide.appeal(s, b.reason, a, now)),
    )


REGISTRATION_ROUTES = [
    submit,
    get_one,
    get_decision,
    get_history,
    list_registrations,
    amend,
    withdraw,
    extension,
    outcome,
    appeal,
]
