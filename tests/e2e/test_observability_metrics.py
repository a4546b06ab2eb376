"""`GET /metrics` on both services, as Prometheus scrapes it: no token, the text format, and every
metric family the operators' dashboards read, with values after some traffic."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import unique_id
from tests.e2e.helpers import ADMIN, enrol, partner_token, registration_body, wait_until

pytestmark = pytest.mark.e2e

TIE_POLICY = {"tie_window_minutes": 0.02, "tiers": ["platinum", "gold", "silver"]}  # 1.2 s: two same-tier claims tie
COMMON = {
    "dealreg_http_requests",
    "dealreg_http_request_duration_seconds",
    "dealreg_events_appended",
    "dealreg_outbox_lag_seconds",
    "dealreg_consumer_pending_messages",
}
CONFLICT = {"dealreg_decisions", "dealreg_conflicts_open", "dealreg_conflicts_overdue", "dealreg_sla_breaches"}


async def scrape(client) -> dict[str, list]:
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def value(samples: list, name: str, **labels: str) -> float | None:
    for s in samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


async def test_both_services_expose_their_metrics_after_traffic(registration_api, conflict_api):
    program = unique_id("metrics")
    await enrol(registration_api, program, "p1", "p2")
    r = await conflict_api.put(f"/v1/programs/{program}/policy", json=TIE_POLICY, headers=ADMIN)
    assert r.status_code == 200, r.text
    body = registration_body()
    posted = await asyncio.gather(
        *(
            registration_api.post(
                "/v1/registrations", json={**body, "external_ref": f"opp-{p}"}, headers=partner_token(program, p)
            )
            for p in ("p1", "p2")
        )
    )
    assert [r.status_code for r in posted] == [201, 201]

    async def tie_escalated():
        families = await scrape(conflict_api)
        return (
            families
            if value(families.get("dealreg_conflicts_open", []), "dealreg_conflicts_open", program_id=program) == 1
            else None
        )

    conflict = await wait_until(tie_escalated, deadline=15, what="the tie to open a conflict")
    registration = await scrape(registration_api)
    assert COMMON <= registration.keys(), COMMON - registration.keys()
    assert COMMON | CONFLICT <= conflict.keys(), (COMMON | CONFLICT) - conflict.keys()

    requests = registration["dealreg_http_requests"]
    assert (
        value(
            requests,
            "dealreg_http_requests_total",
            service="registration",
            method="POST",
            route="/v1/registrations",
            status="201",
        )
        >= 2
    )
    assert (
        value(
            registration["dealreg_http_request_duration_seconds"],
            "dealreg_http_request_duration_seconds_count",
            service="registration",
            route="/v1/registrations",
            status="201",
        )
        >= 2
    )
    assert (
        value(
            registration["dealreg_events_appended"],
            "dealreg_events_appended_total",
            schema="registration",
            type="registration.submitted",
        )
        >= 2
    )
    assert value(registration["dealreg_outbox_lag_seconds"], "dealreg_outbox_lag_seconds", schema="registration") >= 0
    assert value(registration["dealreg_consumer_pending_messages"], "dealreg_consumer_pending_messages") is not None
    assert (
        value(
            conflict["dealreg_consumer_pending_messages"],
            "dealreg_consumer_pending_messages",
            durable="conflict-intake",
        )
        is not None
    )
    assert value(conflict["dealreg_decisions"], "dealreg_decisions_total", status="under_review") >= 2
    assert value(conflict["dealreg_conflicts_overdue"], "dealreg_conflicts_overdue", program_id=program) == 0
    assert (
        value(
            conflict["dealreg_events_appended"],
            "dealreg_events_appended_total",
            schema="conflict",
            type="conflict.opened",
        )
        >= 1
    )
