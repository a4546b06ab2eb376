"""The registration service's composition root: `bootstrap(settings)` builds the whole process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import asyncpg
from litestar import Litestar
from litestar.openapi import OpenAPIConfig

from contracts.envelope import JETSTREAM_STREAMS
from services.eventlog.consumer import EventConsumer
from services.eventlog.jetstream import connect, ensure_streams
from services.eventlog.outbox import OutboxRelay
from services.http.health import HEALTH_ROUTES, Runtime, utcnow
from services.http.observe import Observability
from services.http.problems import EXCEPTION_HANDLERS
from services.registration import status_flow
from services.registration.api.directory import DIRECTORY_ROUTES
from services.registration.api.registrations import REGISTRATION_ROUTES
from services.registration.repository import STORE
from services.settings import Settings
from services.telemetry import configure_tracing


def bootstrap(settings: Settings, *, clock: Callable = utcnow, background: bool = True) -> Litestar:
    """Build the app; pools, NATS and background workers start in its lifespan, not at import."""
    settings.require()
    configure_tracing("dealreg-registration")
    rt = Runtime(signing_key=settings.signing_key or "", clock=clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        rt.pool = await asyncpg.create_pool(settings.database_url, min_size=2, max_size=settings.db_pool_size)
        rt.nc = await connect(settings.nats_url or "", name="dealreg-registration")
        stop = asyncio.Event()
        tasks: list[asyncio.Task] = []
        try:
            await ensure_streams(rt.nc)
            if background:
                relay = OutboxRelay(rt.pool, rt.nc.jetstream(), STORE)
                consumer = EventConsumer(
                    nc=rt.nc, pool=rt.pool, schema="registration", durable=status_flow.CONSUMER,
                    stream=JETSTREAM_STREAMS["conflict"], filter_subject=status_flow.FILTER_SUBJECT,
                    handle=status_flow.record_status,
                    exclusive=True,
                    partition=lambda ce: ce.subject,
                )
                rt.extras.update(relay=relay, status_consumer=consumer)
                tasks = [asyncio.create_task(relay.run(stop)), asyncio.create_task(consumer.run(stop))]
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await rt.nc.drain()
            await rt.pool.close()

    app = Litestar(
        route_handlers=[*HEALTH_ROUTES, *DIRECTORY_ROUTES, *REGISTRATION_ROUTES],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        plugins=[Observability("registration", "registration")],
        request_max_body_size=1024 * 1024 + 1,
        openapi_config=OpenAPIConfig(title="dealreg registration API", version="1.0.0", path="/schema"),
        debug=False,
    )
    app.state.runtime = rt
    return app
