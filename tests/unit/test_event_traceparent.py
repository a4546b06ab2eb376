"""Which `traceparent` an appended event carries: the append's own span, unless the caller's
context belongs to another trace or no span is current; the same whether spans are recorded (an
exporter) or only their ids are made (none)."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.telemetry import (
    configure_tracing,
    event_traceparent,
    remote_child_span,
    span,
    span_context_of,
    traceparent_of,
    tracer,
)

pytestmark = pytest.mark.unit

OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(autouse=True, params=["ids_only", "recorded"])
def tracing(request):
    configure_tracing("dealreg-unit", {})
    was = tracer.recording
    tracer.recording = request.param == "recorded"
    yield request.param
    tracer.recording = was


def test_spans_are_real_either_way(tracing):
    with span("root") as root:
        outer = root.get_span_context()
        assert outer.is_valid and outer.trace_flags.sampled
        assert root.is_recording() == (tracing == "recorded")
        with span("child") as child:
            inner = child.get_span_context()
            assert inner.trace_id == outer.trace_id and inner.span_id != outer.span_id
    with span("another root") as again:
        assert again.get_span_context().trace_id != outer.trace_id


def test_a_remote_child_continues_the_trace_it_was_given():
    with remote_child_span("consume", OTHER) as s:
        ctx = s.get_span_context()
        assert f"{ctx.trace_id:032x}" == OTHER.split("-")[1] and f"{ctx.span_id:016x}" != OTHER.split("-")[2]
        assert event_traceparent(None) == traceparent_of(ctx)
    with remote_child_span("consume", None) as s:
        assert s.get_span_context().is_valid and s.get_span_context().trace_id != span_context_of(OTHER).trace_id


def test_outside_any_span_the_given_traceparent_is_kept():
    assert event_traceparent(OTHER) == OTHER
    assert event_traceparent(None) is None


def test_inside_a_span_the_event_points_at_it():
    with span("eventlog.append") as s:
        mine = traceparent_of(s.get_span_context())
        assert event_traceparent(None) == mine
        with span("inner"):
            inner = event_traceparent(mine)  # an ancestor of the same trace: the current span is closer
        assert inner != mine and span_context_of(inner).trace_id == s.get_span_context().trace_id


def test_a_traceparent_from_another_trace_is_the_callers_choice():
    with span("eventlog.append"):
        assert event_traceparent(OTHER) == OTHER


def test_malformed_traceparents_name_no_span():
    assert span_context_of("not-a-traceparent") is None
    assert span_context_of("00-00000000000000000000000000000000-0000000000000000-01") is None


@pytest.mark.parametrize(
    "traceparent",
    [
        OTHER,
        OTHER[:-2] + "00",  # not sampled
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # no trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # no span id
        OTHER.upper(),
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-later-fields",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        OTHER + "-extra",
    ],
)
def test_traceparents_read_as_the_propagator_reads_them(traceparent):
    read = trace.get_current_span(TraceContextTextMapPropagator().extract({"traceparent": traceparent}))
    expected = read.get_span_context() if read.get_span_context().is_valid else None
    assert span_context_of(traceparent) == expected
