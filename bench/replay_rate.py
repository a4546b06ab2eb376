"""Replay: how fast the conflict projections are rebuilt from the logs the run has written.

The services are stopped first: the rebuild empties the projections they read. It runs the
product's own rebuild (`services.conflict.replay`), once timed and, with `--profile`, once more
under pyinstrument (whose overhead would distort the timed run).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg

from bench.harness import say
from services.eventlog import db


async def _rebuild(pool: asyncpg.Pool) -> tuple[int, float, str]:
    try:
        from services.conflict import replay
    except ImportError:
        replay = None
    rebuild = getattr(replay, "replay", None) or getattr(replay, "rebuild", None)
    if rebuild is not None:
        stats = await rebuild(pool)
        return stats.events, stats.seconds, f"services.conflict.replay.{rebuild.__name__}"
    return (*await _reapply(pool), "services.conflict.projector.apply over the conflict log")


async def _reapply(pool: asyncpg.Pool) -> tuple[int, float]:
    """Without a replay module: re-apply the conflict log through the projector, in one transaction."""
    from contracts.envelope import decode_data
    from services.conflict import projector

    started, n = time.perf_counter(), 0
    async with pool.acquire() as conn, conn.transaction():
        async for name, data in conn.cursor(
            "SELECT event_type, data::text FROM conflict.events ORDER BY global_position"
        ):
            await projector.apply(conn, name, decode_data("conflict", name, data.encode()))
            n += 1
        raise _Rollback(n, time.perf_counter() - started)  # leave the projections as they were


class _Rollback(Exception):
    def __init__(self, events: int, seconds: float) -> None:
        self.events, self.seconds = events, seconds


async def replay_rate(database_url: str, profile_dir: Path | None) -> dict:
    pool = await db.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            logged = await conn.fetchval(
                "SELECT (SELECT count(*) FROM registration.events) + (SELECT count(*) FROM conflict.events)"
            )
        try:
            events, seconds, how = await _rebuild(pool)
        except _Rollback as done:
            events, seconds, how = done.events, done.seconds, "services.conflict.projector.apply over the conflict log"
        out = {
            "events": events,
            "seconds": round(seconds, 2),
            "events_per_s": round(events / seconds, 1),
            "events_in_logs": logged,
            "how": how,
        }
        say(f"replay: {events:,} events in {seconds:.1f}s, {out['events_per_s']:,}/s ({how})")
        if profile_dir is not None:
            out["profile"] = await _profiled(pool, profile_dir)
    finally:
        await pool.close()
    return out


async def _profiled(pool: asyncpg.Pool, profile_dir: Path) -> str:
    from pyinstrument import Profiler

    profiler = Profiler(async_mode="enabled")
    profiler.start()
    try:
        await _rebuild(pool)
    except _Rollback:
        pass
    profiler.stop()
    return await asyncio.to_thread(_save, profiler.output_text(unicode=False, color=False), profile_dir)


def _save(text: str, profile_dir: Path) -> str:
    profile_dir.mkdir(parents=True, exist_ok=True)
    path = profile_dir / "replay-pyinstrument.txt"
    path.write_text(text)
    return str(path)
