"""What both services' composition roots share: the app, its lifespan, and its background workers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Protocol

from litestar import Litestar
from litestar.openapi import OpenAPIConfig

from services.eventlog import db
from services.eventlog.jetstream import connect, ensure_streams
from services.http.health import HEALTH_ROUTES, Runtime
from services.http.observe import Observability
from services.http.problems import EXCEPTION_HANDLERS
from services.metrics import Reader
from services.settings import Settings


class Worker(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


def service_app(
    *,
    service: str,
    settings: Settings,
    rt: Runtime,
    routes: Iterable[Any],
    workers: Callable[[Runtime], dict[str, Worker]],
    background: bool = True,
    gauges: Iterable[Reader] = (),
) -> Litestar:
    """A service's app: pools and NATS are made in its lifespan (never at import) and closed in
    `finally`; `workers(rt)` (outbox relay, consumers, scheduler) run until shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        rt.pool = await db.create_pool(settings.database_url, min_size=2, max_size=settings.db_pool_size)
        rt.nc = await connect(settings.nats_url or "", name=f"dealreg-{service}")
        stop = asyncio.Event()
        tasks: list[asyncio.Task] = []
        try:
            await ensure_streams(rt.nc)
            if background:
                running = workers(rt)
                rt.extras.update(running)
                tasks = [asyncio.create_task(w.run(stop)) for w in running.values()]
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await rt.nc.drain()
            await rt.pool.close()

    app = Litestar(
        route_handlers=[*HEALTH_ROUTES, *routes],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        plugins=[Observability(service, service, gauges)],
        request_max_body_size=1024 * 1024 + 1,
        openapi_config=OpenAPIConfig(title=f"dealreg {service} API", version="1.0.0", path="/schema"),
    )
    app.state.runtime = rt
    return app
