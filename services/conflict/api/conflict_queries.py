"""Conflicts as ops see them (ops, authority, admin): one conflict, the filtered list, the timeline.

A conflict's document is the `conflict.opened` event with the projector's `decision` and
`appeals` merged in; the state, level and deadline come from the projection's columns. The
timeline reads the streams of the dispute and of every claim in it, in both services' logs.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Request, Response, get
from litestar.params import Parameter

from contracts.envelope import ID_PATTERN
from services.conflict.api.common import iso
from services.http.auth import require_program, require_role
from services.http.health import json_response, runtime
from services.http.paging import bad_parameter, cursor_after, seq_of
from services.http.problems import not_found
from services.tokens import Principal

READERS = ("ops", "authority", "admin")
STATES = ("escalated", "resolved")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_COLUMNS = "seq, conflict_id, program_id, state, level, authority_role, due_at, policy_version, doc::text"


def conflict_view(row: asyncpg.Record) -> dict[str, Any]:
    """The shape of `GET /v1/conflicts/{id}` (SPEC section 5) from a `conflict.conflicts` row."""
    doc = msgspec.json.decode(row["doc"])
    return {
        "id": row["conflict_id"],
        "program_id": row["program_id"],
        "state": row["state"],
        "claims": doc.get("claims", []),
        "evidence": doc.get("evidence", []),
        "rule_trail": doc.get("rule_trail", []),
        "policy_version": row["policy_version"],
        "level": row["level"],
        "authority_role": row["authority_role"],
        "due_at": iso(row["due_at"]),
        "decision": doc.get("decision"),
        "appeals": doc.get("appeals", []),
        "cause": doc.get("cause", "collision"),
        "opened_at": doc.get("opened_at"),
    }


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C `traceparent` (`00-<trace_id>-<span_id>-<flags>`), None when absent or malformed."""
    m = _TRACEPARENT.match((traceparent or "").strip().lower())
    if m is None or m.group(1) == "0" * 32:
        return None
    return m.group(1)


async def _visible(conn: asyncpg.Connection, principal: Principal, conflict_id: str) -> asyncpg.Record:
    if "\x00" in conflict_id or len(conflict_id) > 200:  # no such id is ever stored (PostgreSQL refuses NUL)
        raise not_found("conflict")
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM conflict.conflicts WHERE conflict_id = $1", conflict_id)
    if row is None or not principal.sees_program(row["program_id"]):
        raise not_found("conflict")
    return row


@get("/v1/conflicts/{conflict_id:str}", tags=["conflicts"], summary="One conflict (ops, authority, admin)")
async def get_conflict(request: Request, conflict_id: str) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, *READERS)
    async with rt.pool.acquire() as conn:
        row = await _visible(conn, principal, conflict_id)
    return json_response(conflict_view(row))


def _positive_int(field: str, text: str | None, default: int | None, high: int) -> int | None:
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= high:
        raise bad_parameter(field, f"must be an integer from 1 to {high}")
    return int(text)


def _filters(
    principal: Principal,
    program_id: str | None,
    state: str | None,
    level: str | None,
    overdue: str | None,
    now: dt.datetime,
) -> tuple[list[str], list[Any]]:
    """SQL conditions and their arguments for the list's query parameters (400 for a bad one)."""
    where: list[str] = []
    args: list[Any] = []

    def add(condition: str, value: Any) -> None:
        args.append(value)
        where.append(condition.format(f"${len(args)}"))

    if program_id is not None:
        if not ID_PATTERN.match(program_id):
            raise bad_parameter("program_id", "must match [a-z0-9][a-z0-9_-]{0,63}")
        require_program(principal, program_id, "program")
    scope = program_id or principal.program_id
    if scope is not None:
        add("program_id = {}", scope)
    if state is not None:
        if state not in STATES:
            raise bad_parameter("state", f"must be one of {', '.join(STATES)}")
        add("state = {}", state)
    lvl = _positive_int("level", level, None, 1000)
    if lvl is not None:
        add("level = {}", lvl)
    if overdue is not None:
        if overdue not in ("true", "false"):
            raise bad_parameter("overdue", "must be true or false")
        if overdue == "true":
            add("(state = 'escalated' AND due_at < {})", now)
        else:
            add("NOT (state = 'escalated' AND due_at IS NOT NULL AND due_at < {})", now)
    return where, args


