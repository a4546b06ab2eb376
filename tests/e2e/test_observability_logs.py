"""Log lines as an operator's log pipeline reads them: JSON, one per line, with the trace, span,
correlation, program and registration ids of the work they describe, and no customer data."""

from __future__ import annotations

import io
import json

import pytest

from services.logs import configure_logging
from tests.conftest import unique_id
from tests.e2e.helpers import enrol, partner_token, registration_body, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def log_lines() -> io.StringIO:
    # the process's one logging configuration; no other test configures logging in-process
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    return stream


async def test_a_decision_is_one_json_line_with_the_ids_of_its_trace(log_lines, registration_api, conflict_api, pool):
    program = unique_id("logs")
    await enrol(registration_api, program, "p1")
    r = await registration_api.post("/v1/registrations", json=registration_body(), headers=partner_token(program, "p1"))
    assert r.status_code == 201, r.text
    rid = r.json()["id"]

    def decision():
        for line in log_lines.getvalue().splitlines():
            entry = json.loads(line)
            if entry.get("event") == "decision" and entry.get("registration_id") == rid:
                return line, entry
        return None

    line, entry = await wait_until(decision, what=f"the decision line for {rid}")
    assert entry["level"] == "info" and entry["program_id"] == program
    assert (entry["status"], entry["reason"], entry["policy_version"]) == ("approved", "no_collision", 0)
    assert "rule" in entry and entry["correlation_id"] == rid
    assert len(entry["span_id"]) == 16 and entry["timestamp"]
    async with pool.acquire() as conn:
        submitted = await conn.fetchval(
            "SELECT traceparent FROM registration.events WHERE stream_id = $1 AND stream_version = 1",
            f"registration-{rid}",
        )
    assert entry["trace_id"] == submitted.split("-")[1]  # the partner's request started this trace
    customer = registration_body()["customer"]
    assert not any(str(v) in line for v in (customer["name"], customer["domain"], customer["duns"], customer["tax_id"]))
