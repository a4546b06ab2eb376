"""Ids in time order, and ids derived from their cause's."""

from __future__ import annotations

import time
import uuid

from services.ids import derived_id, new_id

NS = uuid.UUID("c6f1d7a4-51a3-4f0e-8f53-3e2f4a9d7b21")


def test_new_ids_are_version_7_and_sort_by_the_time_they_were_made():
    first = new_id()
    time.sleep(0.002)
    later = [new_id() for _ in range(3)]
    assert {i.version for i in (first, *later)} == {7}
    assert all(first < i for i in later)
    assert len({first, *later}) == 4


def test_an_id_derived_from_a_cause_in_time_order_keeps_its_time_and_is_the_same_every_time():
    cause = str(new_id())
    made = derived_id(NS, cause, f"{cause}#0")
    assert made == derived_id(NS, cause, f"{cause}#0")  # a replay makes the same
    assert made != derived_id(NS, cause, f"{cause}#1")
    assert made.version == 8 and made.variant == uuid.RFC_4122
    assert made.int >> 80 == uuid.UUID(cause).int >> 80  # the cause's 48 bits of time
    again = derived_id(NS, str(made), str(made))  # derived from a derived id: the same time still
    assert again.version == 8 and again.int >> 80 == made.int >> 80


def test_an_id_derived_from_any_other_cause_is_the_plain_name_based_one():
    """Ids derived before ids were made in time order stay as they were (a replay of an older log,
    or a redelivery across an upgrade, makes the same)."""
    for cause in (str(uuid.uuid4()), str(uuid.uuid5(NS, "x")), "timer-42"):
        assert derived_id(NS, cause, f"{cause}#0") == uuid.uuid5(NS, f"{cause}#0")


def test_ids_derived_from_causes_in_time_order_stay_the_ones_already_in_logs():
    """The ids a log holds were made by this function: a replay, or a redelivered fact, must make
    the same ones, so the function may change only in how fast it makes them."""
    v7, v8 = "0192f7a8-3b4c-7d5e-8f60-718293a4b5c6", "0192f7a8-3b4c-8d5e-8f60-718293a4b5c6"
    assert str(derived_id(NS, v7, f"{v7}#0")) == "0192f7a8-3b4c-8d09-b134-b7baa875d754"
    assert str(derived_id(NS, v8, f"{v8}#0")) == "0192f7a8-3b4c-86c6-bd24-e378449aa6f7"
    assert str(derived_id(NS, v7, "ü")) == "0192f7a8-3b4c-8090-8e5c-6d7229d5000d"
