"""NOTIFY sent for a pool's appenders in the background, many commits' worth at a time.

An append wakes outbox relays in other processes with NOTIFY once it has committed. Sent by each
appender on its own connection, that is one more round trip on every request. Instead the
appender asks the pool's `Notifier`, which sends from a connection of the pool in a task of its
own: requests that arrive while a NOTIFY is in flight are sent together right after it, so every
commit is followed by a NOTIFY sent after it, and concurrent commits share one.
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

log = structlog.get_logger(__name__)


class Notifier:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.sent = 0
        self._pending: set[str] = set()
        self._task: asyncio.Task | None = None

    def request(self, channel: str) -> None:
        """NOTIFY `channel` soon, and after this call (call it once the transaction has committed)."""
        self._pending.add(channel)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._pending:
            channels, self._pending = self._pending, set()
            try:
                async with self.pool.acquire() as conn:
                    # channels are the store's own identifiers (dealreg_outbox_<schema>)
                    await conn.execute("; ".join(f"NOTIFY {channel}" for channel in sorted(channels)))
                self.sent += 1
            except Exception as e:  # the pool closing, the server gone: relays also poll
                log.warning("notifier.failed", channels=sorted(channels), error=repr(e))
                return
