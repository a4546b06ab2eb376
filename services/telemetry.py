"""OpenTelemetry tracing, configured once per process by its composition root.

Trace context is W3C `traceparent`. It rides on every event (metadata, CloudEvent attribute and NATS
header), so a partner's request, the append, the conflict service's consumption and decision, and
the CloudEvent a CRM reads share one trace id across processes.

Spans are exported over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces-specific
variable) is set; the exporter, batch processor and sampler read the standard `OTEL_*` variables
themselves. Without an endpoint (and no exporter given) nothing would read a span, so spans are
only their ids: each still has its own span id in its parent's trace, made current for its block,
so trace ids reach logs and events as they would with an exporter, without the SDK's cost of
recording a span (about 16 us each, ten or so per registration).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def configure_tracing(
    service_name: str, settings_or_env: object = None, *, exporter: SpanExporter | None = None
) -> TracerProvider:
    """Install the process's tracer provider (once; later calls return it) and return it.

    `settings_or_env` is a mapping of environment variables (default `os.environ`); anything else
    means the process environment. `exporter`, for tests, receives every span synchronously.
    """
    global _provider
    env: Mapping[str, str] = settings_or_env if isinstance(settings_or_env, Mapping) else os.environ
    if _provider is None:
        attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
        provider = TracerProvider(resource=Resource.create(attributes))
        if any(env.get(name) for name in _ENDPOINT_VARS):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            tracer.recording = True
        trace.set_tracer_provider(provider)
        _provider = provider
        tracer.configured = True
    if exporter is not None:
        _provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer.recording = True
    return _provider


class _IdsOnly(trace.Tracer):
    """Spans that nothing records: a new span id in the parent's trace (a new trace for a root, sampled
    as the SDK's default sampler would), with no SDK span behind it."""

    _ids = RandomIdGenerator()

    def start_span(self, name: str, context: otel_context.Context | None = None, *_: Any, **__: Any) -> trace.Span:
        return self.child_of(trace.get_current_span(context).get_span_context())

    def child_of(self, parent: SpanContext | None) -> trace.Span:
        """A span in `parent`'s trace (a new trace's root for none, or an invalid one)."""
        if parent is not None and parent.is_valid:
            trace_id, flags = parent.trace_id, parent.trace_flags
        else:
            trace_id, flags = self._ids.generate_trace_id(), TraceFlags(TraceFlags.SAMPLED)
        return NonRecordingSpan(SpanContext(trace_id, self._ids.generate_span_id(), is_remote=False, trace_flags=flags))

    def start_as_current_span(
        self, name: str, context: otel_context.Context | None = None, *_: Any, **__: Any
    ) -> _Current:
        return _Current(self.start_span(name, context))


class _Current:
    """`span` made the current span for a block, as `trace.use_span(span, end_on_exit=False)` makes
    it, without the rest of what that does for a span that records (an exception recorded on it):
    a class rather than a generator, a few microseconds less for each of the spans a registration
    makes in both services."""

    __slots__ = ("_token", "span")

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def __enter__(self) -> trace.Span:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(self, *_: object) -> None:
        otel_context.detach(self._token)


class _Tracer:
    """The process's tracer: no spans until `configure_tracing`, then the SDK's when something
    records them (an exporter), else `_IdsOnly`."""

    def __init__(self) -> None:
        self.configured = False
        self.recording = False
        self._sdk = trace.get_tracer("dealreg")  # a proxy until the provider is set
        self._ids_only = _IdsOnly()

    @property
    def ids_only(self) -> bool:
        return self.configured and not self.recording

    def start_as_current_span(self, name: str, **options: Any) -> contextlib.AbstractContextManager[trace.Span]:
        chosen = self._ids_only if self.ids_only else self._sdk
        return chosen.start_as_current_span(name, **options)


tracer = _Tracer()


def traceparent_of(ctx: SpanContext) -> str | None:
    """The W3C `traceparent` of a span context, or None when it is not valid."""
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def span_context_of(traceparent: str | None) -> SpanContext | None:
    """The remote span context a `traceparent` names, or None when absent or malformed."""
    if not traceparent:
        return None
    if (m := _VERSION_00.fullmatch(traceparent)) is not None:  # what every event carries: parsed directly
        ctx = SpanContext(int(m[1], 16), int(m[2], 16), is_remote=True, trace_flags=TraceFlags(int(m[3], 16)))
    else:  # other versions, and the malformed, as the propagator reads them
        ctx = trace.get_current_span(_propagator.extract({"traceparent": traceparent})).get_span_context()
    return ctx if ctx.is_valid else None


_VERSION_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def event_traceparent(given: str | None) -> str | None:
    """The `traceparent` an event gets at append time: the current span's, unless the caller gave
    one from another trace (or no span is current). Within one trace the current span is a
    descendant of the given one, so it is the more precise parent for whoever consumes the event."""
    current = trace.get_current_span().get_span_context()
    if not current.is_valid:
        return given
    if given:
        parent = span_context_of(given)
        if parent is not None and parent.trace_id != current.trace_id:
            return given
    return traceparent_of(current)


def current_ids() -> dict[str, str]:
    """`trace_id` and `span_id` of the current span, for log lines; empty outside any span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}


def span(
    name: str, *, kind: SpanKind = SpanKind.INTERNAL, links: list[Link] | None = None, **attributes: Any
) -> contextlib.AbstractContextManager[trace.Span]:
    """A child span of the current one, made current for the block."""
    if tracer.ids_only:  # its attributes and links would be dropped
        return _Current(tracer._ids_only.start_span(name))
    clean = {k: v for k, v in attributes.items() if v is not None}
    return tracer.start_as_current_span(name, kind=kind, attributes=clean, links=links)


def remote_child_span(
    name: str, traceparent: str | None, *, kind: SpanKind = SpanKind.CONSUMER, **attributes: Any
) -> contextlib.AbstractContextManager[trace.Span]:
    """A span continuing the trace a message carried (a new trace when it carried none)."""
    parent = span_context_of(traceparent)
    if tracer.ids_only:
        return _Current(tracer._ids_only.child_of(parent))
    ctx = trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent else otel_context.Context()
    clean = {k: v for k, v in attributes.items() if v is not None}
    return tracer.start_as_current_span(name, context=ctx, kind=kind, attributes=clean)


def links_to(traceparents: list[str | None], limit: int = 128) -> list[Link]:
    """Links to the spans that caused a batch (the SDK keeps 128 links per span by default); none
    when spans are not recorded (a link is kept only by a recorded span)."""
    if tracer.ids_only:
        return []
    links = []
    for tp in traceparents:
        ctx = span_context_of(tp)
        if ctx is not None:
            links.append(Link(ctx))
            if len(links) >= limit:
                break
    return links
