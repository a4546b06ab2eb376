"""Small TCP helpers for the local servers."""

from __future__ import annotations

import socket


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that is free right now.

    The kernel picks it; another process may still take it before our server binds,
    so callers check that the server they start really owns the port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
