"""The registration service's composition root: `bootstrap(settings)` builds the whole process."""

from __future__ import annotations

from collections.abc import Callable

from litestar import Litestar

from contracts.envelope import JETSTREAM_STREAMS
from services.eventlog.consumer import EventConsumer
from services.eventlog.group_commit import GroupAppender
from services.eventlog.outbox import OutboxRelay
from services.eventlog.statistics import StatisticsKeeper
from services.http.health import Runtime, utcnow
from services.http.service_app import Worker, service_app
from services.registration import status_flow
from services.registration.api.directory import DIRECTORY_ROUTES
from services.registration.api.registrations import REGISTRATION_ROUTES
from services.registration.directory import PARTNERS, PartnerCache
from services.registration.repository import STORE, SUBMISSIONS
from services.settings import Settings
from services.telemetry import configure_tracing


def workers(rt: Runtime) -> dict[str, Worker]:
    return {
        "relay": OutboxRelay(rt.pool, rt.nc.jetstream(), STORE),
        # statuses apply in the order the conflict service decided them; a program's batch commits once
        "status_consumer": EventConsumer(
            nc=rt.nc,
            pool=rt.pool,
            schema="registration",
            durable=status_flow.CONSUMER,
            stream=JETSTREAM_STREAMS["conflict"],
            filter_subject=status_flow.FILTER_SUBJECT,
            handle=status_flow.record_status,
            handle_batch=status_flow.record_statuses,
            exclusive=True,
            partition=lambda ce: ce.program_id,
            linger=status_flow.LINGER_S,
        ),
        "statistics": StatisticsKeeper(rt.pool, "registration"),
    }


def bootstrap(settings: Settings, *, clock: Callable = utcnow, background: bool = True) -> Litestar:
    """Build the app; pools, NATS and background workers start in its lifespan, not at import."""
    settings.require()
    configure_tracing("dealreg-registration")
    rt = Runtime(signing_key=settings.signing_key or "", clock=clock)
    # submissions without an Idempotency-Key: their partner cached, committed together under load
    rt.extras[PARTNERS] = PartnerCache()
    rt.extras[SUBMISSIONS] = GroupAppender(STORE, lambda: rt.pool)
    return service_app(
        service="registration",
        settings=settings,
        rt=rt,
        routes=[*DIRECTORY_ROUTES, *REGISTRATION_ROUTES],
        workers=workers,
        background=background,
    )
