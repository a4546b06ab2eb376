"""`dealreg up`: the local stack in the foreground until Ctrl-C or SIGTERM, optionally with demo data."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
import sys
from typing import Any

import structlog

from deploy.stack import Interrupted, LocalStack, StackError
from services.logs import configure_logging
from services.settings import Settings

log = structlog.get_logger(__name__)


def up(*, demo: bool) -> int:
    """Start the stack, print its three ready lines on stdout, serve until a signal; the exit code."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)  # stderr: stdout carries only the ready lines
    return asyncio.run(_run(settings, demo=demo))


async def _run(settings: Settings, *, demo: bool) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stack = LocalStack(settings, stop)
    demo_task: asyncio.Task | None = None
    try:
        try:
            info = await stack.start()
        except Interrupted:
            return 0
        except StackError as exc:
            _say(str(exc))
            return 1
        except Exception as exc:  # a server that would not start: its own message says why
            log.debug("stack.start_failed", exc_info=True)
            _say(f"could not start: {type(exc).__name__}: {exc}")
            return 1
        print(f"registration API: {info['registration_url']}", flush=True)
        print(f"conflict API: {info['conflict_url']}", flush=True)
        print(f"nats: {info['nats_url']}", flush=True)
        print(f"dealreg: logs in {stack.home / 'logs'}; Ctrl-C stops everything", file=sys.stderr, flush=True)
        if demo:
            demo_task = _start_demo(info, stack.signing_key)
        failure = await stack.watch()
        if failure is not None:
            _say(failure)
            return 1
        return 0
    finally:
        if demo_task is not None:
            demo_task.cancel()
            await asyncio.gather(demo_task, return_exceptions=True)
        await stack.shutdown()


def _start_demo(info: dict[str, Any], signing_key: str) -> asyncio.Task | None:
    """Seed demo data in the background so the stack serves (and shows its work) meanwhile."""
    try:
        from services.demo import seed
    except ModuleNotFoundError as exc:
        if exc.name != "services.demo":
            raise
        _say("no demo data in this build (services.demo is missing); the stack runs empty")
        return None
    args = (info["registration_url"], info["conflict_url"], signing_key)
    seeding = seed(*args) if inspect.iscoroutinefunction(seed) else asyncio.to_thread(seed, *args)
    task = asyncio.create_task(seeding, name="demo-seed")
    task.add_done_callback(_report_demo)
    return task


def _report_demo(task: asyncio.Task) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("demo.failed", exc_info=exc)
        _say(f"demo seeding failed ({type(exc).__name__}: {exc}); the stack keeps running")
    else:
        _say("demo data seeded")


def _say(message: str) -> None:
    with contextlib.suppress(OSError):
        print(f"dealreg up: {message}", file=sys.stderr, flush=True)
