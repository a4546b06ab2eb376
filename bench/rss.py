"""Resident memory and CPU of the stack's processes, sampled while the load runs.

RSS is summed over each service's process tree and sampled every half second; the peak is kept per
phase. CPU time is read at each phase's start and end, for the services and for the servers, so
the report can say where the two cores went (`machine` is every process on the host, so CPU taken
by anything outside the benchmark shows as the difference).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import psutil

from bench.waits import WaitSampler

ProcessSource = Callable[[], list[psutil.Process]]


def _rss(procs: list[psutil.Process]) -> int:
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def _cpu(procs: list[psutil.Process]) -> dict[int, float]:
    """CPU seconds per pid: a backend that exits mid-phase takes its time with it, so deltas go per pid."""
    out = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            out[proc.pid] = times.user + times.system
    return out


def _busy() -> float:
    """CPU seconds the whole machine has spent not idle (every process, ours or not)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def tree(pid: int | None) -> list[psutil.Process]:
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class ResourceSampler:
    """`async with sampler.phase("burst"): ...` records that phase's peak RSS, CPU use and PostgreSQL waits."""

    def __init__(
        self,
        sampled: dict[str, ProcessSource],
        accounted: dict[str, ProcessSource],
        waits: WaitSampler,
        interval: float = 0.5,
    ) -> None:
        self.waits = waits
        self.sampled = sampled  # RSS is watched for these (the services)
        self.accounted = {**sampled, **accounted}  # CPU is accounted for these too (postgres, nats)
        self.interval = interval
        self.peak_mb: dict[str, dict[str, float]] = {}
        self.cores: dict[str, dict[str, float]] = {}
        self.seconds: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def phase(self, name: str):
        peaks = self.peak_mb.setdefault(name, {})
        cpu0 = {key: _cpu(source()) for key, source in self.accounted.items()}
        wall0, busy0 = time.monotonic(), _busy()
        task = asyncio.create_task(self._sample(peaks))
        try:
            async with self.waits.phase(name):
                yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._take(peaks)
            wall = max(time.monotonic() - wall0, 1e-9)
            self.seconds[name] = round(wall, 3)
            self.cores[name] = {
                key: round(_spent(cpu0[key], _cpu(source())) / wall, 3) for key, source in self.accounted.items()
            }
            # everything that ran, the load generator and other people's processes included
            self.cores[name]["machine"] = round((_busy() - busy0) / wall, 3)

    def _take(self, peaks: dict[str, float]) -> None:
        for key, source in self.sampled.items():
            mb = _rss(source()) / 2**20
            peaks[key] = round(max(peaks.get(key, 0.0), mb), 1)

    async def _sample(self, peaks: dict[str, float]) -> None:
        while True:
            await asyncio.to_thread(self._take, peaks)
            await asyncio.sleep(self.interval)

    def peak(self, key: str, phases: list[str] | None = None) -> float | None:
        values = [p[key] for name, p in self.peak_mb.items() if key in p and (phases is None or name in phases)]
        return max(values) if values else None
