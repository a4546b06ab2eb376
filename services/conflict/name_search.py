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
the list itself, about 20% more memory in all), by bisection otherwise. (Only lists of more than
4,096 names are held back: a lookup costs a few NumPy calls whatever the list's length.) Each
name's trigram count then gives its exact similarity. The result is the set of names whose
``similarity(name, probe) >= threshold``, as PostgreSQL computes it (float4), never fewer.

Names are only ever added (a name whose claims are gone finds no claim, which costs a lookup,
never a wrong answer), one run at a time as they are written, or all of a country's at once when a
process first reads them (`_grouped`). Pure: no I/O; ``services.conflict.name_index`` keeps these
in step with the database.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import numpy as np

from services.conflict.domain.identity import trigrams, word_trigrams, words

_EMPTY = np.empty(0, np.int32)
_MARGIN = 1e-6  # float4 rounds a ratio by less than this, relatively
_DENSE = 8  # a posting list holding more than 1/_DENSE of the names gets a table of them (`holds`)
_HELD_FROM = 4096  # the entries from which a long posting list is held back rather than counted
_GROUPED = 2_000  # names added at once from which their trigrams are grouped with NumPy (`_grouped`)
# ... a part of this many at a time: the grouping's arrays (a few MB) are then taken again from what
# the part before freed, not fresh from the system (a new process reading 280,000 names: 1.1 to 1.7 s
# -> 0.56 to 0.83 s), and the result is the same
_GROUPED_PART = 32_768


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

    def extend(self, values: list[int] | np.ndarray) -> None:
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
        start = len(self.names)
        fresh: list[str] = []
        for name in names:
            if name not in self._number:
                self._number[name] = start + len(fresh)
                fresh.append(name)
        if not fresh:
            return
        self.names.extend(fresh)
        for at in range(0, len(fresh), _GROUPED_PART):
            part = fresh[at : at + _GROUPED_PART]
            counts, blocks = (_grouped if len(part) >= _GROUPED else _listed)(part, start + at)
            self._grams.extend(counts)
            for gram, numbers in blocks:
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
        # and of those, only the lists whose counting costs more than their lookups (a few NumPy
        # calls each, whatever the candidates): in a country of a few thousand names, none
        held = min(held, sum(p.size > _HELD_FROM for p in found))
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


def _listed(names: list[str], start: int) -> tuple[list[int], Iterable[tuple[str, list[int]]]]:
    """Each name's count of distinct trigrams, and each trigram's names (numbered from `start`, in order)."""
    blocks: dict[str, list[int]] = {}
    counts: list[int] = []
    for number, name in enumerate(names, start):
        grams = trigrams(name)
        counts.append(len(grams))
        for gram in grams:
            blocks.setdefault(gram, []).append(number)
    return counts, blocks.items()


def _grouped(names: list[str], start: int) -> tuple[np.ndarray, Iterable[tuple[str, np.ndarray]]]:
    """As `_listed`, for many names at once (a process reading a program's names after a start):
    each distinct word's trigrams are numbered once, and the (trigram, name) pairs of all the names
    sorted together, rather than appended one by one (280,000 names: about twice as fast)."""
    word_number: dict[str, int] = {}
    word_grams: list[frozenset[str]] = []
    name_words: list[int] = []
    word_counts: list[int] = []
    for name in names:
        found = words(name)
        for word in found:
            number = word_number.get(word)
            if number is None:
                number = word_number[word] = len(word_grams)
                word_grams.append(word_trigrams(word))
            name_words.append(number)
        word_counts.append(len(found))
    gram_number: dict[str, int] = {}
    sizes = np.fromiter(map(len, word_grams), np.int64, len(word_grams))
    first = np.zeros(len(word_grams) + 1, np.int64)
    np.cumsum(sizes, out=first[1:])
    # every word's trigram numbers, one word after the other
    word_gram_numbers = np.fromiter(
        (gram_number.setdefault(g, len(gram_number)) for grams in word_grams for g in grams), np.int64, int(first[-1])
    )
    # for each trigram of each word of each name, in order: where it is in `word_gram_numbers` (a run
    # of +1 steps from its word's first, made by one cumulative sum), and its name's number
    of_word = np.array(name_words, np.int64)
    lengths = sizes[of_word]
    steps = np.ones(int(lengths.sum()), np.int64)
    ends = np.cumsum(lengths)
    if len(steps):
        steps[0] = first[of_word[0]]
        steps[ends[:-1]] = first[of_word[1:]] - (first[of_word[:-1]] + lengths[:-1] - 1)
    pairs = word_gram_numbers[np.cumsum(steps, out=steps)]
    del steps
    pairs <<= 32  # a (trigram, name) pair as one int64: trigram << 32 | name
    pairs |= np.repeat(np.repeat(np.arange(start, start + len(names), dtype=np.int64), word_counts), lengths)
    pairs.sort()  # by trigram, then name; a trigram that two words of a name share: its pair twice, together
    pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))] if len(pairs) else pairs
    grams, numbers = pairs >> 32, (pairs & 0xFFFFFFFF).astype(np.int32)
    counts = np.bincount(numbers - start, minlength=len(names)).astype(np.int32)
    cuts = np.flatnonzero(grams[1:] != grams[:-1]) + 1
    bounds = [0, *cuts.tolist(), len(pairs)] if len(pairs) else []
    gram_of = list(gram_number)  # by number
    return counts, ((gram_of[int(grams[a])], numbers[a:b]) for a, b in itertools.pairwise(bounds))
