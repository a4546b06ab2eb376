"""What the figures were measured on: CPU, cores, memory, OS, and the versions of what ran."""

from __future__ import annotations

import asyncio
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path

import asyncpg
import psutil

from deploy.nats import _nats_server_binary

_LIBRARIES = ("litestar", "uvicorn", "asyncpg", "nats-py", "msgspec", "aiohttp", "eventsourcing", "psycopg")


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


async def describe(database_url: str) -> dict:
    conn = await asyncpg.connect(database_url)
    try:
        pg_version = await conn.fetchval("SHOW server_version")
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
        "load_generator": "aiohttp (HTTP/1.1 keep-alive pool, asyncio tasks, uvloop) in its own process, on the same cores",
    }
