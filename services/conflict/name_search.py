"""Which of a program's names in one country are similar to a probe: pg_trgm similarity, in memory.

The names are fewer than the claims (the benchmark's program of a million registrations names
70,000 to 280,000 distinct customers in a country), and pg_trgm's GIN index answers a probe made of
common words (``"... and sons"``, ``"... y asociados"``) by reading long posting lists and
re-computing ``similarity()`` for thousands of rows. Here each trigram's posting list is a NumPy
array of name numbers, in ascending order. A name reaching the threshold shares at least a known
number of the probe's trigrams; counting the probe's shorter lists over every name at once
(``bincount``) leaves the few names that can still reach it, and the longest lists (the common
words' trigrams, most of the work before) are only looked up for those: in a table of which names
hold the trigram when the list is long (over an eighth of the names: a byte a name, at most twice
the list itself, about 20% more memory in all), by bisection otherwise. Each name's trigram count
then gives its exact similarity. The result is the set of names whose
``similarity(name, probe) >= threshold``, as PostgreSQL computes it (float4), never fewer.

Names are only ever added (a name whose claims are gone finds no claim, which costs a lookup,
never a wrong answer). Pure: no I/O; ``services.conflict.name_index`` keeps these in step with
the database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from services.conflict.domain.identity import trigrams

_EMPTY = np.empty(0, np.int32)
_MARGIN = 1e-6  # float4 rounds a ratio by less than this, relatively
_DENSE = 8  # a posting list holding more than 1/_DENSE of the names gets a table of them (`holds`)


class _Growing:
    """An int32 array appended to in blocks, its capacity doubled as needed (amortized O(1))."""

    __slots__ = ("_holds", "_marked", "data", "size")

    def __init__(self) -> None:
        self.data = _EMPTY
        self.size = 0
        self._holds: np.ndarray | None = None  # a posting list's: which names it holds
        self._marked = 0  # of its entries, how many `_holds` has

    def holds(self, names: int) -> np.ndarray | None:
        """For a posting list longer than an eighth of the program's `names`: a bool per name, True
        for those in the list (at least `names` long), kept up to date as the list grows."""
        if self.size * _DENSE <= names:
            return None
        holds = self._holds
        if holds is None or len(holds) < names:
            grown = np.zeros(max(names, 2 * len(holds) if holds is not None else 0), np.bool_)
            if holds is not None:
                grown[: len(holds)] = holds
            self._holds = holds = grown
        if self._marked < self.size:
            holds[self.data[self._marked : self.size]] = True
            self._marked = self.size
        return holds

    def extend(self, values: list[int]) -> None:
        need = self.size + len(values)
        if need > len(self.data):
            grown = np.empty(max(need, 2 * len(self.data), 8), np.int32)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        if len(values) == 1:  # most often (a name or two at a time): an item set costs a tenth of a slice's
            self.data[self.size] = values[0]
        else:
            self.data[self.size : need] = values
        self.size = need

    def view(self) -> np.ndarray:
        return self.data[: self.size]


class NameSearch:
    """The distinct names of one program in one country, searchable by trigram similarity."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._number: dict[str, int] = {}
        self._grams = _Growing()  # per name: how many distinct trigrams it has
        self._postings: dict[str, _Growing] = {}

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: str) -> bool:
        return name in self._number

    def among_first(self, name: str, count: int) -> bool:
        """Whether `name` is one of the first `count` names added: one that a search made while the
        search held `count` names looked at (names are only ever added, in order)."""
        number = self._number.get(name)
        return number is not None and number < count

    def add(self, names: Iterable[str]) -> None:
        """Add names not yet known (a known one is skipped)."""
        blocks: dict[str, list[int]] = {}
        counts: list[int] = []
        for name in names:
            if name in self._number:
                continue
            number = self._number[name] = len(self.names)
            self.names.append(name)
            grams = trigrams(name)
            counts.append(len(grams))
            for gram in grams:
                blocks.setdefault(gram, []).append(number)
        if not counts:
            return
        self._grams.extend(counts)
        for gram, numbers in blocks.items():
            posting = self._postings.get(gram)
            if posting is None:
                posting = self._postings[gram] = _Growing()
            posting.extend(numbers)

    def similar(self, probe: str, threshold: float) -> list[str]:
        """The names whose pg_trgm similarity to `probe` is at least `threshold` (and above 0)."""
        grams = trigrams(probe)
        found = sorted((p for gram in grams if (p := self._postings.get(gram)) is not None), key=lambda p: p.size)
        lists = [p.view() for p in found]
        # s shared of a name's g trigrams give s / (n + g - s) <= s / n: a name reaches the threshold
        # only if it shares at least threshold * n of the probe's n (less a float4 rounding's margin).
        # Only those are scored, not every name of the country.
        need = max(1, math.ceil(threshold * len(grams) * (1 - _MARGIN)))
        if need > len(lists):
            return []
        # The longest lists (common words: "and", "group") are held back: a name reaching `need`
        # shares at least `need - held` of the others, so those are counted for every name, and the
        # held-back lists are then looked up for the few names that reach that, never read whole
        # (every list with a table of its names, up to half of `need`).
        total = len(self.names)
        tables = [p.holds(total) for p in found]
        dense = sum(t is not None for t in tables)
        held = min(max(need // 3, min(dense, need // 2)), len(lists) - 1)
        counted = len(lists) - held
        counts = np.bincount(np.concatenate(lists[:counted]), minlength=total)
        numbers = np.flatnonzero(counts >= need - held)
        shared = counts[numbers]
        for left, posting, table in zip(range(held - 1, -1, -1), lists[counted:], tables[counted:], strict=True):
            if table is not None:
                shared += table[numbers]
            else:
                at = np.minimum(np.searchsorted(posting, numbers), len(posting) - 1)
                shared += posting[at] == numbers
            reachable = shared + left >= need  # with every list still to search
            numbers, shared = numbers[reachable], shared[reachable]
        union = np.float32(len(grams)) + self._grams.view()[numbers] - shared
        # as PostgreSQL: the ratio in float4, compared with the threshold in float8
        score = (shared.astype(np.float32) / union.astype(np.float32)).astype(np.float64)
        return [self.names[i] for i in numbers[score >= threshold]]
