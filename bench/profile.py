"""Sampling profiles of the services while a phase runs (`--profile`), with py-spy.

py-spy samples the process from outside at 100 Hz without stopping it (`--nonblocking`) and leaves
out idle threads, so its stacks are where CPU went. The raw (collapsed) stacks are kept next to
the results, and summarised as the functions with the most samples of their own (self) and
the most samples under them (inclusive).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import sysconfig
from collections import Counter
from collections.abc import Callable
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::\d+)?\)$")
_SKIP = ("site-packages/", "lib/python3.11/")


def _py_spy() -> str | None:
    return shutil.which("py-spy", path=sysconfig.get_path("scripts")) or shutil.which("py-spy")


def _name(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in _SKIP:
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m['func']} ({path})"


def summarise(raw: str, top: int = 15) -> dict[str, object]:
    """Top functions by self and inclusive share of samples, from py-spy's raw output."""
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_name(f) for f in stack.split(";") if f]
        if frames:
            own[frames[-1]] += count
        for name in set(frames):
            under[name] += count
    share = lambda n: round(100 * n / total, 1) if total else 0.0  # noqa: E731
    return {
        "samples": total,
        "self_pct": [(name, share(n)) for name, n in own.most_common(top)],
        "inclusive_pct": [(name, share(n)) for name, n in under.most_common(top * 2)],
    }


class Profiler:
    """`async with profiler.record("burst"):` profiles every target process for the phase's length."""

    def __init__(self, enabled: bool, out_dir: Path, targets: dict[str, Callable[[], int | None]]) -> None:
        self.binary = _py_spy() if enabled else None
        self.enabled = enabled and self.binary is not None
        self.out_dir = out_dir
        self.targets = targets
        self.hotspots: dict[str, dict[str, object]] = {}

    @contextlib.asynccontextmanager
    async def record(self, phase: str):
        if not self.enabled:
            yield
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        running = {}
        for name, pid_of in self.targets.items():
            pid = pid_of()
            if pid is None:
                continue
            out = self.out_dir / f"{phase}-{name}.txt"
            running[name] = (
                out,
                await asyncio.create_subprocess_exec(
                    self.binary or "py-spy",
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    "100",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(out),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                ),
            )
        try:
            yield
        finally:
            for name, (out, process) in running.items():
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                try:
                    await asyncio.wait_for(process.wait(), 30)
                except TimeoutError:
                    process.kill()
                    await process.wait()
                if out.exists():
                    self.hotspots.setdefault(phase, {})[name] = summarise(out.read_text())
