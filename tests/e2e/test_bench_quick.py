"""`python -m bench.run --quick` runs every phase end to end and writes its files (no timings checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HEADLINE = (
    "burst_accepted_per_s",
    "burst_drain_s",
    "sustained_decided_per_s",
    "reg_p99_ms_at_1000",
    "e2e_p50_ms_at_500",
    "e2e_p99_ms_at_500",
    "detect_p99_ms_at_100k",
    "detect_p99_ms_at_1m",
    "replay_events_per_s",
    "rss_mb_registration",
    "rss_mb_conflict",
    "pg_insert_tps_16",
    "eventsourcing_appends_per_s",
    "ratio_vs_eventsourcing",
)
PHASES = ("burst", "sustained", "latency", "e2e", "peers", "detection", "replay", "decide")


@pytest.mark.timeout(600)
def test_quick_mode_writes_results_markdown_and_plots(tmp_path: Path) -> None:
    for module in ("matplotlib", "eventsourcing", "psycopg", "faker"):
        pytest.importorskip(module, reason="the bench extra is not installed (pip install -e '.[bench]')")
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--scale", "0.25", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    results = json.loads((out / "latest.json").read_text())
    assert not results.get("errors"), results.get("errors")
    assert set(HEADLINE) <= set(results)
    assert {"cpu_model", "cores", "ram_gb", "python", "postgresql", "nats_server"} <= set(results["machine"])
    trips = results["machine"]["round_trip_cpu"]
    assert [t["pause_ms"] for t in trips] == [0.0, 2.0, 10.0] and all(t["client_us"] > 0 for t in trips)
    assert results["durability"]["fsync"] == "on" and results["durability"]["synchronous_commit"] == "on"
    assert results["durability"]["checkpoint_timeout"] == "15min"
    assert results["wal_recycled"]["segments_ready"] >= 3  # 64 MB written: 4 segments, less the current one
    for phase in PHASES:
        assert results[phase], phase
    stages = results["e2e"]["stages_ms"]
    assert list(stages) == ["published", "queued_and_decided", "committed_and_published", "delivered"]
    assert all(s["n"] > 0 for s in stages.values()), stages
    for figure in (results["latency"]["250"]["latency_ms"], results["e2e"]["e2e_ms"]):
        assert {"p50", "p90", "p99", "p99.9"} <= set(figure)
    assert results["burst_accepted_per_s"] > 0 and results["replay_events_per_s"] > 0
    assert results["decide"]["decided"] == results["decide"]["submissions"]
    per_registration = results["resources"]["cpu_ms_per_registration"]
    assert {"burst", "e2e"} <= set(per_registration), per_registration
    assert all(per_registration[p]["registration"] > 0 and per_registration[p]["machine"] > 0 for p in ("burst", "e2e"))
    assert results["cpu_ms_per_registration_at_500"] == per_registration["e2e"]["machine"]
    markdown = (out / "latest.md").read_text()
    assert markdown.startswith("# dealreg benchmarks") and "## Targets" in markdown
    assert "round trip to PostgreSQL on this host" in markdown
    assert "segments for reuse" in markdown
    assert "Where the time goes" in markdown
    assert [b["rate_per_s"] for b in results["cpu_budget"]] == [2000, 666.7, 1000, 500]
    assert "## What the throughput targets leave a registration" in markdown
    for plot in ("latency.png", "detection.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot
