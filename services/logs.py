"""structlog, configured once per process: JSON lines, or console rendering on a terminal.

Context (correlation id, trace ids, program, registration or conflict id) is bound with
`structlog.contextvars` and merged into every line.
"""

from __future__ import annotations

import logging
import sys

import msgspec
import structlog

from services.telemetry import current_ids

_configured = False


def _add_trace_ids(logger: object, method: str, event: dict) -> dict:
    """`trace_id` and `span_id` of the span current when the line is written."""
    for key, value in current_ids().items():
        event.setdefault(key, value)
    return event


_encoder = msgspec.json.Encoder(enc_hook=str)  # anything it does not know is written as its str()


def _json_line(event: dict, **_: object) -> str:
    # msgspec writes a line several times faster than json.dumps: one is written per decision
    return _encoder.encode(event).decode()


def configure_logging(level: str = "info", *, stream=sys.stderr) -> None:
    global _configured
    if _configured:
        return
    _configured = True
    renderer = (
        structlog.dev.ConsoleRenderer() if stream.isatty() else structlog.processors.JSONRenderer(serializer=_json_line)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=stream)
