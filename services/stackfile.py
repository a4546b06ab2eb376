"""`$DEALREG_HOME/stack.json`: how `dealreg` commands find the local stack that `dealreg up` runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import psutil

STACK_FILE = "stack.json"


def stack_path(home: Path) -> Path:
    return Path(home) / STACK_FILE


def read_stack(home: Path) -> dict[str, Any] | None:
    """The running stack's facts (`registration_url`, `conflict_url`, `nats_url`, `database_url`,
    `home`, `pid`, `started_at`), or None when no stack runs on `home`.

    A file left behind by a supervisor that was killed outright does not count: its pid must live.
    """
    info = read_stack_file(home)
    if info is None:
        return None
    try:
        supervisor = psutil.Process(int(info["pid"]))
        # pids get reused (quickly, in containers): the process must also be as old as the file says
        created = info.get("pid_created")
        if created is not None and abs(supervisor.create_time() - float(created)) > 1.0:
            return None
    except (KeyError, TypeError, ValueError, psutil.NoSuchProcess):
        return None
    return info


def read_stack_file(home: Path) -> dict[str, Any] | None:
    """The file's content whether or not its supervisor still runs; None when absent or unreadable."""
    try:
        info = json.loads(stack_path(home).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def write_stack(home: Path, info: dict[str, Any]) -> Path:
    """Write atomically, readable by the owner only: the file names the database and NATS URLs."""
    path = stack_path(home)
    tmp = path.with_name(f".{STACK_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def remove_stack(home: Path) -> None:
    stack_path(home).unlink(missing_ok=True)
