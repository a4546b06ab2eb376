"""The local stack behind `dealreg up`: PostgreSQL, NATS and both services, started and stopped in order.

Servers not given by URL are started from their wheels with their data under `$DEALREG_HOME`, so a
second run on the same home finds the first run's data. The services run as child processes
(`dealreg serve <name>`) configured only by environment, exactly as they run in production.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil
import structlog

from deploy.processes import kill, wait_gone
from services.cli_serve import ServiceProcess
from services.eventlog.jetstream import connect, ensure_streams
from services.eventlog.migrate import migrate
from services.settings import Settings, local_signing_key
from services.stackfile import read_stack, read_stack_file, remove_stack, write_stack

SERVICES = ("registration", "conflict")
DATABASE = "dealreg"
_READY_TIMEOUT_S = 90.0
_WILDCARD_HOSTS = {"0.0.0.0", "::", ""}

log = structlog.get_logger(__name__)


class StackError(RuntimeError):
    """The stack cannot start; the message is one line a person can act on."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived while the stack was starting."""


@dataclass
class LocalStack:
    """One `dealreg up`: call `start`, then `watch`, then always `shutdown`."""

    settings: Settings
    stop: asyncio.Event
    home: Path = field(init=False)
    signing_key: str = field(init=False, default="")
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    _postgres: Any = None
    _nats: Any = None

    def __post_init__(self) -> None:
        self.home = self.settings.home.resolve()

    async def start(self) -> dict[str, Any]:
        """Bring everything up, wait until both services are ready; return what stack.json records."""
        self.home.mkdir(parents=True, exist_ok=True)
        running = read_stack(self.home)
        if running is not None:
            raise StackError(f"a stack already runs on {self.home} (pid {running['pid']}); stop it first")
        _stop_leftover_services(self.home)
        ports = {"registration": self.settings.registration_port, "conflict": self.settings.conflict_port}
        for name, port in ports.items():
            if not _port_free(self.settings.host, port):
                variable = f"DEALREG_{name.upper()}_PORT"
                raise StackError(f"port {port} on {self.settings.host} is taken; free it or set {variable}")
        database_url = await self._database()
        self._check_stop()
        nats_url = await self._nats_server()
        self._check_stop()
        applied = await migrate(database_url)
        log.info("stack.migrated", applied=applied)
        nc = await connect(nats_url, name="dealreg-up")
        try:
            await ensure_streams(nc)
        finally:
            await nc.close()
        self._check_stop()
        self.signing_key = signing_key = self.settings.signing_key or local_signing_key(self.home)
        env = {
            **os.environ,
            "DEALREG_HOME": str(self.home),
            "DEALREG_HOST": self.settings.host,
            "DEALREG_DATABASE_URL": database_url,
            "DEALREG_NATS_URL": nats_url,
            "DEALREG_SIGNING_KEY": signing_key,
            "DEALREG_REGISTRATION_PORT": str(ports["registration"]),
            "DEALREG_CONFLICT_PORT": str(ports["conflict"]),
            "PYTHONUNBUFFERED": "1",  # the logs say what happened up to a crash
        }
        for name in SERVICES:
            log_path = self.home / "logs" / f"{name}.log"
            service = self.services[name] = ServiceProcess(name, self.settings.host, ports[name], log_path)
            await service.start(env)
        await self._wait_ready()
        host = "127.0.0.1" if self.settings.host in _WILDCARD_HOSTS else self.settings.host
        info = {
            "registration_url": f"http://{host}:{ports['registration']}",
            "conflict_url": f"http://{host}:{ports['conflict']}",
            "nats_url": nats_url,
            "database_url": database_url,
            "home": str(self.home),
            "pid": os.getpid(),
            "pid_created": psutil.Process().create_time(),
            "service_pids": {name: service.pid for name, service in self.services.items()},
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        write_stack(self.home, info)
        return info

    async def watch(self) -> str | None:
        """Wait for a stop signal (None) or for a service to die (its one-line obituary)."""
        stop_wait = asyncio.ensure_future(self.stop.wait())
        exits = {asyncio.ensure_future(s.wait()): s for s in self.services.values()}
        try:
            done, _ = await asyncio.wait([stop_wait, *exits], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [stop_wait, *exits]:
                task.cancel()
        if stop_wait in done:
            return None
        service = next(exits[task] for task in done if task in exits)
        return f"the {service.name} service exited with code {service.returncode}; see {service.log_path}"

    async def shutdown(self) -> None:
        """Services first (they drain their connections), then NATS, then PostgreSQL. Idempotent."""
        await asyncio.gather(*(service.stop() for service in self.services.values()))
        if self._nats is not None:
            nats_server, self._nats = self._nats, None
            await asyncio.to_thread(nats_server.stop, 3.0)
        if self._postgres is not None:
            postgres, self._postgres = self._postgres, None
            await asyncio.to_thread(postgres.stop, 5.0)
        info = read_stack_file(self.home)
        if info is not None and info.get("pid") == os.getpid():
            remove_stack(self.home)

    async def _database(self) -> str:
        if self.settings.database_url:
            return self.settings.database_url
        from deploy.postgres import EmbeddedPostgres

        self._postgres = EmbeddedPostgres(self.home / "pg")
        server_dsn = await asyncio.to_thread(self._postgres.start)
        conn = await asyncpg.connect(server_dsn)
        try:
            if not await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1", DATABASE):
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await conn.close()
        return urlunsplit(urlsplit(server_dsn)._replace(path=f"/{DATABASE}"))

    async def _nats_server(self) -> str:
        if self.settings.nats_url:
            return self.settings.nats_url
        from deploy.nats import NatsServer

        self._nats = NatsServer(self.home / "nats")
        return await asyncio.to_thread(self._nats.start)

    async def _wait_ready(self) -> None:
        deadline = asyncio.get_running_loop().time() + _READY_TIMEOUT_S
        waiting = dict(self.services)
        while waiting:
            self._check_stop()
            for name, service in list(waiting.items()):
                if service.returncode is not None:
                    raise StackError(
                        f"the {name} service exited with code {service.returncode} while starting:\n"
                        f"{service.log_tail()}"
                    )
                if await service.ready():
                    log.info("stack.service_ready", service=name, port=service.port)
                    del waiting[name]
            if asyncio.get_running_loop().time() > deadline:
                raise StackError(f"not ready after {_READY_TIMEOUT_S:.0f}s: {', '.join(waiting)}; see logs")
            if waiting:
                await asyncio.sleep(0.1)

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted


def _port_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (SO_REUSEADDR, as uvicorn binds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _stop_leftover_services(home: Path) -> None:
    """Services that outlived a supervisor killed outright (its stack.json remains) would hold the ports."""
    info = read_stack_file(home)
    if info is None:
        return
    leftovers = []
    for pid in (info.get("service_pids") or {}).values():
        try:
            proc = psutil.Process(int(pid))
            # pids get reused: only a `serve` child started for this home is ours to stop
            if "serve" in proc.cmdline() and proc.environ().get("DEALREG_HOME") == str(home):
                leftovers.append(proc)
        except (psutil.Error, ValueError, TypeError):
            continue
    for proc in leftovers:
        log.warning("stack.leftover_service_stopping", pid=proc.pid)
        proc.terminate()
    kill(wait_gone(leftovers, 5.0))
    remove_stack(home)
