"""Which `traceparent` an appended event carries: the append's own span, unless the caller's
context belongs to another trace or no span is current."""

from __future__ import annotations

import pytest

from services.telemetry import configure_tracing, event_traceparent, span, span_context_of, traceparent_of

pytestmark = pytest.mark.unit

OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(autouse=True, scope="module")
def tracing():
    configure_tracing("dealreg-unit", {})


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