@get("/v1/conflicts", tags=["conflicts"], summary="Conflicts, filtered and paginated (ops, authority, admin)")
async def list_conflicts(
    request: Request,
    program_id: str | None = None,
    state_filter: Annotated[str | None, Parameter(query="state")] = None,  # `state` is litestar's own kwarg
    level: str | None = None,
    overdue: str | None = None,
    limit: str | None = None,
    cursor: str | None = None,
) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, *READERS)
    size = _positive_int("limit", limit, 50, 500)
    where, args = _filters(principal, program_id, state_filter, level, overdue, rt.clock())
    args.append(seq_of(cursor) if cursor else 0)
    where.append(f"seq > ${len(args)}")
    args.append(size + 1)
    sql = f"SELECT {_COLUMNS} FROM conflict.conflicts WHERE {' AND '.join(where)} ORDER BY seq LIMIT ${len(args)}"
    async with rt.pool.acquire() as conn:
        rows = await conn.fetch(sql, *args)
    page = rows[:size]
    next_cursor = cursor_after(page[-1]["seq"]) if len(rows) > size else None
    return json_response({"items": [conflict_view(r) for r in page], "next_cursor": next_cursor})


_TIMELINE = """
    SELECT src, event_id, stream_id, event_type, actor, traceparent, occurred_at, data::text FROM (
        SELECT 0 AS src, event_id, stream_id, event_type, actor, traceparent, occurred_at, recorded_at,
               global_position, data
        FROM registration.events WHERE stream_id = ANY($1::text[])
        UNION ALL
        SELECT 1 AS src, event_id, stream_id, event_type, actor, traceparent, occurred_at, recorded_at,
               global_position, data
        FROM conflict.events WHERE stream_id = ANY($2::text[])
    ) merged ORDER BY occurred_at, recorded_at, src, global_position
"""


@get(
    "/v1/conflicts/{conflict_id:str}/timeline",
    tags=["conflicts"],
    summary="Everything that happened to a dispute and its claims, across both services, oldest first",
)
async def get_timeline(request: Request, conflict_id: str) -> Response:
    rt = runtime(request)
    principal = rt.principal(request)
    require_role(principal, *READERS)
    async with rt.pool.acquire() as conn:
        row = await _visible(conn, principal, conflict_id)
        claims = await conn.fetch(
            "SELECT claim_id, kind FROM conflict.claims WHERE claim_id = ANY($1::text[]) OR conflict_id = $2",
            [c["claim_id"] for c in msgspec.json.decode(row["doc"]).get("claims", [])],
            conflict_id,
        )
        registrations = [f"registration-{c['claim_id']}" for c in claims if c["kind"] == "registration"]
        own = [
            f"conflict-{conflict_id}",
            *(f"claim-{c['claim_id']}" for c in claims),
            *(f"directdeal-{c['claim_id']}" for c in claims if c["kind"] == "direct_deal"),
        ]
        events = await conn.fetch(_TIMELINE, registrations, own)
    items = [
        {
            "time": iso(e["occurred_at"]),
            "type": e["event_type"],
            "actor": e["actor"],
            "trace_id": trace_id(e["traceparent"]),
            "service": "conflict" if e["src"] else "registration",
            "stream": e["stream_id"],
            "event_id": str(e["event_id"]),
            "data": msgspec.Raw(e["data"].encode()),
        }
        for e in events
    ]
    return json_response({"items": items})


CONFLICT_QUERY_ROUTES = [list_conflicts, get_conflict, get_timeline]
