"""CloudEvents 1.0 structured-mode envelope, subjects, and the codecs both services use."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import msgspec

from contracts.conflict_events import CONFLICT_EVENTS
from contracts.registration_events import REGISTRATION_EVENTS

SERVICES = ("registration", "conflict")
EVENTS_BY_SERVICE: dict[str, dict[str, type[msgspec.Struct]]] = {
    "registration": REGISTRATION_EVENTS,
    "conflict": CONFLICT_EVENTS,
}
JETSTREAM_STREAMS = {"registration": "DEALREG_REGISTRATION", "conflict": "DEALREG_CONFLICT"}
DEAD_LETTER_STREAM = "DEALREG_DEADLETTER"
DEAD_LETTER_PREFIX = "dealreg.deadletter"
# \Z, not $: `$` also matches before a trailing newline, which must never reach a NATS subject
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
TYPE_PREFIX = "io.dealreg."
TYPE_SUFFIX = ".v1"


def _specversion() -> str:
    return "1.0"


def _json_content_type() -> str:
    return "application/json"


class CloudEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A CloudEvents 1.0 event in structured JSON mode; `data` stays raw until its type is known."""

    # `specversion` is required on the wire: `omit_defaults` (which keeps an absent traceparent off
    # it) would drop a plain default, but not a value that comes from a factory
    specversion: str = msgspec.field(default_factory=_specversion)
    id: str
    source: str
    type: str
    subject: str
    time: dt.datetime
    datacontenttype: str = msgspec.field(default_factory=_json_content_type)
    traceparent: str | None = None
    data: msgspec.Raw

    @property
    def event_name(self) -> str:
        """`registration.submitted` for `io.dealreg.registration.submitted.v1`."""
        return event_name_of(self.type)

    @property
    def program_id(self) -> str:
        return self.source.rsplit("/", 1)[-1]

    @property
    def service(self) -> str:
        return self.source.split("/")[2]


class UnknownEventType(ValueError):
    """An envelope whose type no contract describes."""


def cloudevent_type(event_name: str) -> str:
    return f"{TYPE_PREFIX}{event_name}{TYPE_SUFFIX}"


def event_name_of(ce_type: str) -> str:
    if not (ce_type.startswith(TYPE_PREFIX) and ce_type.endswith(TYPE_SUFFIX)):
        raise UnknownEventType(ce_type)
    return ce_type[len(TYPE_PREFIX) : -len(TYPE_SUFFIX)]


def subject_for(service: str, program_id: str, event_name: str) -> str:
    """`dealreg.<service>.<program_id>.<event>`; ids are NATS-token safe by construction."""
    if not ID_PATTERN.match(program_id):
        raise ValueError(f"program id {program_id!r} is not a valid subject token")
    return f"dealreg.{service}.{program_id}.{event_name}"


def source_for(service: str, program_id: str) -> str:
    return f"/dealreg/{service}/{program_id}"


def event_class(service: str, event_name: str) -> type[msgspec.Struct]:
    try:
        return EVENTS_BY_SERVICE[service][event_name]
    except KeyError as e:
        raise UnknownEventType(f"{service}:{event_name}") from e


_encoder = msgspec.json.Encoder()
_envelope_decoder = msgspec.json.Decoder(CloudEvent)
_data_decoders: dict[type, msgspec.json.Decoder] = {}


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


def envelope(
    *,
    service: str,
    event_name: str,
    event_id: str,
    subject: str,
    time: dt.datetime,
    data: bytes,
    traceparent: str | None = None,
    program_id: str,
) -> CloudEvent:
    return CloudEvent(
        id=event_id,
        source=source_for(service, program_id),
        type=cloudevent_type(event_name),
        subject=subject,
        time=time,
        traceparent=traceparent,
        data=msgspec.Raw(data),
    )


def decode_envelope(payload: bytes) -> CloudEvent:
    """Decode the envelope only; raises msgspec.DecodeError / ValidationError on a malformed one."""
    try:
        return _envelope_decoder.decode(payload)
    except UnicodeDecodeError as e:  # msgspec raises this, not DecodeError, for bad UTF-8 in a string
        raise msgspec.DecodeError(f"not UTF-8: {e}") from e


def decode_data(service: str, event_name: str, data: bytes | msgspec.Raw) -> msgspec.Struct:
    """Decode an event's data into its contract Struct (validating it)."""
    cls = event_class(service, event_name)
    decoder = _data_decoders.get(cls)
    if decoder is None:
        decoder = _data_decoders[cls] = msgspec.json.Decoder(cls)
    try:
        return decoder.decode(bytes(data) if isinstance(data, msgspec.Raw) else data)
    except UnicodeDecodeError as e:
        raise msgspec.DecodeError(f"not UTF-8: {e}") from e


def decode_event(payload: bytes) -> tuple[CloudEvent, msgspec.Struct]:
    ce = decode_envelope(payload)
    return ce, decode_data(ce.service, ce.event_name, ce.data)
