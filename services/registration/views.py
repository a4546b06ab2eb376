"""What clients see of a registration: the resource, its decision, its history (pure)."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.registration_events import StatusRecorded
from services.eventlog.events import RecordedEvent
from services.registration.domain.model import Registration


def _iso(value: Any) -> Any:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def resource(r: Registration) -> dict[str, Any]:
    return {
        "id": r.id,
        "program_id": r.program_id,
        "partner_id": r.partner_id,
        "submitted_by": r.submitted_by,
        "external_ref": r.external_ref,
        "customer": msgspec.to_builtins(r.customer),
        "products": list(r.products),
        "deal_type": r.deal_type,
        "estimated_value": msgspec.to_builtins(r.estimated_value),
        "expected_close": r.expected_close.isoformat(),
        "notes": r.notes,
        "status": r.status,
        "status_reason": r.status_reason,
        "protected_until": _iso(r.protected_until),
        "attribution_percent": r.attribution_percent,
        "version": r.version,
        "submitted_at": _iso(r.submitted_at),
        "updated_at": _iso(r.updated_at),
    }


def decision(r: Registration) -> dict[str, Any]:
    """The explanation a partner may see: never a rival's identity."""
    d = r.decision
    if d is None:
        return {"registration_id": r.id, "status": r.status, "reason": r.status_reason, "decided": False}
    return {
        "registration_id": r.id,
        "status": r.status,
        "decided": True,
        "reason": d.reason,
        "rule": d.rule,
        "policy_version": d.policy_version,
        "protected_until": _iso(d.protected_until),
        "decided_at": _iso(d.decided_at),
        "comment": d.comment,
    }


_PRIVATE = {"source_event_id", "partner_tier", "partner_type"}


def history_item(event: RecordedEvent, data: msgspec.Struct) -> dict[str, Any]:
    body = {k: v for k, v in msgspec.to_builtins(data).items() if k not in _PRIVATE}
    name = event.event_type
    if isinstance(data, StatusRecorded):
        name = f"registration.{data.status}"
    return {
        "event_id": str(event.event_id),
        "type": name,
        "version": event.stream_version,
        "time": _iso(event.occurred_at),
        "actor": event.metadata.actor,
        "data": body,
    }
