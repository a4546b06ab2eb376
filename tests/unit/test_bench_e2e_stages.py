"""The end-to-end stages split each registration's time between the moments known of it."""

from __future__ import annotations

from bench.e2e_stages import STAGES, stages


def test_each_stage_is_the_time_between_two_moments_of_the_same_registration():
    replied = {"a": 10.000, "b": 20.000, "c": 30.000}
    submitted = {"a": 10.002, "b": 19.999, "c": 30.001}  # b's relay beat its reply
    written = {"a": 10.020, "b": 20.030}  # c not decided yet: left out of every stage
    stored = {"a": 10.024, "b": 20.031}
    received = {"a": 10.025, "b": 20.035}
    out = stages(replied, submitted, written, stored, received)
    assert tuple(out) == STAGES
    assert {name: s["n"] for name, s in out.items()} == dict.fromkeys(STAGES, 2)
    extremes = {name: (round(s["mean"] - (s["max"] - s["mean"]), 3), s["max"]) for name, s in out.items()}
    assert extremes == {
        "published": (-1.0, 2.0),
        "queued_and_decided": (18.0, 31.0),
        "committed_and_published": (1.0, 4.0),
        "delivered": (1.0, 4.0),
    }
    # the stages of one registration add up to its end-to-end time
    total = sum(out[name]["mean"] for name in STAGES)
    assert abs(total - ((25 + 35) / 2)) < 1e-6
