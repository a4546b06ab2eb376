"""The context a consumed message is handled in: a `consume <subject>` span continuing the trace the
event carries, and the event's ids bound into every log line the handler writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from nats.aio.msg import Msg

from contracts.envelope import CloudEvent
from services.telemetry import remote_child_span

# what a CloudEvent's subject names, by the event's family
_SUBJECT_KEYS = {"registration": "registration_id", "conflict": "conflict_id", "direct_deal": "direct_deal_id"}


@contextmanager
def handling(durable: str, msg: Msg, ce: CloudEvent) -> Iterator[None]:
    """Around one message's handler (inside the consumer's transaction)."""
    traceparent = ce.traceparent or (msg.headers or {}).get("traceparent")
    family = ce.event_name.split(".", 1)[0]
    ids = {_SUBJECT_KEYS.get(family, "subject_id"): ce.subject}
    with (
        remote_child_span(
            f"consume {msg.subject}",
            traceparent,
            **{
                "messaging.system": "nats",
                "messaging.destination.name": msg.subject,
                "messaging.message.id": ce.id,
                "messaging.consumer.group.name": durable,
            },
        ),
        structlog.contextvars.bound_contextvars(
            event_id=ce.id, event_type=ce.event_name, program_id=ce.program_id, correlation_id=ce.subject, **ids
        ),
    ):
        yield
