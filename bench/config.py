"""How long and how big each measurement is: the full run (<= 25 minutes) and the quick smoke run."""

from __future__ import annotations

from dataclasses import dataclass, replace

SEED = 20240607


@dataclass(frozen=True)
class Profile:
    name: str
    partners: int = 40
    burst_s: float = 30.0
    burst_concurrency: int = 64
    drain_cap_s: float = 180.0  # give up waiting for the burst's decisions after this long
    settle_cap_s: float = 120.0  # the pipeline must be idle before each phase; wait at most this,
    settle_budget_s: float = 420.0  # and at most this much in all, so a slow pipeline cannot overrun the run
    step_s: float = 20.0
    # finer (10%) around this host's capacity, where the sustained rate is read off
    step_rates: tuple[int, ...] = (
        25,
        50,
        100,
        150,
        200,
        250,
        300,
        350,
        400,
        500,
        600,
        800,
        900,
        1000,
        1100,
        1250,
        1500,
        2000,
        3000,
    )
    max_steps: int = 6
    keep_up_lag_s: float = 5.0  # a step keeps up when its last registration is decided within this
    latency_rates: tuple[int, ...] = (250, 500, 1000, 2000)
    latency_s: float = 20.0
    grace_s: float = 10.0  # an open loop abandons what is unanswered this long after its last due time
    e2e_rate: int = 500
    e2e_s: float = 30.0
    e2e_cap_s: float = 150.0
    detect_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    detect_probes: int = 1000
    detect_cap_s: float = 90.0  # probing one size stops after this long (the count probed is reported)
    peer_s: float = 8.0  # each of 4 alternated rounds per side
    peer_writers: int = 16
    decide_count: int = 5000  # submissions the decision engine decides alone
    decide_cap_s: float = 90.0
    # WAL written (and its segments recycled) before the run: about what the pipeline phases write
    recycled_wal_gb: float = 2.5

    def scaled(self, factor: float) -> Profile:
        """Every duration and size times `factor` (a smoke test of the harness itself uses 0.1 or so)."""
        if factor == 1.0:
            return self
        seconds = {
            name: max(1.0, getattr(self, name) * factor)
            for name in (
                "burst_s",
                "drain_cap_s",
                "settle_cap_s",
                "settle_budget_s",
                "step_s",
                "latency_s",
                "grace_s",
                "e2e_s",
                "e2e_cap_s",
                "peer_s",
                "decide_cap_s",
            )
        }
        return replace(
            self,
            **seconds,
            max_steps=max(1, round(self.max_steps * min(factor, 1.0))),
            detect_sizes=tuple(max(500, int(n * factor)) for n in self.detect_sizes),
            detect_probes=max(50, int(self.detect_probes * factor)),
            decide_count=max(200, int(self.decide_count * factor)),
            partners=max(8, int(self.partners * min(factor, 1))),
            recycled_wal_gb=self.recycled_wal_gb * factor,
        )


FULL = Profile("full")
QUICK = Profile(
    "quick",
    partners=20,
    burst_s=5.0,
    drain_cap_s=45.0,
    settle_cap_s=30.0,
    settle_budget_s=60.0,
    step_s=5.0,
    max_steps=3,
    keep_up_lag_s=3.0,
    latency_s=3.0,
    grace_s=3.0,
    e2e_s=5.0,
    e2e_cap_s=20.0,
    detect_sizes=(10_000, 25_000),
    detect_probes=200,
    detect_cap_s=15.0,
    peer_s=3.0,
    decide_count=1000,
    decide_cap_s=30.0,
    recycled_wal_gb=0.25,
)
