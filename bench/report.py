"""The results: `latest.json` (headline numbers at the top level, every detail below them), the
targets of issue 7 checked against them, and the plots. The Markdown lives in `report_md`."""

from __future__ import annotations

import json
import operator
from pathlib import Path

# (key, what it measures, comparison, bound); a bound given as a key is that figure times `factor`
TARGETS = (
    ("burst_accepted_per_s", "burst accepted /s (30 s)", ">=", 2000),
    ("burst_drain_s", "burst decided within (s)", "<=", 60),
    ("sustained_decided_per_s", "decided end to end /s, sustained", ">=", 1000),
    ("reg_p99_ms_at_1000", "POST p99 at 1,000/s (ms)", "<", 50),
    ("e2e_p50_ms_at_500", "end-to-end p50 at 500/s (ms)", "<", 20),
    ("e2e_p99_ms_at_500", "end-to-end p99 at 500/s (ms)", "<", 100),
    ("detect_p99_ms_at_1m", "detection p99 at 1M (ms)", "<", 5),
    ("detect_p99_ms_at_1m", "detection p99 at 1M vs 2x at 100k (ms)", "<=", ("detect_p99_ms_at_100k", 2)),
    ("replay_events_per_s", "replay events /s", ">=", 20000),
    ("rss_mb_registration", "registration RSS at steady load (MB)", "<", 200),
    ("rss_mb_conflict", "conflict RSS at steady load (MB)", "<", 200),
    ("ratio_vs_eventsourcing", "appends vs eventsourcing (16 writers)", ">=", 4),
)
_OPS = {">=": operator.ge, "<=": operator.le, "<": operator.lt}
STEADY_PHASES = ("latency-250", "latency-500", "latency-1000", "e2e")


def _get(d: dict, *path: str):
    for key in path:
        if not isinstance(d, dict) or d.get(key) is None:
            return None
        d = d[key]
    return d


def _ratio(a, b) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def headline(r: dict) -> dict:
    """The top-level numbers issue 7 asks for (None where a measurement did not run)."""
    detect = r.get("detection", {})
    peers = r.get("peers", {})
    ours = _get(peers, "ours_16", "appends_per_s")
    theirs = _get(peers, "eventsourcing_16", "appends_per_s")
    pg16 = _get(peers, "pgbench_16", "tps")
    out = {
        "burst_accepted_per_s": _get(r, "burst", "accepted_per_s"),
        "burst_drain_s": _get(r, "burst", "drain_s"),
        "burst_drain_s_estimate": _get(r, "burst", "drain_s_estimate"),
        "sustained_decided_per_s": _get(r, "sustained", "sustained_decided_per_s"),
        "reg_p99_ms_at_1000": _get(r, "latency", "1000", "latency_ms", "p99"),
        "e2e_p50_ms_at_500": _get(r, "e2e", "e2e_ms", "p50"),
        "e2e_p99_ms_at_500": _get(r, "e2e", "e2e_ms", "p99"),
        "detect_p99_ms_at_100k": _get(detect, "100000", "latency_ms", "p99"),
        "detect_p99_ms_at_1m": _get(detect, "1000000", "latency_ms", "p99"),
        "detect_p99_ms_by_size": {size: _get(v, "latency_ms", "p99") for size, v in detect.items()},
        "replay_events_per_s": _get(r, "replay", "events_per_s"),
        "decided_per_s_engine_alone": _get(r, "decide", "decided_per_s"),
        # every process on the host (the stack, the load generator, anything else) per registration
        "cpu_ms_per_registration_at_500": _get(r, "resources", "cpu_ms_per_registration", "e2e", "machine"),
        "rss_mb_registration": r.get("rss_steady_mb", {}).get("registration"),
        "rss_mb_conflict": r.get("rss_steady_mb", {}).get("conflict"),
        "pg_insert_tps_1": _get(peers, "pgbench_1", "tps"),
        "pg_insert_tps_16": pg16,
        "eventsourcing_appends_per_s": theirs,
        "our_appends_per_s": ours,
        # the median of rounds run back to back (`peers.ratio_by_round`); the means' ratio beside it
        "ratio_vs_eventsourcing": peers.get("ratio_median", _ratio(ours, theirs)),
        "ratio_of_mean_appends_vs_eventsourcing": _ratio(ours, theirs),
        "ratio_our_appends_vs_pg_insert_16": _ratio(ours, pg16),
        "ratio_burst_vs_pg_insert_16": _ratio(_get(r, "burst", "accepted_per_s"), pg16),
        "ratio_sustained_vs_pg_insert_16": _ratio(_get(r, "sustained", "sustained_decided_per_s"), pg16),
    }
    return out


