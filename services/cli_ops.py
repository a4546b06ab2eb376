"""The operators' `dealreg` commands: trace, tail, replay.

Each finds the stack with no flags when `dealreg up` runs it (`$DEALREG_HOME/stack.json`), or
through the same variables the services read (`DEALREG_DATABASE_URL`, `DEALREG_NATS_URL`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from services.cli_commands import CommandError, UsageError
from services.settings import Settings
from services.stackfile import read_stack


def add_ops_commands(commands: Any) -> None:
    """Add trace, tail and replay to the `dealreg` sub-command parsers; each sets its `handler`."""
    trace = commands.add_parser("trace", help="the timeline of a registration or a conflict, across both services")
    trace.add_argument("id", help="a registration, direct deal or conflict id")
    trace.add_argument("--json", action="store_true", help="print the timeline as one JSON document")
    trace.set_defaults(handler=trace_command)

    tail = commands.add_parser("tail", help="follow a program's conflict events live, as a CRM receives them")
    tail.add_argument("--program", required=True, help="program id")
    tail.add_argument("--from-start", action="store_true", help="replay the stream from its first event")
    tail.add_argument("--json", action="store_true", help="print each CloudEvent as received (JSON lines)")
    tail.set_defaults(handler=tail_command)

    replay = commands.add_parser("replay", help="rebuild a service's projections from the event logs")
    replay.add_argument("service", choices=["conflict"])
    replay.set_defaults(handler=replay_command)


def _logging() -> None:
    from services.logs import configure_logging

    configure_logging(Settings.from_env().log_level)  # stderr: stdout carries the command's output


def _stack_value(env_value: str | None, key: str, variable: str) -> str:
    if env_value:
        return env_value
    settings = Settings.from_env()
    stack = read_stack(settings.home)
    if stack is None or not stack.get(key):
        raise CommandError(f"set {variable}, or start the local stack (`dealreg up`) in {settings.home}")
    return stack[key]


def database_url() -> str:
    return _stack_value(Settings.from_env().database_url, "database_url", "DEALREG_DATABASE_URL")


def nats_url() -> str:
    return _stack_value(Settings.from_env().nats_url, "nats_url", "DEALREG_NATS_URL")


def trace_command(args: argparse.Namespace) -> int:
    """Print the timeline of a registration (or direct deal) or conflict as a tree, or as JSON."""
    from services.ops_render import timeline_tree
    from services.ops_timeline import load

    _logging()

    async def fetch():
        import asyncpg

        try:
            conn = await asyncpg.connect(database_url(), timeout=10)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            raise CommandError(f"cannot reach the database: {exc}") from exc
        try:
            return await load(conn, args.id)
        finally:
            await conn.close()

    timeline = asyncio.run(fetch())
    if timeline is None:
        raise CommandError(f"no registration, direct deal or conflict {args.id!r} in either event log")
    if args.json:
        print(json.dumps(timeline.as_json(), indent=2))
        return 0
    from rich.console import Console

    Console().print(timeline_tree(timeline))
    return 0


def tail_command(args: argparse.Namespace) -> int:
    """Follow `dealreg.conflict.<program>.>` with an ordered JetStream consumer until Ctrl-C."""
    from contracts.envelope import ID_PATTERN

    if not ID_PATTERN.match(args.program):
        raise UsageError(f"{args.program!r} is not a program id")
    _logging()
    try:
        asyncio.run(_tail(nats_url(), args.program, args.from_start, args.json))
    except KeyboardInterrupt:
        pass
    return 0


async def _tail(url: str, program: str, from_start: bool, as_json: bool) -> None:
    import nats
    from nats.js.api import DeliverPolicy

    from contracts.envelope import JETSTREAM_STREAMS
    from services.ops_render import event_line

    try:
        nc = await nats.connect(url, name="dealreg-tail", connect_timeout=5, max_reconnect_attempts=-1)
    except Exception as exc:
        raise CommandError(f"cannot reach NATS at {url}: {exc}") from exc
    try:
        subject = f"dealreg.conflict.{program}.>"
        try:
            sub = await nc.jetstream().subscribe(
                subject,
                stream=JETSTREAM_STREAMS["conflict"],
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL if from_start else DeliverPolicy.NEW,
            )
        except Exception as exc:  # no JetStream, or the stream was never created
            raise CommandError(f"cannot follow {subject}: {exc}") from exc
        print(
            f"following {subject}{' from the start' if from_start else ''} (Ctrl-C stops)", file=sys.stderr, flush=True
        )
        async for msg in sub.messages:
            print(msg.data.decode(errors="replace") if as_json else event_line(msg.data), flush=True)
    finally:
        await nc.close()


def replay_command(args: argparse.Namespace) -> int:
    """Rebuild the conflict projections from the logs with a progress bar; prints the rate."""
    _logging()
    stats = asyncio.run(_replay(database_url()))
    print(f"replayed {stats.events} events in {stats.seconds:.2f} s ({stats.rate:,.0f} events/s)")
    return 0


async def _replay(dsn: str):
    import asyncpg
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from services.conflict.replay import count_events, rebuild
    from services.eventlog import db

    try:
        pool = await db.create_pool(dsn, min_size=1, max_size=2, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise CommandError(f"cannot reach the database: {exc}") from exc
    try:
        async with pool.acquire() as conn:
            total = await count_events(conn)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
            task = progress.add_task("replaying the conflict projections", total=total)
            stats = await rebuild(pool, progress=lambda n: progress.advance(task, n))
            progress.update(task, completed=total)  # the count includes facts the replay skips
        return stats
    finally:
        await pool.close()
