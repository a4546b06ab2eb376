"""Policies, conflicts and timers held in memory during a replay (pure, no I/O).

Each method does what the live projector's statement does in PostgreSQL: an UPDATE of a missing row
changes nothing, an INSERT of an existing key is ignored, and the jsonb operators are mirrored on
the decoded documents (jsonb keeps no key order, so only their content matters).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from contracts.conflict_events import PolicyPublished
from services.conflict import projection_changes as pc
from services.conflict import timer_changes as tc
from services.conflict.domain.policy import DEFAULT_POLICY, Policy

_policy_decoder = msgspec.json.Decoder(Policy)


class Policies:
    """`conflict.policies`, and the look-ups `policy_store` answers from it."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], tuple[str, int, str, dt.datetime]] = {}
        self._raw: dict[tuple[str, int], dict[str, Any]] = {}
        self._latest: dict[str, int] = {}
        self._decoded: dict[tuple[str, int], Policy] = {}

    def record(self, e: PolicyPublished) -> None:
        key = (e.program_id, e.version)
        if key in self.rows:
            return
        self.rows[key] = (e.program_id, e.version, msgspec.json.encode(e.policy).decode(), e.published_at)
        self._raw[key] = e.policy
        if e.program_id not in self._latest or e.version > self._latest[e.program_id]:
            self._latest[e.program_id] = e.version

    def in_force(self, program_id: str) -> tuple[Policy, int]:
        """As `policy_store.in_force`: the latest version, the default (version 0) before any."""
        version = self._latest.get(program_id)
        if version is None:
            return DEFAULT_POLICY, 0
        return self._policy((program_id, version)), version

    def by_version(self, program_id: str, version: int) -> Policy:
        """As `policy_store.by_version`."""
        if version == 0 or (program_id, version) not in self.rows:
            return DEFAULT_POLICY
        return self._policy((program_id, version))

    def expiry_warning_days(self, program_id: str) -> float:
        """As `timers.schedule_expiry` reads it: `policy->>'expiry_warning_days'` of the latest version
        as float8, the default policy's when there is none."""
        version = self._latest.get(program_id)
        value = self._raw[(program_id, version)].get("expiry_warning_days") if version is not None else None
        if value is None:
            return float(DEFAULT_POLICY.expiry_warning_days)
        if isinstance(value, bool):
            raise ValueError(f"expiry_warning_days of {program_id} v{version} is not a number: {value!r}")
        return float(value)

    def _policy(self, key: tuple[str, int]) -> Policy:
        policy = self._decoded.get(key)
        if policy is None:
            policy = self._decoded[key] = _policy_decoder.decode(self.rows[key][2])
        return policy


class Conflicts:
    """`conflict.conflicts`, keyed by id in first-insert order (the order of their `seq`)."""

    COLUMNS = ("conflict_id", "program_id", "state", "level", "authority_role", "due_at", "policy_version",
               "opened_at", "doc")  # fmt: skip

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def records(self) -> list[tuple]:
        return [
            (*(r[k] for k in self.COLUMNS[:-1]), msgspec.json.encode(r["doc"]).decode()) for r in self.rows.values()
        ]

    def recorded(self, c: pc.ConflictRecorded) -> None:
        if c.conflict_id not in self.rows:
            self.rows[c.conflict_id] = {
                "conflict_id": c.conflict_id, "program_id": c.program_id, "state": "escalated", "level": 1,
                "authority_role": None, "due_at": None, "policy_version": c.policy_version,
                "opened_at": c.opened_at, "doc": msgspec.json.decode(c.doc),
            }  # fmt: skip

    def escalated(self, c: pc.ConflictEscalation) -> None:
        if (row := self.rows.get(c.conflict_id)) is not None:
            row.update(state="escalated", level=c.level, authority_role=c.authority_role, due_at=c.due_at)

    def decided(self, c: pc.ConflictDecision) -> None:
        # doc || jsonb_build_object('decision', decision)
        if (row := self.rows.get(c.conflict_id)) is not None:
            row.update(state="resolved", due_at=None, doc={**row["doc"], "decision": msgspec.json.decode(c.decision)})

    def reopened(self, c: pc.ConflictReopening) -> None:
        # jsonb_set(doc - 'decision', '{appeals}', coalesce(doc->'appeals', '[]') || [appeal || {previous_decision}])
        if (row := self.rows.get(c.conflict_id)) is None:
            return
        doc = dict(row["doc"])
        previous = doc.pop("decision", None)
        earlier = doc.get("appeals", [])
        appeals = list(earlier) if isinstance(earlier, list) else [earlier]  # `||` wraps a non-array side
        appeals.append({**msgspec.json.decode(c.appeal), "previous_decision": previous})
        row.update(state="escalated", level=c.level, doc={**doc, "appeals": appeals})


class Timers:
    """`conflict.timers`, with the (ref_id, kind) look-up that cancelling uses."""

    COLUMNS = ("timer_id", "program_id", "kind", "ref_id", "due_at", "payload")

    def __init__(self) -> None:
        self.rows: dict[str, tuple] = {}
        self._of: dict[tuple[str, str], dict[str, None]] = {}

    def set(self, c: tc.TimerSet) -> None:
        if c.timer_id in self.rows:
            return
        payload = msgspec.json.encode(c.payload).decode() if c.payload else "{}"
        self.rows[c.timer_id] = (c.timer_id, c.program_id, c.kind, c.ref_id, c.due_at, payload)
        self._of.setdefault((c.ref_id, c.kind), {})[c.timer_id] = None

    def cancelled(self, c: tc.TimersCancelled) -> None:
        for timer_id in self._of.pop((c.ref_id, c.kind), ()):
            del self.rows[timer_id]

    def cleared(self, c: tc.TimerCleared) -> None:
        row = self.rows.pop(c.timer_id, None)
        if row is not None:
            del self._of[(row[3], row[2])][c.timer_id]
