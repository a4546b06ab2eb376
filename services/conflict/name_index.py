"""Which claims of a program may name the same customer: the candidate query, and the names it is given.

Equal domain, DUNS or tax id come from b-tree indexes. Similar names come from memory
(``services.conflict.name_search``): each program's and country's distinct names, read once from
``conflict.claim_name_keys`` (kept by triggers on the claims, migrations 0006 and 0008), then
before each search only those that arrived since (once per transaction when it holds the program's
lock). `candidate_rows` reads those with the candidates of the names already known, in one round
trip, and asks again only for a new name that is similar too; `candidate_rows_many` does the same
for a batch of submissions, all of them in one round trip. The intake reads a batch's names in the
statement that takes the program's lock (`asking`, `arrived`), and then asks for its candidates
alone. The names found lead to their claims through a b-tree on (program_id, name_key, status); the
query is the SQL function ``conflict.candidate_claims`` (migration 0012), so that its plan is made
once per session, not once per call.

Nothing kept depends on the threshold, so a policy may change it at any time: no claim that the
pure rules would accept is missed. The searches are kept per process, for the database they were
read from (its oid is checked on every refresh, so a database created anew starts them afresh).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg
import msgspec

from services.conflict.domain.identity import trigram_similarity
from services.conflict.name_search import NameSearch
from services.eventlog.db import transaction_local

# $1 program, $2 own claim id, $3 statuses, $4 domain, $5 duns, $6 tax id, $7 country, $8 similar
# names, $9 products one of which a candidate holds (NULL: any): one bitmap scan over four small
# index reads, planned once per session (migration 0012).
CANDIDATES = "conflict.candidate_claims($1, $2, $3, $4, $5, $6, $7, $8, $9)"

# The database's oid, and the names of the program and country that arrived after $3, in order, as
# an array with the number of the last (nulls for none): a process's first read of a large
# program's country is all its names, and 280,000 of them arrive in half the time of as many rows.
# (The names' own numbers are not needed: see `_learn_names`; and asyncpg would ask the catalog
# for the type of a bigint[] on each connection's first.)
_ARRIVED = """
    SELECT (SELECT oid::int8 FROM pg_database WHERE datname = current_database()) AS database,
        max(k.seq) AS last, array_agg(k.name_key ORDER BY k.seq) AS names
    FROM conflict.claim_name_keys k WHERE k.program_id = $1 AND k.country = $2 AND k.seq > $3
