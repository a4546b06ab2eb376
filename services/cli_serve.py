"""`dealreg serve <service>`: one service under uvicorn, and the handle `dealreg up` keeps on such a child."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
import sys
from collections import deque
from pathlib import Path

import structlog

from services import collector
from services.logs import configure_logging
from services.settings import Settings

SERVICE_APPS = {"registration": "services.registration.app", "conflict": "services.conflict.app"}
_GRACEFUL_SHUTDOWN_S = 4  # in-flight requests get this long after SIGTERM; the supervisor waits a bit more
_STOP_GRACE_S = 6.0

log = structlog.get_logger(__name__)


def serve(name: str) -> int:
    """Run one service until SIGTERM/SIGINT; configured only by the environment (DEALREG_*)."""
    import uvicorn

    settings = Settings.from_env().require()
    configure_logging(settings.log_level)
    port = settings.registration_port if name == "registration" else settings.conflict_port
    app = importlib.import_module(SERVICE_APPS[name]).bootstrap(settings)
    collector.tune_for_service()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        access_log=False,
        log_level=settings.log_level,
        lifespan="on",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        server_header=False,
    )
    server = uvicorn.Server(config)
    server.run()
    # uvicorn returns normally when startup failed (port taken, lifespan error); say so in the exit code
    return 0 if server.started else 1


class ServiceProcess:
    """A `dealreg serve <name>` child of the local stack, its output appended to `log_path`."""

    def __init__(self, name: str, host: str, port: int, log_path: Path) -> None:
        self.name = name
        self.port = port
        self.log_path = log_path
        self._host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process is not None else None

    async def start(self, env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            # its own session: a Ctrl-C on the terminal reaches the supervisor only, which stops
            # the services before the servers they depend on
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.cli", "serve", self.name,
                stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=asyncio.subprocess.STDOUT,
                env=env, start_new_session=True,
            )  # fmt: skip

    async def wait(self) -> int:
        assert self._process is not None
        return await self._process.wait()

    async def ready(self) -> bool:
        """Whether GET /health/ready answers 200 right now."""
        return await http_status(self._host, self.port, "/health/ready") == 200

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL when it has not exited within the grace period."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), _STOP_GRACE_S)
        except TimeoutError:
            log.warning("stack.service_killed", service=self.name, pid=process.pid, grace_s=_STOP_GRACE_S)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            with self.log_path.open(errors="replace") as file:
                return "".join(deque(file, maxlen=lines)).rstrip()
        except FileNotFoundError:
            return f"({self.log_path} does not exist)"


async def http_status(host: str, port: int, path: str) -> int | None:
    """The status code of a plain HTTP/1.1 GET, or None when nothing answers within 2 s.

    A few lines of asyncio instead of an HTTP client: the runtime needs no client library for this.
    """
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
    try:
        async with asyncio.timeout(2.0):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(request)
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return None
    parts = status_line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
