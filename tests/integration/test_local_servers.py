"""The local stack's own servers: embedded PostgreSQL and nats-server, each started here.

These tests start and stop their own servers instead of using the session fixtures,
because restarts and leftovers are what they check.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import asyncpg
import nats
import psutil
import pytest
from nats.js.api import StorageType, StreamConfig

from deploy.nats import NatsServer
from deploy.postgres import EmbeddedPostgres, shared_buffers
from deploy.processes import is_alive

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres(tmp_path: Path):
    server = EmbeddedPostgres(tmp_path / "pgdata")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_server(tmp_path: Path):
    server = NatsServer(tmp_path / "nats")
    try:
        yield server
    finally:
        server.stop()


def _postgres_running_in(data_dir: Path) -> list[psutil.Process]:
    running = []
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "postgres" and Path(proc.cwd()) == data_dir and is_alive(proc):
                running.append(proc)
        except psutil.Error:
            continue
    return running


async def test_postgres_keeps_rows_across_a_restart(postgres: EmbeddedPostgres):
    dsn = await asyncio.to_thread(postgres.start)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text NOT NULL)")
        await conn.execute("INSERT INTO kept VALUES (1, 'survives a restart')")
    finally:
        await conn.close()
    await asyncio.to_thread(postgres.stop)

    dsn = await asyncio.to_thread(postgres.start)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT note FROM kept WHERE id = 1") == "survives a restart"
    finally:
        await conn.close()


async def test_postgres_listens_on_tcp_with_the_configured_settings(postgres: EmbeddedPostgres):
    await asyncio.to_thread(postgres.start)
    assert postgres.tcp_dsn == f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres"
    conn = await asyncpg.connect(postgres.tcp_dsn)
    try:
        settings = await conn.fetch(
            "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])",
            ["max_connections", "fsync", "synchronous_commit", "full_page_writes"],
        )
        assert dict(settings) == {
            "max_connections": "300",
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
        }
        # checkpoints by time, not by each gigabyte of WAL (SHOW gives the units)
        assert [await conn.fetchval(f"SHOW {name}") for name in ("max_wal_size", "checkpoint_timeout")] == [
            "8GB",
            "15min",
        ]
        assert (
            await conn.fetchval(
                "SELECT setting::int8 * 8192 / 1048576 || 'MB' FROM pg_settings WHERE name = 'shared_buffers'"
            )
            == shared_buffers()
        )
        assert await conn.fetchval("SELECT lower('ÄÖÜ')") == "äöü"  # a Unicode-aware locale
    finally:
        await conn.close()


def test_postgres_stop_leaves_no_process(postgres: EmbeddedPostgres):
    postgres.start()
    postmaster = psutil.Process(postgres.pid)
    family = [postmaster, *postmaster.children(recursive=True)]

    postgres.stop()
    postgres.stop()  # idempotent

    assert postgres.pid is None
    assert not [proc.pid for proc in family if is_alive(proc)]
    assert _postgres_running_in(postgres.data_dir) == []
    assert not (postgres.data_dir / "postmaster.pid").exists()


def test_postgres_start_replaces_a_postmaster_left_by_a_crashed_run(tmp_path: Path):
    data_dir = tmp_path / "pgdata"
    crashed_run = EmbeddedPostgres(data_dir)
    crashed_run.start()
    leftover = psutil.Process(crashed_run.pid)

    next_run = EmbeddedPostgres(data_dir)
    try:
        next_run.start()
        assert not is_alive(leftover)
        postmaster = psutil.Process(next_run.pid)
        ours = {postmaster.pid, *(child.pid for child in postmaster.children(recursive=True))}
        assert {proc.pid for proc in _postgres_running_in(data_dir.resolve())} <= ours
    finally:
        next_run.stop()


def test_postgres_start_ignores_a_stale_pid_file(postgres: EmbeddedPostgres):
    postgres.start()
    postgres.stop()
    # a live pid that is not a postmaster, as after a crash once the pid was reused
    (postgres.data_dir / "postmaster.pid").write_text(f"{os.getpid()}\n{postgres.data_dir}\n")

    postgres.start()

    assert postgres.pid != os.getpid()
    assert is_alive(psutil.Process(postgres.pid))


def test_postgres_stop_kills_a_postmaster_that_does_not_shut_down_in_time(postgres: EmbeddedPostgres):
    postgres.start()
    postmaster = psutil.Process(postgres.pid)
    family = [postmaster, *postmaster.children(recursive=True)]
    postmaster.suspend()  # a stopped process cannot act on pg_ctl's shutdown request

    postgres.stop(timeout=1.0)

    assert not [proc.pid for proc in family if is_alive(proc)]


async def test_postgres_puts_its_socket_under_tmp_when_the_data_dir_path_is_too_long(tmp_path: Path):
    server = EmbeddedPostgres(tmp_path / ("d" * 100) / "pgdata")
    try:
        dsn = await asyncio.to_thread(server.start)
        assert "host=/tmp/dealreg-pg-" in dsn
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(server.stop)


async def test_nats_jetstream_keeps_messages_across_a_restart(nats_server: NatsServer):
    stream, subject = f"KEPT_{uuid.uuid4().hex[:8]}", f"kept.{uuid.uuid4().hex[:8]}"
    url = await asyncio.to_thread(nats_server.start)
    assert url == f"nats://127.0.0.1:{nats_server.port}"
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await js.add_stream(StreamConfig(name=stream, subjects=[subject], storage=StorageType.FILE))
        ack = await js.publish(subject, b"survives a restart")
    finally:
        await client.close()
    await asyncio.to_thread(nats_server.stop)

    url = await asyncio.to_thread(nats_server.start)
    client = await nats.connect(url)
    try:
        message = await client.jetstream().get_msg(stream, ack.seq)
        assert message.data == b"survives a restart"
    finally:
        await client.close()


def test_nats_stop_leaves_no_process(nats_server: NatsServer):
    nats_server.start()
    process = psutil.Process(nats_server.pid)

    nats_server.stop()
    nats_server.stop()  # idempotent

    assert nats_server.pid is None
    assert not is_alive(process)


def test_nats_start_replaces_a_server_left_by_a_crashed_run(tmp_path: Path):
    crashed_run = NatsServer(tmp_path / "nats")
    crashed_run.start()
    leftover = psutil.Process(crashed_run.pid)

    next_run = NatsServer(tmp_path / "nats")
    try:
        next_run.start()
        assert not is_alive(leftover)
        assert next_run.pid != leftover.pid
    finally:
        next_run.stop()
        crashed_run.stop()


def test_the_buffer_cache_is_a_quarter_of_the_memory_within_bounds():
    gb = 2**30
    assert shared_buffers(8 * gb) == "2048MB"
    assert shared_buffers(24 * gb) == "4096MB"  # at most 4 GB
    assert shared_buffers(gb // 4) == "128MB"  # at least PostgreSQL's default
