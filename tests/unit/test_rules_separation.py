"""Rules that separate a claim from rivals that are not plain pending registrations: a direct deal
opened after the claim, and claims already in a running dispute."""

from __future__ import annotations

import datetime as dt

import pytest

from contracts.common import Evidence
from services.conflict.domain.claims import Claim, Rival, Situation
from services.conflict.domain.identity import identity_of
from services.conflict.domain.policy import DEFAULT_POLICY
from services.conflict.domain.rules import judge

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
ACME = identity_of("Acme", "US", "acme.com")


def reg(claim_id: str, at: dt.datetime, status: str = "pending", **kw) -> Claim:
    return Claim(
        claim_id=claim_id,
        kind="registration",
        program_id="p",
        identity=ACME,
        products=("firewall",),
        submitted_at=at,
        status=status,
        partner_id=f"partner-{claim_id}",
        tier="gold",
        deal_type="new",
        **kw,
    )


def rival(c: Claim, against: str) -> Rival:
    return Rival(c, Evidence(claims=[against, c.claim_id], keys=["domain"], scores={"domain": 1.0}))


def test_a_direct_deal_opened_after_the_claim_does_not_beat_it_and_incumbency_does_not_claim_it():
    mine = reg("mine", T0)
    later_deal = Claim(
        claim_id="dd",
        kind="direct_deal",
        program_id="p",
        identity=ACME,
        products=("firewall",),
        submitted_at=T0 + dt.timedelta(hours=1),
        status="open",
    )
    j = judge(Situation((mine,), (rival(later_deal, "mine"),)), DEFAULT_POLICY, T0)
    [outcome] = j.outcomes
    assert (outcome.status, outcome.reason, outcome.rule) == ("approved", "first_to_register", "first_to_register")
    verdicts = {v.rule: v.verdict for v in j.trail}
    assert verdicts["direct_sales_priority"] == "no_separation"
    assert verdicts["incumbent_on_renewal"] == "no_separation"
    assert not j.conflict_claims


def test_a_late_comer_to_a_running_dispute_is_waitlisted_behind_it():
    a = reg("a", T0, "under_review", conflict_id="c1")
    b = reg("b", T0 + dt.timedelta(milliseconds=1), "under_review", conflict_id="c1")
    late = reg("late", T0 + dt.timedelta(minutes=5))
    j = judge(Situation((late,), (rival(a, "late"), rival(b, "late"))), DEFAULT_POLICY, late.submitted_at)
    assert [(o.claim.claim_id, o.status, o.reason) for o in j.outcomes] == [("late", "waitlisted", "first_to_register")]
    assert j.outcomes[0].behind.claim_id == "a"
    assert not j.conflict_claims
