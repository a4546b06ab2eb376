"""The in-memory name search finds exactly the names whose pg_trgm similarity reaches the threshold.

Checked against the pure `trigram_similarity` (itself checked against PostgreSQL in
tests/integration/test_identity_matching.py) over names from a small vocabulary, so that many
share words and trigrams, added in batches of every size so that the posting lists grow many times.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from services.conflict.domain.identity import normalize_name, trigram_similarity
from services.conflict.name_search import NameSearch

WORDS = (
    "smith smyth johnson miller muller mueller schmidt garcia garza and y asociados sons et co logistics systems"
    " pharma 3m x ab o'neil zürich"
).split()


def random_name(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.choice((1, 1, 2, 3, 4)))]
    if rng.random() < 0.2:
        w = rng.randrange(len(words))
        i = rng.randrange(len(words[w]))
        words[w] = words[w][:i] + rng.choice("aeiourst") + words[w][i + 1 :]
    return normalize_name(" ".join(words))


def brute_force(names: list[str], probe: str, threshold: float) -> set[str]:
    return {n for n in names if (s := trigram_similarity(n, probe)) > 0 and s >= threshold}


@pytest.fixture(params=["held back from their default length", "held back at any length"])
def held_from(request, monkeypatch):
    """The search as it is, and with every long list held back however short (in a program of
    these tests' size, none would be): both paths find exactly the same names."""
    from services.conflict import name_search

    if request.param == "held back at any length":
        monkeypatch.setattr(name_search, "_HELD_FROM", 0)


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5, 0.6, 0.75, 0.9, 1.0])
def test_finds_exactly_the_similar_names_as_names_arrive(threshold, held_from):
    rng = random.Random(threshold)
    search, added = NameSearch(), []
    for batch in (1, 1, 7, 50, 1, 300, 2, 900):
        names = [random_name(rng) for _ in range(batch)]
        search.add(names)
        added += names
        for _ in range(40):
            probe = random_name(rng) if rng.random() < 0.7 else rng.choice(added)
            assert set(search.similar(probe, threshold)) == brute_force(added, probe, threshold), probe
    assert len(search) == len(set(added))


@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.8])
def test_long_names_are_found_exactly_through_their_rarest_trigrams(threshold, held_from):
    """Names of many words: most of a probe's trigrams are only searched for the names its rarest
    ones bring, and a name too short or too long to reach the threshold is never scored."""
    rng = random.Random(f"long/{threshold}")
    search, added = NameSearch(), []
    for _ in range(6):
        names = [" ".join(random_name(rng) for _ in range(rng.choice((1, 2, 3)))) for _ in range(200)]
        search.add(names)
        added += names
        for _ in range(40):
            probe = rng.choice(added) if rng.random() < 0.5 else f"{rng.choice(added)} {random_name(rng)}"
            assert set(search.similar(probe, threshold)) == brute_force(added, probe, threshold), probe


def test_a_known_name_is_kept_once():
    search = NameSearch()
    search.add(["acme", "acme", "globex"])
    search.add(["acme"])
    assert len(search) == 2 and "acme" in search
    assert search.similar("acme", 1.0) == ["acme"]


def test_names_without_trigrams_match_nothing():
    search = NameSearch()
    search.add(["", "\u6771\u4eac", "acme"])  # no ASCII letters or digits: no trigrams under LC_CTYPE C
    assert search.similar("\u6771\u4eac", 0.0) == []
    assert search.similar("", 0.1) == []
    assert search.similar("acme", 0.0) == ["acme"]
    assert NameSearch().similar("acme", 0.5) == []


def test_a_name_whose_float4_score_rounds_up_to_the_threshold_is_found():
    """3 of 7 trigrams: 3/7 rounds up in float4, so a threshold of float4(3/7) is reached although
    3 < threshold * 7; the count of shared trigrams a name needs leaves room for that rounding."""
    threshold = float(np.float32(3 / 7))
    assert 3 < threshold * 7 and trigram_similarity("ab", "ab cde") == threshold
    search = NameSearch()
    search.add(["ab", "cde"])
    assert search.similar("ab cde", threshold) == ["ab", "cde"]


