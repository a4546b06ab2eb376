"""The conflict service's composition root: `bootstrap(settings)` builds the whole process."""

from __future__ import annotations

from collections.abc import Callable

from litestar import Litestar

from contracts.envelope import JETSTREAM_STREAMS
from services.conflict import intake
from services.conflict.api.conflict_queries import CONFLICT_QUERY_ROUTES
from services.conflict.api.decisions import DECISION_ROUTES
from services.conflict.api.direct_deals import DIRECT_DEAL_ROUTES
from services.conflict.api.ownership import OWNERSHIP_ROUTES
from services.conflict.api.policy import POLICY_ROUTES
from services.conflict.api.reviews import REVIEW_ROUTES
from services.conflict.observe import conflict_gauges
from services.conflict.recorder import STORE
from services.conflict.scheduler import Scheduler
from services.eventlog.consumer import EventConsumer
from services.eventlog.outbox import OutboxRelay
from services.eventlog.statistics import StatisticsKeeper
from services.http.health import Runtime, utcnow
from services.http.service_app import Worker, service_app
from services.settings import Settings
from services.telemetry import configure_tracing

ROUTES = [
    *POLICY_ROUTES,
    *DIRECT_DEAL_ROUTES,
    *OWNERSHIP_ROUTES,
    *CONFLICT_QUERY_ROUTES,
    *REVIEW_ROUTES,
    *DECISION_ROUTES,
]


def workers(rt: Runtime) -> dict[str, Worker]:
    return {
        "relay": OutboxRelay(rt.pool, rt.nc.jetstream(), STORE),
        # one replica consumes at a time, so each program's facts are decided in log order;
        # programs are decided concurrently within a batch
        "intake": EventConsumer(
            nc=rt.nc,
            pool=rt.pool,
            schema="conflict",
            durable=intake.CONSUMER,
            stream=JETSTREAM_STREAMS["registration"],
            filter_subject=intake.FILTER_SUBJECTS,
            handle=intake.handle,
            handle_batch=intake.handle_batch,
            mark_batch=intake.mark_batch,
            exclusive=True,
            partition=lambda ce: ce.program_id,
        ),
        "scheduler": Scheduler(rt.pool, rt.clock),
        "statistics": StatisticsKeeper(rt.pool, "conflict"),
    }


def bootstrap(settings: Settings, *, clock: Callable = utcnow, background: bool = True) -> Litestar:
    """Build the app; pools, NATS and background workers start in its lifespan, not at import."""
    settings.require()
    configure_tracing("dealreg-conflict")
    rt = Runtime(signing_key=settings.signing_key or "", clock=clock)
    return service_app(
        service="conflict",
        settings=settings,
        rt=rt,
        routes=ROUTES,
        workers=workers,
        background=background,
        gauges=[conflict_gauges],
    )
