"""`dealreg up` as a newcomer runs it: a real process tree, its ready lines, a clean stop, and a restart.

Each start costs seconds, so the stack is started as few times as the checks allow.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import psutil
import pytest

from deploy.ports import free_tcp_port

pytestmark = pytest.mark.e2e

DEALREG = Path(sys.executable).parent / "dealreg"
READY_DEADLINE_S = 90.0
STOP_DEADLINE_S = 15.0
STACK_KEYS = {"registration_url", "conflict_url", "nats_url", "database_url", "home", "pid", "started_at"}
# variables of the developer's own shell that would point the stack elsewhere
_OUTER_VARIABLES = ("DEALREG_DATABASE_URL", "DEALREG_NATS_URL", "DEALREG_SIGNING_KEY", "DEALREG_HOST")


@dataclass
class Stack:
    process: subprocess.Popen[str]
    home: Path
    stderr_path: Path
    lines: list[str] = field(default_factory=list)

    @property
    def info(self) -> dict:
        return json.loads((self.home / "stack.json").read_text())

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        """SIGTERM; the exit code, which must come within the deadline."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"dealreg up did not exit within {STOP_DEADLINE_S}s of SIGTERM:\n{self.stderr()}")


def stack_env(home: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _OUTER_VARIABLES}
    return {**env, "DEALREG_HOME": str(home), **extra}


def start_stack(home: Path, **extra: str) -> Stack:
    """Run `dealreg up` and wait for its three ready lines on stdout."""
    env = stack_env(
        home,
        DEALREG_REGISTRATION_PORT=str(free_tcp_port()),
        DEALREG_CONFLICT_PORT=str(free_tcp_port()),
        **extra,
    )
    stderr_path = home.parent / f"up-{uuid.uuid4().hex[:6]}.err"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [str(DEALREG), "up"], stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd=home.parent
        )
    stack = Stack(process, home, stderr_path)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + READY_DEADLINE_S
    while len(stack.lines) < 3:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            stack.stop()
            pytest.fail(f"no ready lines within {READY_DEADLINE_S}s; stdout {stack.lines}:\n{stack.stderr()}")
        if line is None:
            pytest.fail(f"dealreg up exited {process.wait()} before it was ready:\n{stack.stderr()}")
        stack.lines.append(line.rstrip("\n"))
    return stack


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_dealreg(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DEALREG), *args], capture_output=True, text=True, env=env, timeout=60)


def processes_of(home: Path) -> list[psutil.Process]:
    """Live processes started for this home: it is in their command line or their environment."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if str(home) in " ".join(proc.cmdline()) or proc.environ().get("DEALREG_HOME") == str(home):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stack_ports(info: dict) -> list[int]:
    database = urlsplit(info["database_url"])
    database_port = database.port or int(parse_qs(database.query)["port"][0])
    urls = (info["registration_url"], info["conflict_url"], info["nats_url"])
    return [urlsplit(url).port for url in urls] + [database_port]


async def program_names(dsn: str, program_id: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT name FROM registration.programs WHERE program_id = $1", program_id)
    finally:
        await conn.close()
    return [row["name"] for row in rows]


def check_service(url: str) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/health/live").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        openapi = client.get("/schema/openapi.json")
        assert openapi.status_code == 200
        assert openapi.json()["paths"]


def test_up_serves_stops_cleanly_and_keeps_its_data_across_restarts(tmp_path: Path):
    home = tmp_path / "home"
    program_id = f"stack-{uuid.uuid4().hex[:8]}"
    stack = start_stack(home)
    try:
        info = stack.info
        assert STACK_KEYS <= info.keys()
        assert info["pid"] == stack.process.pid
        assert Path(info["home"]) == home.resolve()
        assert stack.lines == [
            f"registration API: {info['registration_url']}",
            f"conflict API: {info['conflict_url']}",
            f"nats: {info['nats_url']}",
        ]
        assert info["registration_url"].startswith("http://127.0.0.1:")
        assert info["nats_url"].startswith("nats://")
        for url in (info["registration_url"], info["conflict_url"]):
            check_service(url)

        minted = run_dealreg("token", "--role", "admin", env=stack_env(home))
        assert minted.returncode == 0, minted.stderr
        bearer = {"Authorization": f"Bearer {minted.stdout.strip().splitlines()[-1]}"}
        put = httpx.put(
            f"{info['registration_url']}/v1/programs/{program_id}", json={"name": "Kept Program"}, headers=bearer
        )
        assert put.status_code == 200, put.text
    finally:
        code = stack.stop()
    assert code == 0, stack.stderr()
    assert not (home / "stack.json").exists()
    assert processes_of(home.resolve()) == []
    assert [port for port in stack_ports(info) if not port_free(port)] == []

    again = start_stack(home)
    try:
        names = asyncio.run(program_names(again.info["database_url"], program_id))
        assert names == ["Kept Program"]
    finally:
        assert again.stop() == 0, again.stderr()
    assert processes_of(home.resolve()) == []


def test_up_uses_the_servers_it_is_given(tmp_path: Path, pg_dsn: str, nats_url: str):
    home = tmp_path / "home"
    stack = start_stack(home, DEALREG_DATABASE_URL=pg_dsn, DEALREG_NATS_URL=nats_url)
    try:
        info = stack.info
        assert info["database_url"] == pg_dsn
        assert info["nats_url"] == nats_url
        assert stack.lines[2] == f"nats: {nats_url}"
        children = psutil.Process(stack.process.pid).children(recursive=True)
        assert {child.name() for child in children}.isdisjoint({"postgres", "nats-server", "pg_ctl"})
        assert len(children) == 2  # the two services, nothing else
        assert not (home / "pg").exists()
        assert not (home / "nats").exists()
        check_service(info["registration_url"])
    finally:
        code = stack.stop()
    assert code == 0, stack.stderr()
    assert processes_of(home.resolve()) == []
