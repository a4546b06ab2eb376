"""What the figures were measured on: CPU, cores, memory, OS, and the versions of what ran."""

from __future__ import annotations

import asyncio
import importlib.metadata
import platform
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import psutil

from deploy.nats import _nats_server_binary

_LIBRARIES = ("litestar", "uvicorn", "asyncpg", "nats-py", "msgspec", "httptools", "eventsourcing", "psycopg")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def source_version() -> dict:
    """The commit measured, and whether the work tree differed from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain", "--", "services", "contracts", "deploy")),
    }


def _nats_version() -> str:
    return subprocess.run([_nats_server_binary(), "--version"], capture_output=True, text=True).stdout.strip()


def _run_time_s(pid: int) -> float | None:
    """Time the scheduler ran `pid` (all its threads), from /proc/<pid>/schedstat: exact, where the
    per-process CPU times of /proc/<pid>/stat are sampled at each timer tick (and so charge a
    process woken by a timer with the whole tick)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


async def round_trip_cpu(conn: asyncpg.Connection, pauses_s: tuple[float, ...] = (0.0, 0.002, 0.01)) -> list[dict]:
    """CPU time of one `SELECT 1` round trip, in this process and in its PostgreSQL backend, sent
    back to back and after each pause. What a round trip costs depends on how long both sides sat
    idle before it: on a virtual machine a wake-up from idle is not cheap, so the CPU a registration
    takes falls as the load (and with it the batches) grows."""
    backend = await conn.fetchval("SELECT pg_backend_pid()")
    out = []
    for pause in pauses_s:
        count = 300 if pause else 2000
        own, server = time.thread_time(), _run_time_s(backend)
        for _ in range(count):
            await conn.fetchval("SELECT 1")
            if pause:
                await asyncio.sleep(pause)
        own = (time.thread_time() - own) / count
        after = _run_time_s(backend)
        out.append(
            {
                "pause_ms": pause * 1000,
                "client_us": round(own * 1e6, 1),
                "backend_us": round((after - server) / count * 1e6, 1) if server is not None and after else None,
            }
        )
    return out


async def describe(database_url: str) -> dict:
    conn = await asyncpg.connect(database_url)
    try:
        pg_version = await conn.fetchval("SHOW server_version")
        round_trips = await round_trip_cpu(conn)
    finally:
        await conn.close()
    nats_version = await asyncio.to_thread(_nats_version)
    return {
        "cpu_model": _cpu_model(),
        "cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "postgresql": pg_version,
        "nats_server": nats_version,
        "libraries": {name: _version(name) for name in _LIBRARIES},
        "source": await asyncio.to_thread(source_version),
        "round_trip_cpu": round_trips,
        "load_generator": "asyncio protocols with httptools (HTTP/1.1 keep-alive pool, asyncio tasks, uvloop) in its own process, on the same cores",
    }
