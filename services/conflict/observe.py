"""The conflict service's decisions, observed: a span per recorded decision, one log line and one
count per status it gives, and the open and overdue conflicts gauges read at scrape time.

Log lines carry ids, statuses, reason codes and rules only: no customer data at info level.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric

from contracts.conflict_events import ConflictResolved, RegistrationStatusChanged
from services.conflict.domain.effects import Emit
from services.metrics import DECISIONS
from services.telemetry import span

log = structlog.get_logger("services.conflict.decision")


@contextmanager
def decision_span(program_id: str, cause_id: str, emits: list[Emit]) -> Iterator[None]:
    """`conflict.decide` around recording one decision's events (a child of the consume span)."""
    with span("conflict.decide", program_id=program_id, cause_id=cause_id, events=len(emits)):
        yield


def decided_on_commit(conn: Any, emits: list[Emit]) -> None:
    """`decided` once the transaction recording `emits` commits, in the context current now (its span,
    the log context of the event handled): a decision rolled back (a run of submissions then decided
    again one by one) is neither logged nor counted."""
    call = functools.partial(contextvars.copy_context().run, decided, emits)
    on_commit = getattr(conn, "on_commit", None)  # services.eventlog.db.Connection
    if on_commit is None:
        call()
    else:
        on_commit(call)


def decided(emits: list[Emit]) -> None:
    """One `decision` line and one count per status given or conflict resolved."""
    for e in emits:
        event = e.event
        if isinstance(event, RegistrationStatusChanged):
            DECISIONS.labels(event.reason or "none", event.status).inc()
            log.info(
                "decision",
                registration_id=event.registration_id,
                program_id=event.program_id,
                status=event.status,
                reason=event.reason,
                rule=event.rule,
                policy_version=event.policy_version,
                conflict_id=event.conflict_id,
            )
        elif isinstance(event, ConflictResolved):
            DECISIONS.labels(event.reason, "resolved").inc()
            log.info(
                "decision",
                conflict_id=event.conflict_id,
                program_id=event.program_id,
                status="resolved",
                outcome=event.outcome,
                reason=event.reason,
                level=event.level,
            )


async def conflict_gauges(rt: Any) -> list[Metric]:
    """Open (escalated, awaiting an authority) and overdue (past their SLA) conflicts per program."""
    open_ = GaugeMetricFamily("dealreg_conflicts_open", "Conflicts awaiting an authority", labels=["program_id"])
    overdue = GaugeMetricFamily("dealreg_conflicts_overdue", "Open conflicts past their SLA", labels=["program_id"])
    async with rt.pool.acquire(timeout=2) as conn:
        rows = await conn.fetch(
            "SELECT program_id, count(*), count(*) FILTER (WHERE due_at < $1) FROM conflict.conflicts"
            " WHERE state = 'escalated' GROUP BY program_id",
            rt.clock(),
        )
    for program_id, n_open, n_overdue in rows:
        open_.add_metric([program_id], n_open)
        overdue.add_metric([program_id], n_overdue)
    return [open_, overdue]
