"""The CPU budget the benchmark report sets beside each throughput target: the host's cores over the
target's rate, and the CPU a registration took in the phase nearest to it."""

from __future__ import annotations

import pytest

from bench import report, report_md

pytestmark = pytest.mark.unit


def results(steps: list[dict]) -> dict:
    r = {
        "machine": {"cores": 2},
        "burst": {"accepted_per_s": 1000.0},
        "sustained": {"steps": steps},
        "resources": {"cores": {"burst": {"machine": 1.8}}},
    }
    r["resources"]["cpu_ms_per_registration"] = {
        "burst": {"machine": 2.5},
        "e2e": {"machine": 4.2},
        **{f"steady-{n} ({s['offered_per_s']:g}/s)": {"machine": s["ms"]} for n, s in enumerate(steps)},
    }
    return r


def test_each_target_gets_its_cores_over_its_rate_and_the_nearest_measured_cost():
    steps = [
        {"offered_per_s": 400, "keeps_up": True, "ms": 3.6},
        {"offered_per_s": 600, "keeps_up": True, "ms": 3.3},
        {"offered_per_s": 800, "keeps_up": False, "ms": 2.9},
    ]
    rows = {row["rate_per_s"]: row for row in report.cpu_budget(results(steps))}
    assert {rate: (row["budget_ms"], row["measured_ms"], row["within"]) for rate, row in rows.items()} == {
        2000: (1.0, 1.8, False),  # 1.8 cores busy at 1,000 accepted a second during the burst
        666.7: (3.0, 2.5, True),  # 60,000 in 90 s: the burst with its drain
        1000: (2.0, 3.3, False),  # the last step that kept up, not the one after it
        500: (4.0, 4.2, False),
    }
    assert rows[1000]["measured_in"] == "steady-1 (600/s), the last step kept up"
    markdown = report_md.render({"cpu_budget": report.cpu_budget(results(steps))})
    assert "| 1,000/s decided end to end, sustained | 1,000 | 2 | 3.3 | steady-1 (600/s)" in markdown


def test_a_target_with_nothing_measured_is_left_open():
    rows = report.cpu_budget(results([{"offered_per_s": 800, "keeps_up": False, "ms": 2.9}]))
    sustained = next(row for row in rows if row["rate_per_s"] == 1000)
    assert sustained["measured_ms"] is None and sustained["within"] is None
    assert report.cpu_budget({}) == []
