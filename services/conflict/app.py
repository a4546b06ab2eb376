"""The conflict service's composition root: `bootstrap(settings)` builds the whole process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import asyncpg
from litestar import Litestar
from litestar.openapi import OpenAPIConfig

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
from services.eventlog.jetstream import connect, ensure_streams
from services.eventlog.outbox import OutboxRelay
from services.http.health import HEALTH_ROUTES, Runtime, utcnow
from services.http.observe import Observability
from services.http.problems import EXCEPTION_HANDLERS
from services.settings import Settings
from services.telemetry import configure_tracing


def bootstrap(settings: Settings, *, clock: Callable = utcnow, background: bool = True) -> Litestar:
    """Build the app; pools, NATS and background workers start in its lifespan, not at import."""
    settings.require()
    configure_tracing("dealreg-conflict")
    rt = Runtime(signing_key=settings.signing_key or "", clock=clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        rt.pool = await asyncpg.create_pool(settings.database_url, min_size=2, max_size=settings.db_pool_size)
        rt.nc = await connect(settings.nats_url or "", name="dealreg-conflict")
        stop = asyncio.Event()
        tasks: list[asyncio.Task] = []
        try:
            await ensure_streams(rt.nc)
            if background:
                relay = OutboxRelay(rt.pool, rt.nc.jetstream(), STORE)
                consumer = EventConsumer(
                    nc=rt.nc, pool=rt.pool, schema="conflict", durable=intake.CONSUMER,
                    stream=JETSTREAM_STREAMS["registration"], filter_subject=intake.FILTER_SUBJECT,
                    handle=intake.handle,
                    exclusive=True,
                    partition=lambda ce: ce.program_id,
                )
                scheduler = Scheduler(rt.pool, rt.clock)
                rt.extras.update(relay=relay, intake=consumer, scheduler=scheduler)
                tasks = [asyncio.create_task(t.run(stop)) for t in (relay, consumer, scheduler)]
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await rt.nc.drain()
            await rt.pool.close()

    app = Litestar(
        route_handlers=[*HEALTH_ROUTES, *POLICY_ROUTES, *DIRECT_DEAL_ROUTES, *OWNERSHIP_ROUTES, *CONFLICT_QUERY_ROUTES,
                        *REVIEW_ROUTES, *DECISION_ROUTES],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        plugins=[Observability("conflict", "conflict", [conflict_gauges])],
        request_max_body_size=1024 * 1024 + 1,
        openapi_config=OpenAPIConfig(title="dealreg conflict API", version="1.0.0", path="/schema"),
    )
    app.state.runtime = rt
    return app
