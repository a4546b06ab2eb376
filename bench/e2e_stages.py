"""Where each registration's end-to-end time goes, stage by stage.

Besides the POST's reply (the load generator) and the decision's arrival (the watcher), three
moments are known of each registration: when its `registration.submitted` message was stored in
JetStream and when its first decision's message was (each message's stream timestamp), and when
the conflict service wrote that decision (`recorded_at` of the first `registration.*` event in
`conflict.events`, `clock_timestamp()` at its insert, inside the deciding transaction). The
monotonic times are moved onto the wall clock with one offset read in the bench's process (one
host, one clock). Stages, in milliseconds, over the registrations of which every moment is known:

- `published`: reply -> submitted event stored (the registration service's outbox relay; it races
  the reply, so it may be below zero);
- `queued_and_decided`: stored -> decision written (delivery to the conflict service, the wait for
  the batches before, deciding);
- `committed_and_published`: decision written -> decision stored (the commit, the conflict relay);
- `delivered`: decision stored -> received by the consumer.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import msgspec
from nats.aio.client import Client as NATS
from nats.js.api import DeliverPolicy

from bench.stats import summary
from contracts.envelope import JETSTREAM_STREAMS

if TYPE_CHECKING:
    from bench.decisions import DecisionWatcher
    from bench.harness import Bench

STAGES = ("published", "queued_and_decided", "committed_and_published", "delivered")


class _Subject(msgspec.Struct):
    subject: str


_decode = msgspec.json.Decoder(_Subject).decode

_WRITTEN = """
    SELECT subject, extract(epoch FROM min(recorded_at))::float8 FROM conflict.events
    WHERE program_id = $1 AND event_type LIKE 'registration.%' GROUP BY subject
"""


def stages(
    replied: dict[str, float],
    submitted_stored: dict[str, float],
    decision_written: dict[str, float],
    decision_stored: dict[str, float],
    received: dict[str, float],
) -> dict[str, dict]:
    """Each stage's summary (ms) over the registrations present in all five (seconds, one clock)."""
    moments = (replied, submitted_stored, decision_written, decision_stored, received)
    known = [i for i in replied if all(i in m for m in moments)]
    out = {}
    for name, before, after in zip(STAGES, moments[:-1], moments[1:], strict=True):
        out[name] = summary([(after[i] - before[i]) * 1000 for i in known])
    return out


async def stored_times(nc: NATS, stream: str, subject: str, expected: int, quiet_s: float = 2.0) -> dict[str, float]:
    """When each CloudEvent subject's first message on `subject` was stored (epoch seconds)."""
    sub = await nc.jetstream().subscribe(
        subject, stream=stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    out: dict[str, float] = {}
    try:
        while len(out) < expected:
            try:
                msg = await sub.next_msg(timeout=quiet_s)
            except TimeoutError:  # nats.errors.TimeoutError is one
                break
            out.setdefault(_decode(msg.data).subject, msg.metadata.timestamp.timestamp())
    finally:
        await sub.unsubscribe()
    return out


async def measure(
    bench: Bench, program_id: str, ids: list[tuple[str, float]], watcher: DecisionWatcher
) -> dict[str, dict]:
    """The stages of one program's registrations: `ids` (id, reply time) from the load generator,
    `watcher` the `DecisionWatcher` that received their decisions."""
    offset = time.time() - time.monotonic()
    submitted = await stored_times(
        bench.nc,
        JETSTREAM_STREAMS["registration"],
        f"dealreg.registration.{program_id}.registration.submitted",
        len(ids),
    )
    pool = await bench.pool()
    written = {r[0]: r[1] for r in await pool.fetch(_WRITTEN, program_id)}
    return stages(
        {i: t + offset for i, t in ids},
        submitted,
        written,
        watcher.stored,
        {i: t + offset for i, t in watcher.first.items()},
    )
