"""The shapes that go into and come out of the event log."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from services.ids import new_id


@dataclass(frozen=True, slots=True)
class Metadata:
    """Who and what caused an event: copied onto every event of one append."""

    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str | None = None
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended. `data` is the JSON of its contract Struct.

    `subject` is the CloudEvents subject: the registration, direct deal or conflict it is about.
    """

    event_type: str
    data: bytes
    subject: str
    occurred_at: dt.datetime
    event_id: uuid.UUID = field(default_factory=new_id)


@dataclass(frozen=True, slots=True)
class Position:
    """A place in the global order: (transaction id, global position). See `store.read_all`."""

    tx_id: int = 0
    global_position: int = 0


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    global_position: int
    event_id: uuid.UUID
    stream_id: str
    stream_version: int
    event_type: str
    program_id: str
    subject: str
    data: str
    metadata: Metadata
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    tx_id: int

    @property
    def position(self) -> Position:
        return Position(self.tx_id, self.global_position)


class EventStoreError(Exception):
    """Base of the event store's errors."""


class ConcurrencyError(EventStoreError):
    """The stream is not at the version the writer expected; nothing was written."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream_id!r} is at version {actual}, expected {expected}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class DuplicateEventError(EventStoreError):
    """Some, but not all, of the event ids of an append are already recorded elsewhere."""


ANY_VERSION = -1
NO_STREAM = 0
