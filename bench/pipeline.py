"""The whole pipeline under load: the burst, the sustained rate, POST latency, and end to end.

Each measurement registers deals in a program of its own, so its decisions are told apart on
`dealreg.conflict.<program>.registration.>`, and starts only when the pipeline is idle.
"""

from __future__ import annotations

from bench import e2e_stages
from bench.decisions import DecisionWatcher
from bench.harness import Bench, say
from bench.loadgen import LoadResult
from bench.stats import summary


def _load_figures(result: LoadResult) -> dict:
    window = max(result.ended - result.started, 1e-9)
    return {
        "offered_per_s": result.rate or None,
        "sent": result.sent,
        "accepted": result.accepted,
        "accepted_per_s": round(result.accepted / window, 1),
        "statuses": result.statuses,
        "transport_failures": result.failures,
        "latency_ms": summary(result.latencies_ms),
        "service_time_ms": summary(result.service_ms),
        "loadgen_cpu_s": round(result.cpu_s, 2),
        "loadgen_cores": round(result.cpu_s / window, 3),
        "ran_out_of_bodies": result.ran_out,
    }


def _decision_lags(result: LoadResult, watcher: DecisionWatcher) -> list[float]:
    """Milliseconds from each POST's reply to its decision's arrival, for those decided."""
    return [(watcher.first[i] - replied) * 1000 for i, replied in result.ids if i in watcher.first]


async def burst(bench: Bench) -> dict:
    """As many registrations as the API accepts for `burst_s`, then the time until all are decided."""
    p = bench.profile
    program_id, tokens = await bench.program("burst")
    await bench.settle()
    say(f"burst: {p.burst_s:.0f}s closed loop, {p.burst_concurrency} connections")
    async with DecisionWatcher(bench.nc, program_id) as watcher:
        async with bench.sampler.phase("burst"), bench.profiler.record("burst"):
            result = await bench.load(
                tokens,
                "burst",
                mode="closed",
                duration=p.burst_s,
                concurrency=p.burst_concurrency,
                count=int(max(2000, p.burst_s * 5000)),
            )
        ids = [i for i, _ in result.ids]
        decided_in_burst = sum(1 for i in ids if watcher.first.get(i, float("inf")) <= result.ended)
        async with bench.sampler.phase("burst_drain"):
            await watcher.wait_for(ids, p.drain_cap_s)
        decided = [watcher.first[i] for i in ids if i in watcher.first]
    out = _load_figures(result)
    last = max(decided, default=result.ended)
    all_decided = len(decided) == len(ids)
    drain_s = round(last - result.ended, 2) if all_decided else None
    after = len(decided) - decided_in_burst
    rate_after = after / max(last - result.ended, 1e-9) if after else 0.0
    out.update(
        decided=len(decided),
        decided_during_burst=decided_in_burst,
        drain_s=drain_s,
        drain_capped=not all_decided,
        decide_rate_during_drain_per_s=round(rate_after, 1),
        drain_s_estimate=drain_s
        if all_decided
        else round((len(ids) - decided_in_burst) / rate_after, 1)
        if rate_after
        else None,
    )
    say(
        f"burst: {out['accepted_per_s']}/s accepted, drain {drain_s if all_decided else 'capped'} s "
        f"({out['decide_rate_during_drain_per_s']}/s decided meanwhile)"
    )
    return out


async def _step(bench: Bench, watcher: DecisionWatcher, tokens: list[str], label: str, rate: int) -> dict:
    p = bench.profile
    await bench.settle()
    async with bench.sampler.phase(label):
        result = await bench.load(
            tokens, label, mode="open", rate=rate, duration=p.step_s, grace=p.grace_s, count=int(rate * p.step_s)
        )
        ids = [i for i, _ in result.ids]
        lag = await watcher.wait_for(ids, p.keep_up_lag_s * 3)
    decided = [watcher.first[i] for i in ids if i in watcher.first]
    span = (max(decided) - min(decided)) if len(decided) > 1 else 0
    step = _load_figures(result)
    decided_per_s = round(len(decided) / span, 1) if span else 0.0
    # kept up: the API took the offered rate, decisions came as fast as registrations (so no queue
    # grew during the step), and the last one was decided soon after the step ended
    keeps_up = (
        lag is not None
        and lag <= p.keep_up_lag_s
        and result.accepted >= 0.95 * rate * p.step_s
        and decided_per_s >= 0.9 * step["accepted_per_s"]
    )
    step.update(
        decided=len(decided),
        decided_per_s=decided_per_s,
        lag_after_s=round(lag, 2) if lag is not None else None,
        e2e_ms=summary(_decision_lags(result, watcher)),
        keeps_up=bool(keeps_up),
    )
    say(
        f"steady {rate}/s: accepted {step['accepted_per_s']}/s, decided {step['decided_per_s']}/s, "
        f"keeps up: {step['keeps_up']}"
    )
    return step


