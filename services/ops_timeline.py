"""What `dealreg trace` shows: everything recorded about one registration (or direct deal) or one
conflict, across both services' event logs, in the order it happened, with trace ids.

For a registration: its own stream (`registration-<id>`), the conflict service's claim stream
(`claim-<id>`), and every conflict it was part of (`conflict-<id>`). For a conflict: its stream and
every claim's streams. Read straight from PostgreSQL: it works while the services are down.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from services.eventlog.events import RecordedEvent
from services.eventlog.store import EventStore
from services.telemetry import span_context_of

_STORES = {"registration": EventStore("registration"), "conflict": EventStore("conflict")}


@dataclass
class Entry:
    service: str
    event: RecordedEvent
    data: dict[str, Any]

    @property
    def trace_id(self) -> str | None:
        ctx = span_context_of(self.event.metadata.traceparent)
        return f"{ctx.trace_id:032x}" if ctx else None

    def as_json(self) -> dict[str, Any]:
        e, m = self.event, self.event.metadata
        ctx = span_context_of(m.traceparent)
        return {
            "time": _iso(e.occurred_at),
            "recorded_at": _iso(e.recorded_at),
            "service": self.service,
            "stream": e.stream_id,
            "version": e.stream_version,
            "type": e.event_type,
            "event_id": str(e.event_id),
            "actor": m.actor,
            "correlation_id": m.correlation_id,
            "causation_id": m.causation_id,
            "trace_id": f"{ctx.trace_id:032x}" if ctx else None,
            "span_id": f"{ctx.span_id:016x}" if ctx else None,
            "data": self.data,
        }


@dataclass
class Timeline:
    kind: str  # "registration" | "direct_deal" | "conflict"
    id: str
    program_id: str | None
    entries: list[Entry] = field(default_factory=list)

    @property
    def trace_ids(self) -> list[str]:
        return list(dict.fromkeys(e.trace_id for e in self.entries if e.trace_id))

    @property
    def streams(self) -> list[str]:
        return list(dict.fromkeys(e.event.stream_id for e in self.entries))

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "program_id": self.program_id,
            "streams": self.streams,
            "trace_ids": self.trace_ids,
            "events": [e.as_json() for e in self.entries],
        }


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _exists(conn: asyncpg.Connection, schema: str, stream: str) -> bool:
    return bool(await conn.fetchval(f"SELECT 1 FROM {schema}.streams WHERE stream_id = $1", stream))


async def _read(conn: asyncpg.Connection, service: str, streams: list[str]) -> list[Entry]:
    out = []
    for stream in streams:
        for e in await _STORES[service].read_stream(conn, stream):
            out.append(Entry(service, e, msgspec.json.decode(e.data)))
    return out


async def _claim_streams(conn: asyncpg.Connection, claim_id: str) -> tuple[str, list[str], list[str]]:
    """(kind, registration-service streams, conflict-service streams) of one claim."""
    if await _exists(conn, "conflict", f"directdeal-{claim_id}"):
        return "direct_deal", [], [f"directdeal-{claim_id}", f"claim-{claim_id}"]
    return "registration", [f"registration-{claim_id}"], [f"claim-{claim_id}"]


async def load(conn: asyncpg.Connection, ident: str) -> Timeline | None:
    """The timeline of registration, direct deal or conflict `ident`; None when neither log knows it."""
    if await _exists(conn, "conflict", f"conflict-{ident}"):
        return await _conflict(conn, ident)
    if not any(
        [
            await _exists(conn, "registration", f"registration-{ident}"),
            await _exists(conn, "conflict", f"claim-{ident}"),
            await _exists(conn, "conflict", f"directdeal-{ident}"),
        ]
    ):
        return None
    kind, reg_streams, own = await _claim_streams(conn, ident)
    entries = await _read(conn, "registration", reg_streams) + await _read(conn, "conflict", own)
    conflicts = {e.data.get("conflict_id") for e in entries} | {
        await conn.fetchval("SELECT conflict_id FROM conflict.claims WHERE claim_id = $1", ident)
    }
    for conflict_id in sorted(c for c in conflicts if c):
        entries += await _read(conn, "conflict", [f"conflict-{conflict_id}"])
    return _timeline(kind, ident, entries)


async def _conflict(conn: asyncpg.Connection, conflict_id: str) -> Timeline:
    entries = await _read(conn, "conflict", [f"conflict-{conflict_id}"])
    claims = {c["claim_id"] for e in entries for c in e.data.get("claims", []) if isinstance(c, dict)}
    claims |= {
        r[0] for r in await conn.fetch("SELECT claim_id FROM conflict.claims WHERE conflict_id = $1", conflict_id)
    }
    for claim_id in sorted(claims):
        _, reg_streams, own = await _claim_streams(conn, claim_id)
        entries += await _read(conn, "registration", reg_streams) + await _read(conn, "conflict", own)
    return _timeline("conflict", conflict_id, entries)


def _timeline(kind: str, ident: str, entries: list[Entry]) -> Timeline:
    # causal order: decisions carry the time of what caused them, so ties go to the earlier recording
    entries.sort(key=lambda e: (e.event.occurred_at, e.event.recorded_at, e.service != "registration"))
    program = entries[0].event.program_id if entries else None
    return Timeline(kind, ident, program, entries)
