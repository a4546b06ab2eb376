"""The demo's story against both services served over HTTP (uvicorn, in this process, on free ports)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter

import pytest
import uvicorn

from deploy.ports import free_tcp_port
from services.conflict.app import bootstrap as conflict_app
from services.demo import seed
from services.registration.app import bootstrap as registration_app
from tests.e2e.conflict_helpers import wait_for
from tests.e2e.conftest import SIGNING_KEY

pytestmark = pytest.mark.e2e


@contextlib.asynccontextmanager
async def served(app):
    """`app` under uvicorn on a free port; yields its base URL."""
    port = free_tcp_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    try:
        await wait_for(started, within=20, what="uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


@pytest.mark.timeout(180)
async def test_the_demo_shows_the_whole_product(settings, pool, nc, capsys):
    async with served(registration_app(settings)) as reg_url, served(conflict_app(settings)) as con_url:
        await seed(reg_url, con_url, SIGNING_KEY)
    said = capsys.readouterr().err
    program = re.search(r"demo: program (\S+):", said).group(1)
    assert "note:" not in said, said

    async with pool.acquire() as conn:
        claims = await conn.fetch(
            "SELECT claim_id, status, partner_id FROM conflict.claims WHERE program_id = $1", program
        )
        reasons = Counter(
            r["status_reason"]
            for r in await conn.fetch(
                "SELECT data->>'reason' AS status_reason FROM conflict.events WHERE program_id = $1"
                " AND event_type LIKE 'registration.%'",
                program,
            )
        )
        kinds = Counter(
            r["event_type"]
            for r in await conn.fetch("SELECT event_type FROM conflict.events WHERE program_id = $1", program)
        )
        partners = await conn.fetchval(
            "SELECT count(DISTINCT stream_id) FROM registration.events WHERE program_id = $1"
            " AND event_type = 'partner.enrolled'",
            program,
        )
    statuses = Counter(r["status"] for r in claims)
    assert partners == 12 and statuses["open"] == 1  # the direct deal
    assert statuses["approved"] >= 5 and statuses["waitlisted"] >= 2, statuses
    for reason in (
        "no_collision",
        "protected_by_other_claim",
        "direct_sales_engaged",
        "below_minimum_value",
        "product_not_in_program",
        "currency_not_supported",
        "authority_decision",
    ):
        assert reasons[reason] >= 1, (reason, reasons)
    for event in (
        "registration.pending_review",
        "registration.info_requested",
        "conflict.opened",
        "conflict.escalated",
        "sla.breached",
        "conflict.resolved",
        "conflict.reopened",
        "direct_deal.recorded",
        "policy.published",
    ):
        assert kinds[event] >= 1, (event, kinds)
    assert kinds["conflict.opened"] == 2
    for line in (
        "channel manager: request info",
        "cobalt answered the info request",
        "channel manager: approve",
        "awarded Wonka Industries to summit",
        "tidewater appealed",
        "Vandelay's SLA breached",
    ):
        assert line in said, (line, said)
