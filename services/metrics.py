"""Prometheus metrics: process-wide counters, and gauges read at scrape time.

Counters live in prometheus_client's default registry (one process is one service in production);
gauges that need a query (outbox lag, consumer lag, open conflicts) are computed when `/metrics` is
scraped, by the service's `Scrape` readers, so the hot paths pay nothing for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric

HTTP_REQUESTS = Counter(
    "dealreg_http_requests",
    "HTTP requests handled, by route template and status",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "dealreg_http_request_duration_seconds",
    "HTTP request latency, by route template and status",
    ["service", "method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVENTS_APPENDED = Counter(
    "dealreg_events_appended",
    "Events appended to an event log (in transactions that may still roll back)",
    ["schema", "type"],
)
DECISIONS = Counter(
    "dealreg_decisions",
    "Decisions the conflict service recorded, by reason code and resulting status",
    ["reason", "status"],
)
SLA_BREACHES = Counter("dealreg_sla_breaches", "sla.breached events appended", ["program_id"])

_children: dict[tuple[str, ...], tuple[Any, Any]] = {}


def observe_request(service: str, method: str, route: str, status: int, seconds: float) -> None:
    """Count one request and its latency (label children are cached: this runs on every request)."""
    key = (service, method, route, str(status))
    pair = _children.get(key)
    if pair is None:
        pair = _children[key] = (HTTP_REQUESTS.labels(*key), HTTP_LATENCY.labels(*key))
    pair[0].inc()
    pair[1].observe(seconds)


def events_appended(schema: str, program_id: str, event_types: Iterable[str]) -> None:
    for event_type in event_types:
        EVENTS_APPENDED.labels(schema, event_type).inc()
        if event_type == "sla.breached":
            SLA_BREACHES.labels(program_id).inc()


Reader = Callable[[Any], Awaitable[Iterable[Metric]]]


class Scrape:
    """A service's scrape-time gauges: `readers` take the service's Runtime and return metric
    families; `render` runs them all and returns the whole exposition (counters included)."""

    def __init__(self, readers: Iterable[Reader]) -> None:
        self.readers = list(readers)

    async def render(self, rt: Any) -> bytes:
        families: list[Metric] = []
        for reader in self.readers:
            families.extend(await reader(rt))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(families))
        return generate_latest(REGISTRY) + generate_latest(registry)


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families