"""
# The same for several countries of the program at once ($2, each since its own $3), as one row of
# arrays in (country, seq) order: the function the intake's lock statement calls too (migrations 0017, 0018).
_ARRIVED_MANY = (
    "SELECT database, countries, seqs, names FROM conflict.names_arrived($1, $2::text[], $3::bigint[], NULL)"
)
_COUNTRIES = "SELECT DISTINCT country FROM conflict.claim_name_keys WHERE program_id = $1 ORDER BY 1"


@dataclass
class _Known:
    database: int
    seq: int = 0
    names: NameSearch = field(default_factory=NameSearch)


_known: dict[tuple[str, str], _Known] = {}


async def similar_names(
    conn: asyncpg.Connection, program_id: str, country: str, name_key: str, threshold: float
) -> list[str]:
    """The program's names in `country` whose similarity to `name_key` reaches `threshold`.

    Sees every name committed before the call (and the caller's own): a program's names arrive
    under its lock, so their numbers grow in commit order within the program.
    """
    key = (program_id, country)
    read = _read_under_lock(conn, program_id)
    if read is not None and (known := read.get(key)) is not None and _known.get(key) is known:
        # read already in this transaction, which holds the program's lock: no name can have
        # arrived since but the transaction's own, which `added` put in
        return known.names.similar(name_key, threshold)
    while True:
        known = _known.get(key)
        since = known.seq if known is not None else 0
        row = await conn.fetchrow(_ARRIVED, program_id, country, since)
        database, known = row["database"], _known.get(key)
        if known is None or known.database != database:
            if since:  # numbers of another database: read this one's names from the start
                _known.pop(key, None)
                continue
            known = _known[key] = _Known(database)
        if known.seq >= since:
            break
        # (another call started the names afresh while this one read: read again)
    # no await from here on: what was read is applied in seq order, what is known already skipped
    _learn_names(known, row["names"] or [], row["last"])
    if read is not None:
        read[key] = known
    return known.names.similar(name_key, threshold)


async def read_arrived(conn: asyncpg.Connection, program_id: str, countries: Iterable[str]) -> None:
    """Under the program's lock: the names of `countries` that arrived since this process last read
    them, all in one round trip, so that the transaction's `similar_names` read none (a batch of
    submissions names a few countries, each one round trip before). Without the lock, nothing."""
    read = _read_under_lock(conn, program_id)
    if read is None:
        return
    keys = sorted({(program_id, c) for c in countries} - {k for k, v in read.items() if _known.get(k) is v})
    if len(keys) < 2:
        return  # `similar_names` reads one as cheaply
    asked = _asking(keys)
    row = await conn.fetchrow(_ARRIVED_MANY, program_id, asked.countries, asked.since)
    arrived = zip(row["countries"] or (), row["seqs"] or (), row["names"] or (), strict=True)
    _apply_arrived(read, asked, row["database"], list(arrived))


@dataclass(frozen=True, slots=True)
class Arrivals:
    """A read of the names that arrived in some countries of a program: since when for each, and
    what this process knew of each when it asked."""

    keys: list[tuple[str, str]]
    before: list[_Known | None]

    @property
    def countries(self) -> list[str]:
        return [country for _, country in self.keys]

    @property
    def since(self) -> list[int]:
        return [known.seq if known is not None else 0 for known in self.before]


def _asking(keys: list[tuple[str, str]]) -> Arrivals:
    return Arrivals(keys, [_known.get(key) for key in keys])


def asking(program_id: str, countries: Iterable[str]) -> Arrivals:
    """The read of the names that arrived in `countries` of the program, for a statement that takes
    the program's lock and then reads them (`conflict.names_arrived`, migrations 0017, 0018), whose
    answer `arrived` takes once the lock is held."""
    return _asking(sorted({(program_id, c) for c in countries}))


_json_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Prefetch:
    """Candidate queries for a statement that takes the program's lock and reads the names that
    arrived (`asking`), to run once the lock is held (`conflict.candidates_under_lock`, migration
    0019): each probe's arguments and name key (as `candidate_rows_many` takes them), asked with the
    names similar to it among those this process knew when the statement was sent."""

    program_id: str
    probes: list[tuple[list, str]]
    threshold: float
    columns: str
    known: list[_Known]
    names: list[list[str]]
    searched: list[int]  # how many names each probe's search looked at

    def sql_args(self) -> list:
        """$1 program, $2 statuses, $3 own claims, $4 domains, $5 DUNS, $6 tax ids, $7 countries,
        $8 each probe's names (a JSON array of arrays), $9 each probe's products (arrays or nulls)."""
        args = [a for a, _ in self.probes]
        return [
            self.program_id,
            args[0][2],
            [a[1] for a in args],
            [a[3] for a in args],
            [a[4] for a in args],
            [a[5] for a in args],
            [a[6] for a in args],
            _json_encode(self.names).decode(),
            _json_encode([list(a[8]) if a[8] is not None else None for a in args]).decode(),
        ]


def prefetch(program_id: str, probes: list[tuple[list, str]], threshold: float, columns: str) -> Prefetch | None:
    """The candidate queries of `probes` (all of `program_id`, asking for the same statuses) for the
    statement that takes the program's lock; None when a probe's country was never read here (its
    names are read whole first). Make it with `asking`, with no await between them."""
    if not probes or any(a[0] != program_id or a[2] != probes[0][0][2] for a, _ in probes):
        return None
    known: list[_Known] = []
    for args, _ in probes:
        if (k := _known.get((program_id, args[6]))) is None:
            return None
        known.append(k)
    names = [k.names.similar(name_key, threshold) for k, (_, name_key) in zip(known, probes, strict=True)]
    return Prefetch(program_id, probes, threshold, columns, known, names, [len(k.names) for k in known])


async def prefetched(
    conn: asyncpg.Connection, pre: Prefetch, found: list[list[tuple]], rows: list[tuple[str, int, str]]
) -> None:
    """The answer to `pre`, read under the program's lock with the names that arrived (`rows`, which
    `arrived` has applied): each probe's claims, with those of the names that arrived and are
    similar too but were not asked for (seldom: a query of its own each), kept for the transaction's
    first search of the same probes (`take_prefetched`). Kept only when the names that arrived were
    read into what the probes asked with (not when this process started them afresh meanwhile)."""
    read = _read_under_lock(conn, pre.program_id)
    local = transaction_local(conn)
    if read is None or local is None:
        return
    for (args, _), known in zip(pre.probes, pre.known, strict=True):
        key = (pre.program_id, args[6])
        if read.get(key) is not known or _known.get(key) is not known:
            return
    arrived: dict[str, list[str]] = {}
    for country, _, name in rows:
        arrived.setdefault(country, []).append(name)
    kept = {}
    for (args, name_key), known, searched, asked, rows_of in zip(
        pre.probes, pre.known, pre.searched, pre.names, found, strict=True
    ):
        extra = _unasked_similar(known, searched, set(asked), arrived.get(args[6], ()), name_key, pre.threshold)
        kept[args[1]] = ((args, name_key, pre.threshold), await _with_extra(conn, pre.columns, args, rows_of, extra))
    local[("prefetched", pre.program_id)] = kept


def take_prefetched(
    conn: asyncpg.Connection, probes: list[tuple[list, str]], threshold: float
) -> list[list[asyncpg.Record | tuple]] | None:
    """The rows `prefetched` kept for exactly these probes, as `candidate_rows_many` would give them
    (None for any other probes); taken once: what was kept is gone after the call."""
    local = transaction_local(conn)
    if local is None or not probes:
        return None
    kept = local.pop(("prefetched", probes[0][0][0]), None)
    if kept is None:
        return None
    out = []
    for args, name_key in probes:
        entry = kept.get(args[1])
        if entry is None or entry[0] != (args, name_key, threshold):
            return None
        out.append(entry[1])
    return out


def arrived(
    conn: asyncpg.Connection, program_id: str, asked: Arrivals, database: int, rows: Iterable[tuple[str, int, str]]
) -> None:
    """The answer to `asked`, read under the program's lock (held now by the open transaction): the
    database's oid and (country, seq, name) in that order. The transaction's searches then read no
    names of those countries."""
    read = _read_under_lock(conn, program_id)
    if read is not None:
        _apply_arrived(read, asked, database, list(rows))


def _apply_arrived(
    read: dict[tuple[str, str], _Known], asked: Arrivals, database: int, rows: list[tuple[str, int, str]]
) -> None:
    arrived: dict[str, list[tuple[int, str]]] = {}
    for country, seq, name in rows:
        arrived.setdefault(country, []).append((seq, name))
    # no await from here on: what was read is applied in seq order, what is known already skipped
    for key, was in zip(asked.keys, asked.before, strict=True):
        known = _known.get(key)
        if known is not was or (known is not None and known.database != database):
            continue  # started afresh meanwhile, or another database's: `similar_names` reads it alone
        if known is None:
            known = _known[key] = _Known(database)
        _learn(known, arrived.get(key[1], []))
        read[key] = known


@functools.cache
def _combined(columns: str, probed: bool = False) -> str:
    """The candidate query for the names known, and on its first row (always one, with null columns
    when nothing is found) the database's oid and the names that arrived after $10, oldest first.
    `probed`: each row first names which of the pipelined probes ($11) it answers."""
    return f"""
        SELECT {"$11::int AS probe, " if probed else ""}a.database, a.seqs, a.names, c.* FROM (
            SELECT (SELECT oid::int8 FROM pg_database WHERE datname = current_database()) AS database,
                array_agg(k.seq ORDER BY k.seq) AS seqs, array_agg(k.name_key ORDER BY k.seq) AS names
            FROM conflict.claim_name_keys k WHERE k.program_id = $1 AND k.country = $7 AND k.seq > $10
        ) a LEFT JOIN LATERAL (SELECT {columns} FROM {CANDIDATES}) c ON true
        ORDER BY c.seq
    """


async def candidate_rows(
    conn: asyncpg.Connection, columns: str, args: list, name_key: str, threshold: float
) -> list[asyncpg.Record | tuple]:
    """The rows of `columns` (`seq` the last of them, in its order) of the candidate query for
    `args` (its $1 to $9, the names $8 left out as None), the names being those similar to `name_key`.

    One round trip: the names are searched among those known, and the query also returns those that
    arrived since. Only when one of these is similar too (seldom: a new name close to the probe's)
    are its claims read in a second query.
    """
    program_id, country = args[0], args[6]
    key = (program_id, country)
    known = _known.get(key)
    read = _read_under_lock(conn, program_id)
    if known is None or (read is not None and read.get(key) is known):
        # names never read in this process (read them all first), or read under the lock already
        names = await similar_names(conn, program_id, country, name_key, threshold)
        return await _candidates(conn, columns, args, names)
    since = known.seq
    names = known.names.similar(name_key, threshold)
    searched = len(known.names)
    rows = await conn.fetch(_combined(columns), *args[:7], names, args[8], since)
    head = rows[0]
    if head["database"] != known.database:  # another database: its names, from the start
        if _known.get(key) is known:
            _known.pop(key)
        names = await similar_names(conn, program_id, country, name_key, threshold)
        return await _candidates(conn, columns, args, names)
    # no await from here to the search: what arrived is applied in seq order, what is known skipped
    arrived = [(seq, name) for seq, name in zip(head["seqs"] or (), head["names"] or (), strict=True)]
    _learn(known, arrived)
    if read is not None:
        read[key] = known
    found = [r[3:] for r in rows if r[-1] is not None]
    extra = _unasked_similar(known, searched, set(names), (name for _, name in arrived), name_key, threshold)
    return await _with_extra(conn, columns, args, found, extra)


async def candidate_rows_many(
    conn: asyncpg.Connection, columns: str, probes: list[tuple[list, str]], threshold: float
) -> list[list[asyncpg.Record | tuple]]:
    """For each probe, (`args` as `candidate_rows` takes them, its name key): the rows
    `candidate_rows` gives, under the program's lock, for all the probes in one round trip.

    Each probe asks for the claims of the similar names known, and the first probe of each country
    for the names that arrived there since (the others for none: a batch of a hundred would read
    them a hundred times); only a probe that one of these is similar to asks again (seldom). Names
    of a country this process never read are read first, all the batch's such countries at once.

    A batch of more than `_COMBINED_UP_TO` probes reads the names that arrived first, then asks for
    its candidates alone: the combined query costs each probe more than the round trip it saves
    (the decision engine's batches of 100, measured alone: 23 ms a batch combined, 17 ms for the
    candidates alone after the names; 1,217 -> 1,317 decided a second). So does a batch whose
    names were read in this transaction already (the intake's, with its lock), with no round trip
    for the names.
    """
    if len(probes) > _COMBINED_UP_TO or _all_read(conn, probes):
        return await _names_then_candidates(conn, columns, probes, threshold)
    for program_id in {args[0] for args, _ in probes}:
        unknown = {args[6] for args, _ in probes if args[0] == program_id and (program_id, args[6]) not in _known}
        await read_arrived(conn, program_id, unknown)
    sent: list[tuple[_Known, int, set[str]]] = []  # each probe's names, how many it searched, those found
    pipelined = []
    first_asked: set[tuple[str, str]] = set()  # the countries a probe asks the names that arrived of
    for i, (args, name_key) in enumerate(probes):
        program_id, country = args[0], args[6]
        known = _known.get((program_id, country))
        if known is None:  # never read (a single country of a batch: `read_arrived` left it)
            names = await similar_names(conn, program_id, country, name_key, threshold)
            known = _known[(program_id, country)]
        else:
            names = known.names.similar(name_key, threshold)
        sent.append((known, len(known.names), set(names)))
        since = _NONE_SINCE if (program_id, country) in first_asked else known.seq
        first_asked.add((program_id, country))
        pipelined.append([*args[:7], names, args[8], since, i])
    rows = await conn.fetchmany(_combined(columns, probed=True), pipelined)
    heads: list[asyncpg.Record | None] = [None] * len(probes)
    found: list[list[asyncpg.Record | tuple]] = [[] for _ in probes]
    for r in rows:
        if heads[r[0]] is None:
            heads[r[0]] = r
        if r[-1] is not None:
            found[r[0]].append(r[4:])
    out = []
    arrived_in: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for (args, name_key), (known, searched, asked), head, rows_of in zip(probes, sent, heads, found, strict=True):
        program_id, country = args[0], args[6]
        if head["database"] != known.database:  # another database: its names, from the start
            if _known.get((program_id, country)) is known:
                _known.pop((program_id, country))
            names = await similar_names(conn, program_id, country, name_key, threshold)
            out.append(await _candidates(conn, columns, args, names))
            continue
        # no await from here to the search: what arrived is applied in seq order, what is known skipped
        if (arrived := arrived_in.get((program_id, country))) is None:  # the country's first probe
            arrived = arrived_in[(program_id, country)] = list(
                zip(head["seqs"] or (), head["names"] or (), strict=True)
            )
        _learn(known, arrived)
        if (read := _read_under_lock(conn, program_id)) is not None:
            read[(program_id, country)] = known
        extra = _unasked_similar(known, searched, asked, (name for _, name in arrived), name_key, threshold)
        out.append(await _with_extra(conn, columns, args, rows_of, extra))
    return out


_NONE_SINCE = 2**62  # asks for no names that arrived (numbers never reach it)
_COMBINED_UP_TO = 16


@functools.cache
def _probed(columns: str) -> str:
    """The candidate query, each row first naming which of the pipelined probes ($10) it answers."""
    return f"SELECT $10::int AS probe, {columns} FROM {CANDIDATES} ORDER BY seq"


async def _names_then_candidates(
    conn: asyncpg.Connection, columns: str, probes: list[tuple[list, str]], threshold: float
) -> list[list[asyncpg.Record | tuple]]:
    """`candidate_rows_many` for a large batch: the names that arrived in all its countries (one
    round trip), then the candidates of all its probes (one more)."""
    for program_id in {args[0] for args, _ in probes}:
        await read_arrived(conn, program_id, {args[6] for args, _ in probes if args[0] == program_id})
    pipelined = []
    for i, (args, name_key) in enumerate(probes):
        names = await similar_names(conn, args[0], args[6], name_key, threshold)  # read above: no round trip
        pipelined.append([*args[:7], names, args[8], i])
    found: list[list[asyncpg.Record | tuple]] = [[] for _ in probes]
    for r in await conn.fetchmany(_probed(columns), pipelined):
        found[r[0]].append(r[1:])
    return found


async def _with_extra(
    conn: asyncpg.Connection, columns: str, args: list, found: list, extra: list[str]
) -> list[asyncpg.Record | tuple]:
    """`found`, and the claims of `extra` (new names found similar after the query), in seq order."""
    if not extra:
        return found
    # claims of the new similar names only (no key is equal to NULL)
    more = await _candidates(conn, columns, [*args[:3], None, None, None, args[6], None, args[8]], extra)
    have = {r[-1] for r in found}
    return sorted([*found, *(tuple(r) for r in more if r[-1] not in have)], key=lambda r: r[-1])


def _learn(known: _Known, arrived: list[tuple[int, str]]) -> None:
    """Apply names read from the database, (seq, name) in seq order: those past what `known` holds."""
    new = [(seq, name) for seq, name in arrived if seq > known.seq]
    if new:
        known.names.add(name for _, name in new)
        known.seq = new[-1][0]


def _learn_names(known: _Known, names: list[str], last: int | None) -> None:
    """Apply the names that arrived after some number, in order, the last of them numbered `last`.
    Those among them that `known` holds already (read meanwhile by another call, past that number)
    are skipped by the search; the others are past what it holds, since a program's names arrive
    under its lock and their numbers grow in commit order."""
    if last is not None and last > known.seq:
        known.names.add(names)
        known.seq = last


def _unasked_similar(
    known: _Known, searched: int, asked: set[str], arrived: Iterable[str], probe: str, threshold: float
) -> list[str]:
    """The names that arrived, similar to `probe`, that a search of `known` among its first
    `searched` names did not find (`asked`, what it found). A name it looked at needs no second
    look: it found it, or it is not similar. Under load most names that arrive are this process's
    own, known since they were written (`added`): each probe of a batch of a hundred scored the
    hundred names of the batch before."""
    return [
        name
        for name in arrived
        if name not in asked and not known.names.among_first(name, searched) and _similar(name, probe, threshold)
    ]


def _similar(name: str, probe: str, threshold: float) -> bool:
    """As `NameSearch.similar` decides for one name."""
    score = trigram_similarity(name, probe)
    return score > 0 and score >= threshold


async def _candidates(conn: asyncpg.Connection, columns: str, args: list, names: list[str]) -> list:
    return await conn.fetch(f"SELECT {columns} FROM {CANDIDATES} ORDER BY seq", *args[:7], names, args[8])


def _all_read(conn: asyncpg.Connection, probes: list[tuple[list, str]]) -> bool:
    """Whether the names of every probe's country were read in the open transaction, under the lock
    (with its marks, say): the candidates then need no names with them."""
    for args, _ in probes:
        read = _read_under_lock(conn, args[0])
        if (
            read is None
            or (known := read.get((args[0], args[6]))) is None
            or _known.get((args[0], args[6])) is not known
        ):
            return False
    return True


def _read_under_lock(conn: asyncpg.Connection, program_id: str) -> dict[tuple[str, str], _Known] | None:
    """The names read in the open transaction, when it holds the program's lock (else None)."""
    local = transaction_local(conn)
    if local is None or program_id not in local.get("program_locks", ()):
        return None
    return local.setdefault("names_read", {})


def forget(program_id: str) -> None:
    """Drop what this process knows of the program's names: the next search reads them all again,
    as a process that has just started does."""
    for key in [key for key in _known if key[0] == program_id]:
        del _known[key]


def known_names(program_id: str, country: str) -> int:
    """How many of the program's names in `country` this process holds."""
    known = _known.get((program_id, country))
    return len(known.names) if known is not None else 0


def added(program_id: str, country: str, name_key: str) -> None:
    """A claim of the open transaction carries `name_key` (a new claim, or a new name): known at once
    to the searches of this transaction (if the transaction rolls back, a name without claims stays,
    which finds nothing)."""
    added_many([(program_id, country, name_key)])


def added_many(names: Iterable[tuple[str, str, str]]) -> None:
    """`added` for each (program, country, name key), each country's names in one `NameSearch.add`
    (each trigram's list grown once for them all, not once a name)."""
    by_country: dict[tuple[str, str], list[str]] = {}
    for program_id, country, name_key in names:
        by_country.setdefault((program_id, country), []).append(name_key)
    for key, keys in by_country.items():
        if (known := _known.get(key)) is not None:
            known.names.add(keys)


async def similar_names_any_country(
    conn: asyncpg.Connection, program_id: str, name_key: str, threshold: float
) -> list[tuple[str, str]]:
    """(country, name) of the program's names, in any of its countries, similar to `name_key`."""
    found = []
    for country in [r[0] for r in await conn.fetch(_COUNTRIES, program_id)]:
        found += [(country, name) for name in await similar_names(conn, program_id, country, name_key, threshold)]
    return found
