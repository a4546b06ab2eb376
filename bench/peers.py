"""Peers on the same server in the same run: pgbench's raw durable inserts, the `eventsourcing`
library's PostgreSQL recorder, and our `EventStore.append`, each appending the same events.

All three connect over TCP to 127.0.0.1, write one event per transaction (a commit, so an fsync
of the WAL, per event: the durability a registration gets before its reply), into a database
of their own so that no relay or consumer of the stack picks the events up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import glob
import resource
import threading
import time
import uuid
from pathlib import Path

import asyncpg

from bench.stack import create_database, with_database
from bench.stats import summary
from services.eventlog import db
from services.eventlog.events import NO_STREAM, Metadata, NewEvent
from services.eventlog.migrate import migrate
from services.eventlog.store import EventStore

DATABASE = "bench_peers"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


TOPIC = "dealreg.registration:RegistrationSubmitted"


async def prepare(server_dsn: str) -> str:
    """Migrate the peers' database and add `peer.events`, a copy of our event table for pgbench."""
    dsn = await create_database(server_dsn, DATABASE)
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE SCHEMA IF NOT EXISTS peer;"
            " CREATE TABLE IF NOT EXISTS peer.events (LIKE registration.events INCLUDING ALL)"
        )
    finally:
        await conn.close()
    return dsn


async def sample_events(database_url: str, limit: int = 1000) -> list[bytes]:
    """Real `registration.submitted` payloads from the benchmark's own run."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT data::text FROM registration.events WHERE event_type = 'registration.submitted' LIMIT $1", limit
        )
    finally:
        await conn.close()
    return [r[0].encode() for r in rows] or [b'{"registration_id": "x"}']


def _pgbench_latencies(prefix: Path) -> list[float]:
    """Milliseconds per transaction from pgbench's per-transaction logs (third column, microseconds)."""
    latencies = []
    for log in glob.glob(f"{prefix}.[0-9]*"):
        with open(log) as f:
            latencies.extend(int(line.split()[2]) / 1000 for line in f if line.strip())
    return latencies


def _pgbench_script(path: Path, payload: bytes, notify: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    literal = payload.decode().replace("'", "''")
    insert = (
        "INSERT INTO peer.events (event_id, stream_id, stream_version, event_type, program_id, subject, data,"
        " occurred_at) VALUES (gen_random_uuid(), 'registration-' || gen_random_uuid(), 1,"
        f" 'registration.submitted', 'bench', 'x', '{literal}'::jsonb, now());\n"
    )
    # with NOTIFY, as our append does: PostgreSQL holds one lock on the notification queue through commit
    path.write_text(f"BEGIN;\n{insert}SELECT pg_notify('peer', '');\nCOMMIT;\n" if notify else insert)


async def pgbench(
    binary: Path, tcp_dsn: str, clients: int, seconds: float, workdir: Path, payload: bytes, notify: bool = False
) -> dict:
    """Single-row durable inserts at `clients` connections: transactions per second and latency."""
    name = f"pgbench-c{clients}{'-notify' if notify else ''}"
    script = workdir / f"{name}-script.sql"
    _pgbench_script(script, payload, notify)
    prefix = workdir / name
    process = await asyncio.create_subprocess_exec(
        str(binary),
        "-n",
        "-T",
        str(max(1, round(seconds))),
        "-c",
        str(clients),
        "-j",
        str(min(clients, 2)),
        "-f",
        str(script),
        "-l",
        f"--log-prefix={prefix}",
        "-d",
        with_database(tcp_dsn, DATABASE),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=workdir,
    )
    output = (await process.communicate())[0].decode()
    if process.returncode != 0:
        raise RuntimeError(f"pgbench failed:\n{output}")
    tps = next(float(line.split("=")[1].split()[0]) for line in output.splitlines() if line.startswith("tps ="))
    latencies = await asyncio.to_thread(_pgbench_latencies, prefix)
    return {"clients": clients, "notify": notify, "tps": round(tps, 1), "latency_ms": summary(latencies)}


def eventsourcing_appends(tcp_dsn: str, writers: int, seconds: float, payloads: list[bytes]) -> dict:
    """The eventsourcing library's PostgreSQL application recorder, `writers` threads, one event a call."""
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    port = int(tcp_dsn.rsplit(":", 1)[1].split("/", 1)[0])
    datastore = PostgresDatastore(DATABASE, "127.0.0.1", port, "postgres", "", pool_size=writers)
    recorder = PostgresApplicationRecorder(datastore, events_table_name="es_events")
    recorder.create_table()
    latencies: list[float] = []
    end = time.monotonic() + seconds

    def writer(n: int) -> None:
        i = n
        while time.monotonic() < end:
            event = StoredEvent(uuid.uuid4(), 1, TOPIC, payloads[i % len(payloads)])
            t0 = time.perf_counter()
            recorder.insert_events([event])
            latencies.append((time.perf_counter() - t0) * 1000)
            i += writers

    started, cpu0 = time.monotonic(), _cpu_s()
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    cores = (_cpu_s() - cpu0) / elapsed
    datastore.close()
    return {
        "writers": writers,
        "appends_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": summary(latencies),
        "client_cores": round(cores, 2),
    }


async def our_appends(tcp_dsn: str, writers: int, seconds: float, payloads: list[bytes]) -> dict:
    """Our `EventStore.append` (event, stream head, outbox row, NOTIFY), `writers` tasks, one event each."""
    store = EventStore("registration")
    pool = await db.create_pool(with_database(tcp_dsn, DATABASE), min_size=writers, max_size=writers)
    latencies: list[float] = []
    end = time.monotonic() + seconds

    async def writer(n: int) -> None:
        i = n
        async with pool.acquire() as conn:
            while time.monotonic() < end:
                event = NewEvent(
                    "registration.submitted", payloads[i % len(payloads)], f"r{i}", dt.datetime.now(dt.UTC)
                )
                t0 = time.perf_counter()
                await store.append(
                    conn,
                    f"registration-{uuid.uuid4()}",
                    NO_STREAM,
                    [event],
                    program_id="bench",
                    metadata=Metadata(actor="bench"),
                )
                latencies.append((time.perf_counter() - t0) * 1000)
                i += writers

    started, cpu0 = time.monotonic(), _cpu_s()
    try:
        await asyncio.gather(*(writer(n) for n in range(writers)))
    finally:
        elapsed = time.monotonic() - started
        cores = (_cpu_s() - cpu0) / elapsed
        await pool.close()
    return {
        "writers": writers,
        "appends_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": summary(latencies),
        "client_cores": round(cores, 2),
    }
