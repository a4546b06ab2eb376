"""PostgreSQL connections that can run work after their transaction commits.

Two kinds: `after_commit` callbacks (coroutines, once per key: wake-ups), and `on_commit` calls,
each in order, for what may only be said of committed work (a decision's log line and count):
those asked within a savepoint that rolls back are dropped with it.

The event store wakes outbox relays with NOTIFY. Sent inside the appending transaction, a NOTIFY
takes PostgreSQL's notification lock from pre-commit to the end of the commit, WAL flush included,
so every appending transaction of the cluster would commit one after the other (pgbench at 16
connections: about 4,600 inserts/s without, 1,700 with). Sent after the commit, in a transaction
of its own that writes nothing, it holds that lock for no flush at all, and concurrent appends
share their WAL flushes again. `after_commit` is how the store asks for that.

Every pool and connection that appends must come from `create_pool` or `connect` here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import asyncpg
import structlog
from asyncpg.transaction import Transaction

from services.eventlog.notifier import Notifier

log = structlog.get_logger(__name__)

AfterCommit = Callable[[asyncpg.Connection], Awaitable[Any]]


class Connection(asyncpg.Connection):
    """asyncpg's connection, with callbacks run once its outermost transaction has committed, and
    `transaction_local`: what the current transaction has already learnt (locks it holds, say),
    emptied when it ends and when one of its savepoints rolls back."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._after_commit: dict[Hashable, AfterCommit] = {}
        self._on_commit: list[Callable[[], object]] = []
        self.transaction_local: dict[Hashable, Any] = {}
        self.shared: dict[Hashable, Any] = {}  # the same dict for every connection of a pool
        self._session_state = False

    def holds_session_state(self) -> None:
        """Say that this connection took session-wide state (a session advisory lock, say): the pool
        then resets it fully when it takes it back."""
        self._session_state = True

    def get_reset_query(self) -> str:
        # The pool resets every connection it takes back: UNLISTEN, RESET ALL, advisory locks
        # released, one more round trip per request. Only connections that took session state need
        # that (our settings are transaction-local); an open transaction is rolled back regardless.
        if self._session_state:
            self._session_state = False
            return super().get_reset_query()
        return ""

    async def add_listener(self, channel: str, callback: Any) -> None:
        self.holds_session_state()
        await super().add_listener(channel, callback)

    def transaction(self, *, isolation=None, readonly=False, deferrable=False) -> Transaction:
        return _Transaction(self, isolation, readonly, deferrable)

    def after_commit(self, key: Hashable, callback: AfterCommit) -> None:
        """Run `callback(conn)` after the current transaction commits (once per `key`); dropped on rollback."""
        if not self.is_in_transaction():
            raise RuntimeError("after_commit needs an open transaction")
        self._after_commit.setdefault(key, callback)

    def on_commit(self, call: Callable[[], object]) -> None:
        """`call()` once the current transaction commits, after those asked before it (at once outside
        a transaction); dropped if the transaction, or the savepoint it was asked in, rolls back."""
        if not self.is_in_transaction():
            call()
            return
        self._on_commit.append(call)

    async def _ended(self, nested: bool, committed: bool, mark: int = 0) -> None:
        if nested:
            if not committed:  # what the savepoint took (its locks too) is gone, and what it said
                self.transaction_local.clear()
                del self._on_commit[mark:]
            return
        self.transaction_local = {}
        callbacks, self._after_commit = list(self._after_commit.values()), {}
        calls, self._on_commit = self._on_commit, []
        if not committed:
            return
        for call in calls:
            try:
                call()
            except Exception as e:  # the transaction is committed: its effects stand
                log.warning("db.on_commit_failed", error=repr(e))
        for callback in callbacks:
            try:
                await callback(self)
            except Exception as e:  # the transaction is committed: its effects stand; a wake-up can be late
                log.warning("db.after_commit_failed", error=repr(e))


class _Transaction(Transaction):
    async def __aenter__(self):
        self._mark = len(self._connection._on_commit)  # what a savepoint drops if it rolls back
        return await super().__aenter__()

    async def __aexit__(self, extype, ex, tb):
        conn: Connection = self._connection
        try:
            await super().__aexit__(extype, ex, tb)
        except BaseException:
            await conn._ended(self._nested, committed=False, mark=self._mark)
            raise
        await conn._ended(self._nested, committed=extype is None, mark=self._mark)


def atomic(conn: asyncpg.Connection) -> contextlib.AbstractAsyncContextManager:
    """A transaction, unless one is open already: no savepoint (two round trips) for work whose
    failure fails the caller's transaction anyway."""
    return contextlib.nullcontext() if conn.is_in_transaction() else conn.transaction()


def transaction_local(conn: asyncpg.Connection) -> dict[Hashable, Any] | None:
    """The open transaction's `transaction_local` (None outside a transaction)."""
    return getattr(conn, "transaction_local", None) if conn.is_in_transaction() else None


NOTIFIER = "notifier"


async def create_pool(dsn: str, **kwargs: Any) -> asyncpg.Pool:
    """An asyncpg pool of `Connection`s sharing one `shared` dict: an in-process outbox relay
    leaves its wake-up there (its appenders then need no NOTIFY), and the pool's `Notifier`
    (`shared[NOTIFIER]`) sends the NOTIFYs for the others in the background."""
    shared: dict[Hashable, Any] = {}

    async def init(conn: Connection) -> None:
        conn.shared = shared

    pool = await asyncpg.create_pool(dsn, connection_class=Connection, init=init, **kwargs)
    shared[NOTIFIER] = Notifier(pool)
    return pool


async def connect(dsn: str, **kwargs: Any) -> Connection:
    """One `Connection`."""
    return await asyncpg.connect(dsn, connection_class=Connection, **kwargs)
