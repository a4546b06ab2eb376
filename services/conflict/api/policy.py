"""`PUT/GET /v1/programs/{program_id}/policy`: a program's versioned rulebook."""

from __future__ import annotations

from litestar import Request, Response, get, put

from services.conflict import policy_store
from services.conflict.api.common import check_program_id, iso
from services.conflict.domain.errors import NotJson, PolicyInvalid
from services.conflict.domain.policy import parse_policy_document, policy_to_json
from services.conflict.recorder import lock_program, record
from services.eventlog.events import Metadata
from services.http.auth import require_program, require_role
from services.http.body import MAX_BODY_BYTES
from services.http.health import json_response, runtime
from services.http.problems import Problem, validation_problem


@put("/v1/programs/{program_id:str}/policy", tags=["policy"], summary="Publish a new policy version (admin)")
async def put_policy(request: Request, program_id: str) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, "admin")
    check_program_id(program_id)
    require_program(principal, program_id, "program")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise Problem(413, "payload-too-large", "The request body is too large", f"at most {MAX_BODY_BYTES} bytes")
    try:
        policy = parse_policy_document(raw)
    except NotJson as e:
        raise Problem(400, "malformed-body", "The request body is not JSON", str(e)) from e
    except PolicyInvalid as e:
        raise validation_problem(e.errors) from e
    now = rt.clock()
    async with rt.pool.acquire() as conn, conn.transaction():
        await lock_program(conn, program_id)
        version = await policy_store.next_version(conn, program_id)
        emit = policy_store.publication(program_id, policy, version, principal.subject, now)
        await record(
            conn,
            [emit],
            cause_id=f"policy:{program_id}:{version}",
            now=now,
            meta=Metadata(actor=principal.subject, traceparent=request.headers.get("traceparent")),
            program_id=program_id,
        )
    body = {"program_id": program_id, "version": version, "published_at": iso(now), "policy": policy_to_json(policy)}
    return json_response(body, 200, {"ETag": f'"{version}"'})


@get("/v1/programs/{program_id:str}/policy", tags=["policy"], summary="The policy in force")
async def get_policy(request: Request, program_id: str) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, "admin", "ops", "authority", "integration", "partner")
    check_program_id(program_id)
    require_program(principal, program_id, "program")
    async with rt.pool.acquire() as conn:
        policy, version = await policy_store.in_force(conn, program_id)
    return json_response(
        {"program_id": program_id, "version": version, "policy": policy_to_json(policy)},
        headers={"ETag": f'"{version}"'},
    )


POLICY_ROUTES = [put_policy, get_policy]