def cpu_per_registration(r: dict) -> dict[str, dict[str, float]]:
    """CPU milliseconds each part of the stack spent per registration accepted, in the phases that
    wait for every decision: the burst with its drain, each sustained step, and e2e. Steadier from
    run to run than the rates on a shared host, so a change's cost shows in it."""
    cores, seconds = _get(r, "resources", "cores") or {}, _get(r, "resources", "seconds") or {}
    phases = {
        "burst": (["burst", "burst_drain"], _get(r, "burst", "accepted")),
        "e2e": (["e2e"], _get(r, "e2e", "accepted")),
    }
    for n, step in enumerate(_get(r, "sustained", "steps") or []):
        phases[f"steady-{n} ({step['offered_per_s']:g}/s)"] = ([f"steady-{n}"], step.get("accepted"))
    out = {}
    for name, (labels, accepted) in phases.items():
        if not accepted or not all(label in cores and label in seconds for label in labels):
            continue
        parts = sorted({k for label in labels for k in cores[label]})
        out[name] = {
            part: round(sum(cores[label].get(part, 0.0) * seconds[label] for label in labels) / accepted * 1000, 3)
            for part in parts
        }
    return out


def cpu_budget(r: dict) -> list[dict]:
    """What each throughput target leaves the host per registration (its cores over the rate: every
    process's CPU, the load generator's and the decisions' included), beside what a registration
    took in the phase that comes nearest: whether a target is in reach of the design or of tuning."""
    cores = _get(r, "machine", "cores")
    per = _get(r, "resources", "cpu_ms_per_registration") or {}
    if not cores:
        return []
    burst_cores = _get(r, "resources", "cores", "burst", "machine")
    accepted_per_s = _get(r, "burst", "accepted_per_s")
    during_burst = round(burst_cores / accepted_per_s * 1000, 3) if burst_cores and accepted_per_s else None
    kept_up = [
        (name, per[name]["machine"])
        for n, step in enumerate(_get(r, "sustained", "steps") or [])
        if step.get("keeps_up") and (name := f"steady-{n} ({step['offered_per_s']:g}/s)") in per
    ]
    steady = kept_up[-1] if kept_up else (None, None)
    rows = [
        ("2,000/s accepted during a 30 s burst", 2000, during_burst, "burst, while it lasts"),
        ("the burst's 60,000 decided within 60 s after it (90 s in all)", 60_000 / 90, _get(per, "burst", "machine"),
         "burst and its drain"),
        ("1,000/s decided end to end, sustained", 1000, steady[1], steady[0] and f"{steady[0]}, the last step kept up"),
        ("500/s end to end (at the budget, the host is busy all the time)", 500, _get(per, "e2e", "machine"), "e2e at 500/s"),
    ]  # fmt: skip
    return [
        {
            "target": what,
            "rate_per_s": round(rate, 1),
            "budget_ms": round(cores * 1000 / rate, 3),
            "measured_ms": measured,
            "measured_in": where,
            "within": None if measured is None else measured <= cores * 1000 / rate,
        }
        for what, rate, measured, where in rows
    ]


def check_targets(top: dict) -> list[dict]:
    rows = []
    for key, what, op, bound in TARGETS:
        value = top.get(key)
        if isinstance(bound, tuple):
            other = top.get(bound[0])
            bound = round(other * bound[1], 3) if other is not None else None
        met = None if value is None or bound is None else bool(_OPS[op](value, bound))
        rows.append({"key": key, "target": f"{what} {op} {bound}", "value": value, "met": met})
    return rows


def write_json(results: dict, out_dir: Path) -> Path:
    path = out_dir / "latest.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def plot(results: dict, out_dir: Path) -> list[Path]:
    """latency.png (POST latency percentiles against offered load) and detection.png (against size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    series = (("p50", "o-"), ("p90", "s-"), ("p99", "^-"), ("p99.9", "v-"))
    for name, data, xlabel, title, key, logx in (
        (
            "latency.png",
            results.get("latency", {}),
            "offered load (registrations/s)",
            "POST /v1/registrations latency (open loop)",
            "latency_ms",
            False,
        ),
        (
            "detection.png",
            results.get("detection", {}),
            "registrations in the program",
            "collision detection latency (claims_repo.rivals)",
            "latency_ms",
            True,
        ),
    ):
        if not data:
            continue
        xs = sorted(data, key=float)
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
        for p, style in series:
            ax.plot([float(x) for x in xs], [data[x][key][p] for x in xs], style, label=p)
        ax.set_yscale("log")
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("milliseconds (log)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / name)
        plt.close(fig)
        written.append(out_dir / name)
    return written