def test_a_lower_threshold_lists_every_name_again_and_a_higher_one_still_finds_exactly(held_from):
    """One search asked at the threshold it was built for, then at a lower one (its names listed
    again under longer prefixes), with names added between, then at a higher one again."""
    rng = random.Random("thresholds")
    search, added = NameSearch(), []
    for threshold in (0.7, 0.4, 0.9, 0.2, 0.6):
        names = [random_name(rng) for _ in range(150)]
        search.add(names)
        added += names
        for _ in range(40):
            probe = random_name(rng) if rng.random() < 0.7 else rng.choice(added)
            assert set(search.similar(probe, threshold)) == brute_force(added, probe, threshold), probe


def test_a_name_that_arrived_is_scored_again_only_when_the_search_had_not_looked_at_it(monkeypatch):
    from services.conflict import name_index

    rng = random.Random(11)
    known = name_index._Known(database=1)
    first = [random_name(rng) for _ in range(400)]
    known.names.add(first)
    probe, threshold = random_name(rng), 0.3
    asked = set(known.names.similar(probe, threshold))
    searched = len(known.names)
    later = [random_name(rng) for _ in range(150)]
    known.names.add(later)
    # what a lock statement returns under load: the names this process wrote itself before the
    # search (known to it already), and names new to it
    arrived = first[-100:] + later
    scored: list[str] = []
    score = name_index._similar
    monkeypatch.setattr(name_index, "_similar", lambda n, p, t: scored.append(n) or score(n, p, t))

    extra = name_index._unasked_similar(known, searched, asked, arrived, probe, threshold)

    assert extra == [n for n in arrived if n not in asked and score(n, probe, threshold)]  # as scoring them all
    assert extra, "the vocabulary makes some of the later names similar"
    assert not {n for n in scored if known.names.among_first(n, searched)}  # looked at once, not twice
    assert len(scored) < len(arrived) - 50


def test_the_names_of_a_run_join_each_countrys_search_in_one_addition(monkeypatch):
    from services.conflict import name_index

    program = "prog-added-many"
    for country in ("US", "DE"):
        name_index._known[(program, country)] = name_index._Known(database=1)
    additions: list[list[str]] = []
    add = NameSearch.add

    def counted(self: NameSearch, names) -> None:
        names = list(names)
        additions.append(names)
        add(self, names)

    monkeypatch.setattr(NameSearch, "add", counted)
    try:
        name_index.added_many(
            [(program, country, f"acme {i}") for i, country in enumerate(["US", "DE"] * 5)]
            + [("a program never read here", "US", "acme")]
        )
        assert sorted(map(len, additions)) == [5, 5]
        assert name_index.known_names(program, "US") == name_index.known_names(program, "DE") == 5
        name_index.added(program, "US", "acme 0")  # known already: nothing new
        assert name_index.known_names(program, "US") == 5
    finally:
        name_index.forget(program)


@pytest.mark.parametrize("part", [None, 2_500], ids=["in one part", "in parts"])
def test_many_names_added_at_once_are_indexed_as_when_added_one_by_one(part, monkeypatch):
    """A process reading a program's names after a start adds them all at once (`_grouped`, a part
    at a time): the same trigrams, counts and numbers as names added one at a time, and searches
    find the same."""
    from services.conflict import name_search

    if part is not None:
        monkeypatch.setattr(name_search, "_GROUPED_PART", part)
    rng = random.Random("grouped")
    names = [random_name(rng) for _ in range(3 * name_search._GROUPED)]
    # words written in other cases, a word twice in one name, names with no trigram at all
    names += ["SMITH and Smith", "garcia garcia y garza", "", "\u6771\u4eac", "zürich 3m 3M", names[0]]
    one_by_one, at_once = NameSearch(), NameSearch()
    for name in names:
        one_by_one.add([name])
    at_once.add(names)

    assert at_once.names == one_by_one.names and len(at_once) == len(set(names))
    assert at_once._grams.view().tolist() == one_by_one._grams.view().tolist()
    assert at_once._postings.keys() == one_by_one._postings.keys()
    for gram, posting in one_by_one._postings.items():
        assert at_once._postings[gram].view().tolist() == posting.view().tolist(), gram
    # and it grows on from there, at once or one by one
    later = [random_name(rng) for _ in range(name_search._GROUPED)]
    at_once.add(later)
    for name in later:
        one_by_one.add([name])
    for _ in range(60):
        probe = random_name(rng) if rng.random() < 0.7 else rng.choice(names)
        assert sorted(at_once.similar(probe, 0.5)) == sorted(one_by_one.similar(probe, 0.5)), probe
        assert set(at_once.similar(probe, 0.5)) == brute_force(names + later, probe, 0.5), probe
