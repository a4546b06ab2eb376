"""`latest.md`: the same results as `latest.json`, as tables a person reads."""

from __future__ import annotations

from pathlib import Path

_P = ("p50", "p90", "p99", "p99.9")


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.3g}" if abs(value) < 10 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(head: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _pct(summary: dict | None) -> list:
    return [(summary or {}).get(p) for p in _P]


def _paced(pause_ms: float) -> str:
    return f"after {_fmt(pause_ms)} ms idle" if pause_ms else "back to back"


def render(r: dict) -> str:
    m, top = r.get("machine", {}), r.get("headline", {})
    durability = ", ".join(f"{k}={v}" for k, v in (r.get("durability") or {}).items())
    wal = r.get("wal_recycled")
    prepared = (
        f"Before the run, {_fmt(wal['gb_written'])} GB of WAL were written and checkpointed, leaving "
        f"{wal['segments_ready']} segments for reuse, as a server past its first checkpoints has "
        "(see `BenchStack.recycle_wal`). "
        if wal
        else ""
    )
    load = [" / ".join(f"{x:.2f}" for x in r.get(k) or ()) for k in ("loadavg_at_start", "loadavg_at_end")]
    out = [f"# dealreg benchmarks ({r.get('mode')} run, {r.get('finished_at')})", ""]
    out += [
        f"Machine: {m.get('cpu_model')}, {m.get('cores')} cores, {m.get('ram_gb')} GB RAM, {m.get('os')}; "
        f"Python {m.get('python')}, PostgreSQL {m.get('postgresql')}, {m.get('nats_server')}. "
        f"PostgreSQL durability: {durability}. {prepared}Load generator: {m.get('load_generator')}. "
        f"Seed {r.get('seed')}; run took {_fmt(r.get('duration_s'))} s. Host busy before the run: "
        f"{_fmt(r.get('host_busy_cores_before'))} cores; load average {load[0]} at the start, "
        f"{load[1]} at the end (the `machine` CPU column below counts every process on the "
        "host: what it shows beyond the stack and the load generator was taken by others).",
        "",
    ]
    if trips := m.get("round_trip_cpu"):
        out += [
            "CPU of one `SELECT 1` round trip to PostgreSQL on this host (client process / server backend): "
            + "; ".join(f"{_paced(t['pause_ms'])} {_fmt(t['client_us'])} / {_fmt(t['backend_us'])} us" for t in trips)
            + ". A wake-up from idle costs both sides CPU, so a registration's CPU falls as batches grow with the load.",
            "",
        ]
    out += ["## Targets (issue 7)", ""]
    out += _table(["target", "measured", "met"], [[t["target"], t["value"], t["met"]] for t in r.get("targets", [])])
    out += [
        "## Headline",
        "",
        *_table(["figure", "value"], [[k, v] for k, v in top.items() if not isinstance(v, dict)]),
    ]
    if b := r.get("burst"):
        out += ["## Burst (closed loop)", ""]
        out += _table(
            [
                "accepted/s",
                "accepted",
                "drain s",
                "decided/s while draining",
                *[f"POST {p} ms" for p in _P],
                "loadgen cores",
            ],
            [
                [
                    b["accepted_per_s"],
                    b["accepted"],
                    b["drain_s"] if b["drain_s"] is not None else f"> cap (est. {_fmt(b['drain_s_estimate'])})",
                    b["decide_rate_during_drain_per_s"],
                    *_pct(b["latency_ms"]),
                    b["loadgen_cores"],
                ]
            ],
        )
    if s := r.get("sustained"):
        out += ["## Sustained: offered rate raised step by step", ""]
        out += _table(
            ["offered/s", "accepted/s", "decided/s", "lag after s", "e2e p50 ms", "e2e p99 ms", "keeps up"],
            [
                [
                    x["offered_per_s"],
                    x["accepted_per_s"],
                    x["decided_per_s"],
                    x["lag_after_s"],
                    x["e2e_ms"]["p50"],
                    x["e2e_ms"]["p99"],
                    x["keeps_up"],
                ]
                for x in s["steps"]
            ],
        )
    if lat := r.get("latency"):
        out += ["## POST latency at fixed offered loads (open loop, from the scheduled send time)", ""]
        out += _table(
            ["offered/s", "accepted/s", *[f"{p} ms" for p in _P], "service p99 ms", "non-201", "loadgen cores"],
            [
                [
                    float(k),
                    v["accepted_per_s"],
                    *_pct(v["latency_ms"]),
                    v["service_time_ms"]["p99"],
                    v["sent"] - v["accepted"],
                    v["loadgen_cores"],
                ]
                for k, v in lat.items()
            ],
        )
    if e := r.get("e2e"):
        out += ["## End to end: POST reply to decision CloudEvent on JetStream", ""]
        out += _table(
            ["offered/s", "accepted/s", *[f"{p} ms" for p in _P], "undecided"],
            [[e["offered_per_s"], e["accepted_per_s"], *_pct(e["e2e_ms"]), e["undecided"]]],
        )
        if stages := e.get("stages_ms"):
            out += [
                "Where the time goes (`bench/e2e_stages.py`): `published`, reply to the submitted event stored in"
                " JetStream; `queued_and_decided`, to the conflict service writing the decision; `committed_and_published`,"
                " to the decision stored in JetStream; `delivered`, to the consumer receiving it.",
                "",
            ]
            out += _table(["stage", *[f"{p} ms" for p in _P]], [[name, *_pct(v)] for name, v in stages.items()])
    if d := r.get("detection"):
        out += ["## Collision detection (`claims_repo.rivals`) against program size", ""]
        out += [
            "Probed after `pg_prewarm` read the program's claims and indexes into PostgreSQL's cache; `cold`:"
            " other probes of the same kinds just after the bulk load; `first after a restart`: one probe in the"
            " program's largest country by a process that knows none of its names yet, which reads them all first.",
            "",
        ]
        out += _table(
            ["registrations", *[f"{p} ms" for p in _P], "cold p99 ms", "first after a restart ms", "names it read",
             "probes with rivals", "seeded in s"],
            [
                [int(k), *_pct(v["latency_ms"]), v.get("cold_latency_ms", {}).get("p99"),
                 v.get("first_search_after_restart_ms"), v.get("names_read_by_it"), v["probes_with_rivals"], v["seed_s"]]
                for k, v in d.items()
            ],
        )  # fmt: skip
    if rp := r.get("replay"):
        out += [
            "## Replay",
            "",
            f"{_fmt(rp['events'])} events in {_fmt(rp['seconds'])} s: "
            f"**{_fmt(rp['events_per_s'])} events/s** ({rp['how']}).",
            "",
        ]
    if de := r.get("decide"):
        out += [
            "## The decision engine alone (one program, no HTTP, services stopped)",
            "",
            f"{_fmt(de['decided'])} of {_fmt(de['submissions'])} submissions decided in {_fmt(de['seconds'])} s:"
            f" **{_fmt(de['decided_per_s'])} /s**, {_fmt(de['consumer_cpu_ms_per_decision'])} ms of the"
            f" consumer's CPU each; outcomes {de['outcomes']}. Statements sent:",
            "",
        ]
        out += _table(
            ["statement", "calls per decision", "mean ms (round trip)"],
            [[f"`{q['statement'][:70]}`", q["per_decision"], q["mean_ms"]] for q in de["statements"]],
        )
    if p := r.get("peers"):
        out += ["## Peers on the same server (one event per transaction, TCP)", ""]
        rows = [
            [name, v.get("tps", v.get("appends_per_s")), *_pct(v.get("latency_ms"))]
            for name, v in p.items()
            if isinstance(v, dict)
        ]
        out += _table(["who", "per second", *[f"{q} ms" for q in _P]], rows)
        if p.get("ratio_by_round"):
            out += [
                f"Ours against `eventsourcing`, rounds run back to back: {p['ratio_by_round']}"
                f" (median **{p['ratio_median']}**).",
                "",
            ]
    if res := r.get("resources"):
        out += ["## Peak RSS (MB) and CPU (cores) per phase", ""]
        names = sorted({k for v in res["cores"].values() for k in v})
        out += _table(
            ["phase", "RSS registration", "RSS conflict", *[f"CPU {n}" for n in names]],
            [
                [
                    ph,
                    res["peak_mb"].get(ph, {}).get("registration"),
                    res["peak_mb"].get(ph, {}).get("conflict"),
                    *[c.get(n) for n in names],
                ]
                for ph, c in res["cores"].items()
            ],
        )
    if per := (r.get("resources") or {}).get("cpu_ms_per_registration"):
        out += ["## CPU per registration (ms), decisions included", ""]
        names = sorted({k for v in per.values() for k in v})
        out += _table(["phase", *names], [[ph, *[v.get(n) for n in names]] for ph, v in per.items()])
        out += [
            "Each part's CPU time over the phase (and the burst's drain) divided by the registrations"
            " accepted; `machine` counts every process on the host, the load generator included.",
            "",
        ]
    if budget := r.get("cpu_budget"):
        out += ["## What the throughput targets leave a registration (ms of the host's CPU)", ""]
        out += _table(
            ["target", "rate /s", "budget ms", "measured ms", "measured in", "within"],
            [
                [b["target"], b["rate_per_s"], b["budget_ms"], b["measured_ms"], b["measured_in"],
                 {True: "yes", False: "no", None: "n/a"}[b["within"]]]
                for b in budget
            ],
        )  # fmt: skip
        out += [
            "The budget is the host's cores over the rate: all the CPU one registration may take, its"
            " decision, the load generator and PostgreSQL included, for the host to keep up at all.",
            "",
        ]
    if waits := (r.get("resources") or {}).get("pg_waits"):
        out += ["## PostgreSQL client backends by wait event (average number busy in each)", ""]
        rates = r["resources"].get("pg_rates", {})
        out += _table(
            ["phase", "transactions/s", "rows inserted/s", "top waits"],
            [
                [
                    ph,
                    rates.get(ph, {}).get("transactions_per_s"),
                    rates.get(ph, {}).get("rows_inserted_per_s"),
                    "; ".join(f"{k}: {v}" for k, v in list(w.items())[:5]),
                ]
                for ph, w in waits.items()
            ],
        )
    for phase, procs in (r.get("hotspots") or {}).items():
        for proc, h in procs.items():
            out += [f"## Hot spots: {proc} during {phase} (py-spy, {h['samples']} samples, self %)", ""]
            out += _table(["function", "self %"], h["self_pct"][:12])
    return "\n".join(out)


def write(results: dict, out_dir: Path) -> Path:
    path = out_dir / "latest.md"
    path.write_text(render(results) + "\n")
    return path
