"""Spans leave the process over OTLP/HTTP when, and only when, the standard OTel variables say where."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading

import pytest

pytestmark = pytest.mark.integration

SCRIPT = """
from services.telemetry import configure_tracing, span
provider = configure_tracing("dealreg-export-check")
with span("eventlog.append", schema="registration", stream="registration-x", count=1):
    pass
provider.shutdown()  # flushes the batch processor, as the process's exit does
"""


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.received.append((self.path, self.headers.get("content-type", ""), body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _run(env: dict[str, str]) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env={**base, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_spans_are_exported_to_the_otlp_endpoint_only_when_one_is_set():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _run({})
        assert _Collector.received == []
        _run({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}"})
    finally:
        server.shutdown()
    [(path, content_type, body)] = _Collector.received
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    assert b"dealreg-export-check" in body and b"eventlog.append" in body and b"registration-x" in body
