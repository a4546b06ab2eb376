"""What makes a service's HTTP app observable: a span per request, request metrics, log context,
and `GET /metrics` (Prometheus text format, no token).

`Observability(service, schema, readers)` is a Litestar plugin, so a composition root adds it with
one line. `ObserveMiddleware` runs after routing, so the server span and the metrics are named by
the route template (`GET /v1/registrations/{registration_id}`), never the raw path. It is a few
lines of its own rather than the generic ASGI instrumentation: that one runs before routing in
litestar (raw paths as span names) and costs about three times as much per request.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

import structlog
from litestar import Request, Response, get
from litestar.config.app import AppConfig
from litestar.middleware.base import DefineMiddleware
from litestar.plugins import InitPlugin
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily, Metric

from services.eventlog.consumer import EventConsumer
from services.eventlog.outbox import outbox_lag_seconds
from services.http.health import runtime
from services.metrics import Reader, Scrape, observe_request
from services.telemetry import tracer

log = structlog.get_logger(__name__)
_BOUND_PARAMS = ("program_id", "registration_id", "conflict_id", "direct_deal_id", "partner_id")
_CORRELATION = "x-correlation-id"
_UNTRACED = ("/metrics", "/health/")  # scrapes and probes would drown the traces that matter


class ObserveMiddleware:
    """Raw ASGI (cheap on every request): a server span continuing the caller's trace, the
    request's ids in the log context around the handler, and its metrics once it has answered."""

    def __init__(self, app: Any, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        correlation = headers.get(_CORRELATION)
        if correlation is None:
            # the handlers copy this header onto the events they append: logs and events then agree
            correlation = str(uuid.uuid4())
            scope["headers"] = [*scope["headers"], (_CORRELATION.encode(), correlation.encode())]
        method, route = scope["method"], scope.get("path_template") or "unmatched"
        params = scope.get("path_params") or {}
        bound = {k: params[k] for k in _BOUND_PARAMS if k in params}
        status = 500

        async def send_observed(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            with structlog.contextvars.bound_contextvars(correlation_id=correlation, **bound):
                if route.startswith(_UNTRACED):
                    await self.app(scope, receive, send_observed)
                    return
                with tracer.start_as_current_span(
                    f"{method} {route}",
                    context=propagate.extract(headers),
                    kind=SpanKind.SERVER,
                    attributes={"http.request.method": method, "http.route": route, "url.path": scope["path"]},
                ) as span:
                    try:
                        await self.app(scope, receive, send_observed)
                    finally:
                        span.set_attribute("http.response.status_code", status)
                        if status >= 500:
                            span.set_status(Status(StatusCode.ERROR))
        finally:
            observe_request(self.service, method, route, status, time.perf_counter() - started)


def outbox_lag(schema: str) -> Reader:
    """Age of the oldest event the outbox has not published yet."""

    async def read(rt: Any) -> list[Metric]:
        family = GaugeMetricFamily(
            "dealreg_outbox_lag_seconds", "Age of the oldest unpublished event", labels=["schema"]
        )
        async with rt.pool.acquire(timeout=2) as conn:
            family.add_metric([schema], await outbox_lag_seconds(conn, schema))
        return [family]

    return read


async def consumer_lag(rt: Any) -> list[Metric]:
    """Messages JetStream holds for this service's durable consumers, not yet delivered or acked."""
    pending = GaugeMetricFamily(
        "dealreg_consumer_pending_messages", "Messages not yet delivered to a durable consumer", labels=["durable"]
    )
    unacked = GaugeMetricFamily(
        "dealreg_consumer_ack_pending_messages", "Messages delivered but not yet acknowledged", labels=["durable"]
    )
    if rt.nc is not None:
        js = rt.nc.jetstream()
        for consumer in rt.extras.values():
            if isinstance(consumer, EventConsumer):
                info = await js.consumer_info(consumer.stream, consumer.durable, timeout=2)
                pending.add_metric([consumer.durable], info.num_pending or 0)
                unacked.add_metric([consumer.durable], info.num_ack_pending or 0)
    return [pending, unacked]


class _Safe:
    """One reader failing (database or NATS down) leaves the rest of the scrape intact."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    async def __call__(self, rt: Any) -> Iterable[Metric]:
        try:
            return await self.reader(rt)
        except Exception as e:
            log.warning("metrics.reader_failed", reader=getattr(self.reader, "__qualname__", "?"), error=repr(e))
            return []


@get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    scrape: Scrape = request.app.state.scrape
    return Response(await scrape.render(runtime(request)), media_type=CONTENT_TYPE_LATEST)


class Observability(InitPlugin):
    """A span, metrics and log context for every request, and `GET /metrics`, for one service."""

    def __init__(self, service: str, schema: str, readers: Iterable[Reader] = ()) -> None:
        self.service = service
        self.scrape = Scrape(_Safe(r) for r in (outbox_lag(schema), consumer_lag, *readers))

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.middleware.insert(0, DefineMiddleware(ObserveMiddleware, service=self.service))
        app_config.route_handlers.append(metrics)
        app_config.state["scrape"] = self.scrape
        return app_config
