"""What every measurement shares: the stack, a NATS client, the resource sampler, programs with their
partners' tokens, the load generator process, and waiting until the pipeline is idle."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import msgspec
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from bench import data, seed
from bench.config import Profile
from bench.loadgen import LoadResult, LoadSpec
from bench.profile import Profiler
from bench.rss import ResourceSampler
from bench.stack import BenchStack
from contracts.envelope import JETSTREAM_STREAMS
from services.conflict import intake
from services.eventlog import db
from services.registration import status_flow

ROOT = Path(__file__).resolve().parent.parent
# (stream, durable consumer) of both services: idle means nothing pending or unacknowledged on either
CONSUMERS = (
    (JETSTREAM_STREAMS["registration"], intake.CONSUMER),
    (JETSTREAM_STREAMS["conflict"], status_flow.CONSUMER),
)


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Bench:
    profile: Profile
    stack: BenchStack
    nc: NATS
    sampler: ResourceSampler
    profiler: Profiler
    seed: int
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dealreg-load-")))
    partners: list[data.Partner] = field(default_factory=list)
    _pool: asyncpg.Pool | None = None

    def __post_init__(self) -> None:
        self.partners = data.partners(self.seed, self.profile.partners)
        self.settle_budget_left = self.profile.settle_budget_s

    @property
    def registrations_url(self) -> str:
        return f"{self.stack.services['registration'].url}/v1/registrations"

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await db.create_pool(self.stack.database_url, min_size=1, max_size=4)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    async def program(self, label: str) -> tuple[str, list[str]]:
        """A fresh program for one measurement, its partners enrolled; (program id, partner tokens)."""
        program_id = f"bench-{label}"
        await seed.enrol(self.stack.services["registration"].url, self.stack.signing_key, program_id, self.partners)
        return program_id, seed.partner_tokens(self.stack.signing_key, program_id, self.partners)

    async def load(self, tokens: list[str], label: str, **spec: object) -> LoadResult:
        """Run the load generator in its own process and return what it measured."""
        load_spec = LoadSpec(url=self.registrations_url, tokens=tokens, seed=self.seed, label=label, **spec)
        spec_path, out_path = self.workdir / f"{label}.spec.json", self.workdir / f"{label}.out.json"
        spec_path.write_bytes(msgspec.json.encode(load_spec))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.loadgen", str(spec_path), str(out_path), cwd=ROOT
        )
        if await process.wait() != 0:
            raise RuntimeError(f"the load generator failed on {label} (exit {process.returncode})")
        return msgspec.json.decode(out_path.read_bytes(), type=LoadResult)

    async def pipeline_backlog(self) -> int:
        """Messages not yet consumed by either service, plus events not yet relayed to NATS."""
        jsm = self.nc.jetstream()
        pending = 0
        for stream, durable in CONSUMERS:
            try:
                info = await jsm.consumer_info(stream, durable)
            except NotFoundError:
                continue
            pending += (info.num_pending or 0) + (info.num_ack_pending or 0)
        pool = await self.pool()
        pending += await pool.fetchval(
            "SELECT (SELECT count(*) FROM registration.outbox) + (SELECT count(*) FROM conflict.outbox)"
        )
        return pending

    async def settle(self, cap_s: float | None = None) -> float | None:
        """Wait until the pipeline is idle; seconds waited, or None when the cap (or what is left of the
        run's whole settling budget) ran out first: the next phase then starts on a busy pipeline."""
        cap = min(self.profile.settle_cap_s if cap_s is None else cap_s, self.settle_budget_left)
        started = time.monotonic()
        try:
            while (backlog := await self.pipeline_backlog()) > 0:
                if time.monotonic() - started > cap:
                    say(f"pipeline still has {backlog} messages after {cap:.0f}s; going on")
                    return None
                await asyncio.sleep(0.25)
            return round(time.monotonic() - started, 2)
        finally:
            self.settle_budget_left -= time.monotonic() - started