async def sustained(bench: Bench, capacity_hint: float | None) -> dict:
    """Raise the offered rate step by step until decisions no longer keep up (starting from half the
    burst's decision rate); when the first step already lags, step down until one keeps up."""
    p = bench.profile
    program_id, tokens = await bench.program("steady")
    ladder = list(p.step_rates)
    floor = 0.5 * capacity_hint if capacity_hint else 0
    i = next((n for n, r in enumerate(ladder) if r >= floor), len(ladder) - 1)
    going_down, steps = False, []
    async with DecisionWatcher(bench.nc, program_id) as watcher:
        while len(steps) < p.max_steps and 0 <= i < len(ladder):
            step = await _step(bench, watcher, tokens, f"steady-{len(steps)}", ladder[i])
            steps.append(step)
            if step["keeps_up"] and not going_down:
                i += 1
            elif step["keeps_up"] or any(s["keeps_up"] for s in steps):
                break
            else:
                going_down, i = True, i - 1
    kept = [s for s in steps if s["keeps_up"]]
    return {
        "steps": steps,
        "sustained_decided_per_s": max((s["decided_per_s"] for s in kept), default=None),
        "highest_offered_kept_up": max((s["offered_per_s"] for s in kept), default=None),
    }


async def latency(bench: Bench) -> dict:
    """POST latency at fixed offered loads, open loop, each in a program of its own."""
    p = bench.profile
    levels = {}
    for rate in p.latency_rates:
        _, tokens = await bench.program(f"lat-{rate}")
        settled = await bench.settle()
        label = f"latency-{rate}"
        async with bench.sampler.phase(label):
            result = await bench.load(
                tokens,
                label,
                mode="open",
                rate=rate,
                duration=p.latency_s,
                grace=p.grace_s,
                count=int(rate * p.latency_s),
            )
        levels[str(rate)] = {**_load_figures(result), "waited_for_idle_s": settled}
        lat = levels[str(rate)]["latency_ms"]
        say(
            f"latency {rate}/s: p50 {lat['p50']} ms, p99 {lat['p99']} ms, accepted {levels[str(rate)]['accepted_per_s']}/s"
        )
    return levels


async def end_to_end(bench: Bench) -> dict:
    """From each POST's reply to its decision CloudEvent, received by a JetStream consumer."""
    p = bench.profile
    program_id, tokens = await bench.program("e2e")
    await bench.settle()
    async with DecisionWatcher(bench.nc, program_id) as watcher:
        async with bench.sampler.phase("e2e"), bench.profiler.record("e2e"):
            result = await bench.load(
                tokens,
                "e2e",
                mode="open",
                rate=p.e2e_rate,
                duration=p.e2e_s,
                grace=p.grace_s,
                count=int(p.e2e_rate * p.e2e_s),
            )
            waited = await watcher.wait_for([i for i, _ in result.ids], p.e2e_cap_s)
        lags = _decision_lags(result, watcher)
        stages = await e2e_stages.measure(bench, program_id, result.ids, watcher)
    out = {
        **_load_figures(result),
        "e2e_ms": summary(lags),
        "stages_ms": stages,
        "undecided": result.accepted - len(lags),
        "waited_after_load_s": round(waited, 2) if waited is not None else None,
    }
    say(f"e2e at {p.e2e_rate}/s: p50 {out['e2e_ms']['p50']} ms, p99 {out['e2e_ms']['p99']} ms")
    return out
