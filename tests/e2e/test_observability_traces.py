"""One registration's trace, across both services: the partner's request, the append, NATS, the
conflict service's consumption and decision, and the CloudEvent a CRM reads all share one trace id,
with each span the parent of the next."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from contracts.envelope import JETSTREAM_STREAMS
from services.telemetry import configure_tracing, span_context_of
from tests.conftest import unique_id
from tests.e2e.helpers import JetStreamReader, enrol, partner_token, registration_body, wait_until

pytestmark = pytest.mark.e2e
APPROVED = "io.dealreg.registration.approved.v1"


@pytest.fixture(scope="session")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    configure_tracing("dealreg-tests", {}, exporter=exporter)
    return exporter


def _one(spans, what: str, predicate):
    found = [s for s in spans if predicate(s)]
    assert len(found) == 1, f"{what}: {[s.name for s in found]}"
    return found[0]


async def test_a_registration_is_one_trace_from_request_to_crm(spans, registration_api, conflict_api, nc):
    program = unique_id("trace")
    await enrol(registration_api, program, "p1")
    async with JetStreamReader(nc, JETSTREAM_STREAMS["conflict"], f"dealreg.conflict.{program}.>") as crm:
        r = await registration_api.post(
            "/v1/registrations", json=registration_body(), headers=partner_token(program, "p1")
        )
        assert r.status_code == 201, r.text
        rid = r.json()["id"]

        async def approval():
            return next((g for g in await crm.poll() if g.event.type == APPROVED), None)

        received = await wait_until(approval, what="the CRM to receive the approval")
    approved = received.event
    assert approved.subject == rid

    def chain():
        # the consume span ends after the decision's spans, once its transaction has committed
        finished = spans.get_finished_spans()
        appended = [s for s in finished if s.name == "eventlog.append" and s.attributes.get("stream") == f"claim-{rid}"]
        consumed = [s for s in finished if s.name == f"consume dealreg.registration.{program}.registration.submitted"]
        return finished if appended and consumed else None

    finished = await wait_until(chain, what="the conflict service's spans")
    # the registration's stream is appended to twice: the submission, then the approval it mirrors
    append = min(
        (s for s in finished if s.name == "eventlog.append" and s.attributes.get("stream") == f"registration-{rid}"),
        key=lambda s: s.start_time,
    )
    trace_id = append.context.trace_id
    in_trace = [s for s in finished if s.context.trace_id == trace_id]

    request = _one(in_trace, "request span", lambda s: s.context.span_id == append.parent.span_id)
    assert request.kind == SpanKind.SERVER and request.name == "POST /v1/registrations"
    assert request.attributes.get("http.route") == "/v1/registrations"

    consume = _one(in_trace, "conflict consume span", lambda s: s.name.startswith("consume dealreg.registration."))
    assert consume.name == f"consume dealreg.registration.{program}.registration.submitted"
    assert consume.kind == SpanKind.CONSUMER and consume.parent.span_id == append.context.span_id
    assert consume.parent.is_remote

    decide = _one(in_trace, "decision span", lambda s: s.name == "conflict.decide")
    assert decide.parent.span_id == consume.context.span_id
    conflict_append = _one(in_trace, "conflict append", lambda s: s.attributes.get("stream") == f"claim-{rid}")
    assert conflict_append.parent.span_id == decide.context.span_id

    # what the CRM received continues the same trace, from the conflict service's append
    crm_parent = span_context_of(approved.traceparent)
    assert crm_parent is not None and crm_parent.trace_id == trace_id
    assert crm_parent.span_id == conflict_append.context.span_id
    assert received.msg.headers["traceparent"] == approved.traceparent

    # and the registration service's own consumption of that status continues it too
    def status_consumed():
        return [
            s
            for s in spans.get_finished_spans()
            if s.context.trace_id == trace_id and s.name.startswith("consume dealreg.conflict.")
        ]

    mirrored = await wait_until(status_consumed, what="the registration service's status consumption")
    assert any(s.parent.span_id == crm_parent.span_id for s in mirrored)


async def test_a_request_span_continues_the_callers_trace_and_is_named_by_its_route(spans, registration_api):
    program = unique_id("trace")
    await enrol(registration_api, program, "p1")
    headers = partner_token(program, "p1")
    r = await registration_api.post("/v1/registrations", json=registration_body(), headers=headers)
    rid = r.json()["id"]
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    r = await registration_api.get(f"/v1/registrations/{rid}", headers={**headers, "traceparent": caller})
    assert r.status_code == 200

    def served():
        return [s for s in spans.get_finished_spans() if s.attributes.get("url.path") == f"/v1/registrations/{rid}"]

    (server,) = await wait_until(served, what="the GET's server span")
    assert server.name == "GET /v1/registrations/{registration_id}"
    assert (server.kind, server.attributes["http.response.status_code"]) == (SpanKind.SERVER, 200)
    assert f"{server.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{server.parent.span_id:016x}" == "b7ad6b7169203331" and server.parent.is_remote
