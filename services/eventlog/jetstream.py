"""JetStream connection and the streams both services publish to, created idempotently."""

from __future__ import annotations

import nats
from nats.aio.client import Client as NATS
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from contracts.envelope import DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM, JETSTREAM_STREAMS

STREAM_CONFIGS = [
    StreamConfig(
        name=name,
        subjects=[f"dealreg.{service}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        duplicate_window=120.0,
    )
    for service, name in JETSTREAM_STREAMS.items()
] + [
    StreamConfig(
        name=DEAD_LETTER_STREAM,
        subjects=[f"{DEAD_LETTER_PREFIX}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
    )
]


async def connect(url: str, name: str) -> NATS:
    """A NATS connection that reconnects for ever (the outbox keeps what could not be sent)."""
    return await nats.connect(url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5)


async def ensure_streams(nc: NATS) -> None:
    """Create the product's JetStream streams, or bring their config up to date."""
    jsm = nc.jetstream()
    for config in STREAM_CONFIGS:
        try:
            await jsm.add_stream(config)
        except BadRequestError:
            await jsm.update_stream(config)
