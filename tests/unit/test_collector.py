"""A service process freezes what startup made and spaces the collector's passes out."""

from __future__ import annotations

import gc

import pytest

from services import collector

pytestmark = pytest.mark.unit


@pytest.fixture
def restored_collector():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tuning_freezes_what_exists_and_raises_the_thresholds(restored_collector):
    collector.tune_for_service()
    assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, collector.MIDDLE_THRESHOLD, collector.OLD_THRESHOLD)
    assert gc.get_freeze_count() > 0
    made_later = [[]]
    assert gc.is_tracked(made_later)  # what comes after is collected as before, only less often
