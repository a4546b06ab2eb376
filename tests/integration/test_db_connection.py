"""Connections of `services.eventlog.db`: work after the commit, and what a transaction remembers."""

from __future__ import annotations

import pytest

from services.conflict import policy_store
from services.eventlog.db import atomic, create_pool, transaction_local

pytestmark = pytest.mark.integration


async def test_after_commit_runs_once_per_key_after_the_outer_commit_and_never_after_a_rollback(pool):
    ran: list[str] = []

    async def note(conn) -> None:
        ran.append("ran")

    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                conn.after_commit("k", note)
                raise RuntimeError
        async with conn.transaction():
            conn.after_commit("k", note)
            async with conn.transaction():
                conn.after_commit("k", note)
            assert ran == []
        assert ran == ["ran"]
        with pytest.raises(RuntimeError):
            conn.after_commit("k", note)  # outside a transaction there is no commit to wait for


async def test_on_commit_calls_run_in_order_after_the_commit_and_not_for_what_rolled_back(pool):
    said: list[str] = []
    async with pool.acquire() as conn:
        conn.on_commit(lambda: said.append("outside"))  # no transaction: at once
        assert said == ["outside"]
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                conn.on_commit(lambda: said.append("rolled back"))
                raise RuntimeError
        async with conn.transaction():
            conn.on_commit(lambda: said.append("first"))
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    conn.on_commit(lambda: said.append("in a savepoint rolled back"))
                    raise RuntimeError
            async with conn.transaction():
                conn.on_commit(lambda: said.append("in a savepoint"))
            conn.on_commit(lambda: 1 / 0)  # a failing call does not stop the others
            conn.on_commit(lambda: said.append("last"))
            assert said == ["outside"]
        assert said == ["outside", "first", "in a savepoint", "last"]


async def test_what_a_transaction_remembers_ends_with_it_and_with_a_rolled_back_savepoint(pool):
    async with pool.acquire() as conn:
        assert transaction_local(conn) is None
        async with conn.transaction():
            transaction_local(conn)["lock"] = True
            async with conn.transaction():
                pass
            assert transaction_local(conn) == {"lock": True}
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    raise RuntimeError  # whatever the savepoint took is released with it
            assert transaction_local(conn) == {}
            transaction_local(conn)["lock"] = True
        async with conn.transaction():
            assert transaction_local(conn) == {}


async def test_atomic_opens_a_transaction_only_when_none_is_open(pool):
    sent: list[str] = []
    async with pool.acquire() as conn:
        with conn.query_logger(lambda q: sent.append(q.query)):
            async with atomic(conn):
                assert conn.is_in_transaction()
            async with conn.transaction(), atomic(conn):
                await conn.execute("SELECT 1")
    assert not any(q.startswith("SAVEPOINT") for q in sent)
    assert sum(q.startswith("BEGIN") for q in sent) == 2


async def test_the_policy_in_force_is_read_once_per_transaction(pool):
    sent: list[str] = []
    async with pool.acquire() as conn:
        with conn.query_logger(lambda q: sent.append(q.query)):
            async with conn.transaction():
                first = await policy_store.in_force(conn, "prog-cache")
                assert await policy_store.in_force(conn, "prog-cache") == first
    assert sum("conflict.policies" in q for q in sent) == 1


async def test_the_pool_resets_only_connections_that_took_session_state(pg_dsn):
    pool = await create_pool(pg_dsn, min_size=1, max_size=1)
    sent: list[str] = []
    try:
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda q: sent.append(q.query))
            await conn.execute("SELECT 1")
        assert not any("RESET ALL" in q for q in sent)  # no round trip for a request's connection
        async with pool.acquire() as conn:
            conn.holds_session_state()
            assert await conn.fetchval("SELECT pg_try_advisory_lock(424242)")
        assert any("RESET ALL" in q for q in sent)
        async with pool.acquire() as conn:  # the same connection: its session lock is gone
            assert not await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND objid = 424242 AND pid = pg_backend_pid()"
            )
    finally:
        await pool.close()
