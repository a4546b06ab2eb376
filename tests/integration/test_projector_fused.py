"""A decision's changes carried out in one statement leave the rows one statement per change leaves."""

from __future__ import annotations

import datetime as dt

import pytest

from contracts.conflict_events import OwnershipChanged, RegistrationStatusChanged
from services.conflict import projector
from services.conflict.projection_changes import changes_of
from services.conflict.projector_fused import fused
from tests.conftest import unique_id

pytestmark = pytest.mark.integration

T = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)


class _Undo(Exception):
    pass


async def _rows(conn, claim_id: str) -> tuple:
    claim = await conn.fetchrow("SELECT * FROM conflict.claims WHERE claim_id = $1", claim_id)
    timers = await conn.fetch(
        "SELECT timer_id, program_id, kind, ref_id, due_at, payload FROM conflict.timers WHERE ref_id = $1"
        " ORDER BY timer_id",
        claim_id,
    )
    return dict(claim), [tuple(t) for t in timers]


def _decisions(claim_id: str, program: str):
    approved = RegistrationStatusChanged(
        registration_id=claim_id, program_id=program, partner_id="p1", status="approved", reason="no_conflict",
        rule="first_to_register", policy_version=2, protected_until=T + dt.timedelta(days=90), decided_at=T,
    )  # fmt: skip
    granted = OwnershipChanged(
        claim_id=claim_id, program_id=program, partner_id="p1", products=["x"], valid_from=T,
        valid_until=T + dt.timedelta(days=90), at=T,
    )  # fmt: skip
    waitlisted = RegistrationStatusChanged(
        registration_id=claim_id, program_id=program, partner_id="p1", status="waitlisted", reason="protected",
        rule="active_protection", policy_version=2, conflict_id="c-1", decided_at=T,
    )  # fmt: skip
    soon = OwnershipChanged(  # ends before its warning would be due: no warning timer
        claim_id=claim_id, program_id=program, valid_from=T, valid_until=T + dt.timedelta(days=2), at=T
    )
    return {
        "approved": [("registration.approved", approved), ("ownership.granted", granted)],
        "approved, short window": [("registration.approved", approved), ("ownership.granted", soon)],
        "waitlisted": [("registration.waitlisted", waitlisted)],
    }


@pytest.mark.parametrize("decision", ["approved", "approved, short window", "waitlisted"])
async def test_a_fused_decision_leaves_the_same_rows(pool, decision):
    program, claim_id = unique_id("prog"), unique_id("claim")
    events = _decisions(claim_id, program)[decision]
    assert fused([c for name, e in events for c in changes_of(name, e)]) is not None
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO conflict.claims (claim_id, kind, program_id, partner_id, name_key, country, products,"
            " submitted_at, status, conflict_id, decided_by)"
            " VALUES ($1, 'registration', $2, 'p1', 'acme', 'DE', '{x}', $3, 'pending_review', 'c-0', 'someone')",
            claim_id,
            program,
            T,
        )
        await conn.execute(
            "INSERT INTO conflict.timers (timer_id, program_id, kind, ref_id, due_at)"
            " VALUES ('review:' || $1, $2, 'review_sla', $1, $3)",
            claim_id,
            program,
            T,
        )
        try:
            async with conn.transaction():
                await projector.apply_all(conn, events)
                together = await _rows(conn, claim_id)
                raise _Undo
        except _Undo:
            pass
        for name, e in events:
            await projector.apply(conn, name, e)
        one_by_one = await _rows(conn, claim_id)
        assert together == one_by_one
        assert not [t for t in one_by_one[1] if t[2] == "review_sla"]
