"""The benchmark's own stack in a temporary directory: PostgreSQL, NATS, and both services as processes.

The services run as `dealreg serve <name>` children configured only by environment, exactly as in
production; PostgreSQL keeps its durable defaults, which `durability()` reads back from the server.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import psutil

from deploy.nats import NatsServer
from deploy.ports import free_tcp_port
from deploy.postgres import EmbeddedPostgres
from services.eventlog.jetstream import connect, ensure_streams
from services.eventlog.migrate import migrate

DATABASE = "dealreg"
SERVICES = ("registration", "conflict")
_READY_TIMEOUT_S = 90.0
_WAL_CHUNK_MB = 64  # WAL written by one statement while recycled segments are prepared
# what makes a commit durable, and how often checkpoints come (deploy.postgres.SERVER_SETTINGS)
DURABILITY_SETTINGS = (
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "commit_delay",
    "max_wal_size",
    "checkpoint_timeout",
)


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def _serve_command(name: str, port: int) -> list[str]:
    """`dealreg serve <name>`; the bench's own uvicorn factory where this build has no `serve` command."""
    try:
        from services.cli_serve import serve  # noqa: F401
    except ImportError:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            f"bench.app_factory:{name}",
            "--no-access-log",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    return [sys.executable, "-m", "services.cli", "serve", name]


@dataclass
class Service:
    name: str
    port: int
    log_path: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def processes(self) -> list[psutil.Process]:
        """The service's process and its children (uvicorn workers, if any)."""
        if self.process is None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


@dataclass
class BenchStack:
    """Call `start()`, use the URLs, always `stop()`."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dealreg-bench-")))
    signing_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    postgres: EmbeddedPostgres | None = None
    nats: NatsServer | None = None
    server_dsn: str = ""
    database_url: str = ""
    nats_url: str = ""
    services: dict[str, Service] = field(default_factory=dict)

    async def start(self) -> None:
        self.postgres = EmbeddedPostgres(self.root / "pg")
        self.server_dsn = await asyncio.to_thread(self.postgres.start)
        await create_database(self.server_dsn, DATABASE)
        self.database_url = with_database(self.server_dsn, DATABASE)
        self.nats = NatsServer(self.root / "nats")
        self.nats_url = await asyncio.to_thread(self.nats.start)
        await migrate(self.database_url)
        nc = await connect(self.nats_url, name="bench-setup")
        try:
            await ensure_streams(nc)
        finally:
            await nc.close()
        for name in SERVICES:
            self.services[name] = self._launch(name)
        await self._wait_ready()

    def _launch(self, name: str) -> Service:
        port = free_tcp_port()
        service = Service(name, port, self.root / "logs" / f"{name}.log")
        service.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "DEALREG_HOME": str(self.root / "home"),
            "DEALREG_HOST": "127.0.0.1",
            "DEALREG_DATABASE_URL": self.database_url,
            "DEALREG_NATS_URL": self.nats_url,
            "DEALREG_SIGNING_KEY": self.signing_key,
            "DEALREG_REGISTRATION_PORT": str(port),
            "DEALREG_CONFLICT_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
        with service.log_path.open("ab") as log_file:
            service.process = subprocess.Popen(
                _serve_command(name, port),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return service

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2.0) as client:
            for service in self.services.values():
                while True:
                    if service.process is not None and service.process.poll() is not None:
                        raise RuntimeError(
                            f"{service.name} exited {service.process.returncode}: see {service.log_path}"
                        )
                    try:
                        if (await client.get(f"{service.url}/health/ready")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{service.name} not ready in {_READY_TIMEOUT_S:.0f}s: see {service.log_path}"
                        )
                    await asyncio.sleep(0.1)

    async def recycle_wal(self, gigabytes: float) -> dict[str, float]:
        """Leave the server a supply of recycled WAL segments, as a server past its first checkpoints has.

        A new cluster has none. Until its first checkpoint, each new 16 MB segment is created and filled
        with zeros, and the fsync of a new file's blocks commits the file system's journal, which first
        writes out every other file's newly allocated dirty data: measured here after the burst, one
        segment in every few seconds held all commits for 50-300 ms (`pg_stat_io`, `wal` `init`), and
        those stalls were the whole of the latency phase's p99 at 250/s. A server in its steady state
        renames old segments for reuse at each checkpoint and creates almost none. The bench runs in a
        cluster's first minutes, before any checkpoint is due, so it writes `gigabytes` of WAL first
        (logical messages: no table is touched) and checkpoints: the segments then wait for reuse.
        """
        conn = await asyncpg.connect(self.database_url)
        try:
            started = time.monotonic()
            for _ in range(round(gigabytes * 1024 / _WAL_CHUNK_MB)):
                await conn.execute(
                    "SELECT pg_logical_emit_message(false, 'dealreg-bench', repeat('x', 1048576))"
                    " FROM generate_series(1, $1)",
                    _WAL_CHUNK_MB,
                )
            await conn.execute("CHECKPOINT")
            ready = await conn.fetchval(
                "SELECT count(*) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'"
                " AND name > pg_walfile_name(pg_current_wal_lsn())"
            )
            return {"gb_written": gigabytes, "seconds": round(time.monotonic() - started, 1), "segments_ready": ready}
        finally:
            await conn.close()

    async def durability(self) -> dict[str, str]:
        """The server's durability settings as it reports them (SHOW)."""
        conn = await asyncpg.connect(self.database_url)
        try:
            return {name: await conn.fetchval(f"SHOW {name}") for name in DURABILITY_SETTINGS}
        finally:
            await conn.close()

    def stop_services(self) -> None:
        for service in self.services.values():
            proc = service.process
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self, keep: bool = False) -> None:
        """Services, then NATS, then PostgreSQL; the temp dir goes too unless `keep`."""
        self.stop_services()
        if self.nats is not None:
            self.nats.stop(3.0)
        if self.postgres is not None:
            self.postgres.stop(10.0)
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)


async def create_database(server_dsn: str, name: str) -> str:
    """Create database `name` on the server (if absent); returns its DSN."""
    conn = await asyncpg.connect(server_dsn)
    try:
        if not await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_dsn, name)
