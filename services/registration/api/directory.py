"""Admin endpoints for programs and partners."""

from __future__ import annotations

from litestar import Request, Response, put

from contracts.envelope import ID_PATTERN
from services.eventlog.events import Metadata
from services.http.auth import require_program, require_role
from services.http.body import read_body
from services.http.health import json_response, runtime
from services.http.problems import validation_problem
from services.registration import directory
from services.registration.api.schemas import PartnerIn, ProgramIn


def check_ids(**ids: str) -> None:
    errors = [
        (name, "must match [a-z0-9][a-z0-9_-]{0,63}") for name, value in ids.items() if not ID_PATTERN.match(value)
    ]
    if errors:
        raise validation_problem(errors)


@put("/v1/programs/{program_id:str}", tags=["directory"], summary="Create or rename a program (admin)")
async def put_program(request: Request, program_id: str) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, "admin")
    check_ids(program_id=program_id)
    require_program(principal, program_id, "program")
    body = await read_body(request, ProgramIn)
    async with rt.pool.acquire() as conn:
        out = await directory.put_program(conn, program_id, body.name, Metadata(actor=principal.subject), rt.clock())
    return json_response(out)


@put(
    "/v1/programs/{program_id:str}/partners/{partner_id:str}",
    tags=["directory"],
    summary="Enrol or update a partner (admin)",
)
async def put_partner(request: Request, program_id: str, partner_id: str) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, "admin")
    check_ids(program_id=program_id, partner_id=partner_id)
    require_program(principal, program_id, "program")
    body = await read_body(request, PartnerIn)
    async with rt.pool.acquire() as conn:
        if not await directory.program_exists(conn, program_id):
            await directory.put_program(conn, program_id, program_id, Metadata(actor=principal.subject), rt.clock())
        out = await directory.enroll_partner(
            conn, program_id, partner_id, body.name, body.tier, body.type, Metadata(actor=principal.subject), rt.clock()
        )
    return json_response(out)


DIRECTORY_ROUTES = [put_program, put_partner]
