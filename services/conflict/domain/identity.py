"""Customer identity: do two claims name the same customer? (SPEC section 8, "Identity").

Two claims name the same customer when their registrable domains are equal, or their
DUNS or tax ids are equal, or, in the same country, the pg_trgm ``similarity()`` of
their normalized names reaches the policy's ``match.name_similarity``.

Storage note for the SQL side: the claim index keeps, per claim, the output of
``identity_of`` -- ``name_key`` (``normalize_name``), ``country`` (upper-case),
``domain`` (registrable, ASCII/punycode, already ``None`` when ignored), ``duns``
(digits) and ``tax_id`` (upper-case alphanumerics) -- with b-tree indexes on domain,
duns and tax_id, and each country's distinct names in ``conflict.claim_name_keys``,
searched in memory (``services.conflict.name_search``, ``services.conflict.name_index``).
Candidates are ``domain = $d OR duns = $u OR tax_id = $t OR (country = $c AND name_key
IN (names whose similarity(name, $n) >= $threshold and > 0))``, NULLs never being equal.
``trigrams`` and ``trigram_similarity`` below agree with pg_trgm in the
project's database (UTF-8, LC_CTYPE C), where only ASCII letters and digits make words:
a name left in another script after folding (Cyrillic, CJK) has no trigrams there and
matches only by domain, DUNS or tax id.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import struct
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

from services.conflict.domain.legal_forms import LEGAL_FORMS

# The private section is honoured as well as the ICANN one: under github.io,
# blogspot.com or herokuapp.com each customer has its own site, so acme.github.io and
# other.github.io are different customers. accept_unknown makes an unlisted TLD its own
# suffix (umbrella.example -> umbrella.example), as SPEC requires.
_PSL = PublicSuffixList(accept_unknown=True, only_icann=False)
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# Special-use names that never identify a customer (RFC 6761).
_NEVER_DOMAINS = frozenset({"localhost"})


def registrable_domain(value: str | None) -> str | None:
    """The registrable domain (eTLD+1, lower-case ASCII) of a host, URL or e-mail address.

    Accepts any scheme or none, userinfo, port, path, query, a trailing dot, any case
    and IDN in Unicode or punycode. IP addresses, localhost, public suffixes themselves
    and junk give None. Never raises.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        if (plain := (_PLAIN_URL if "://" in text else _PLAIN_HOST).fullmatch(text)) is not None:
            host = plain.group(1).lower()  # what urlsplit finds in these forms, without it
        else:
            # Without a scheme, "//" makes urlsplit read the whole thing as an authority,
            # so "user@host:port/path" and plain e-mail addresses both yield the host.
            host = urlsplit(text if "://" in text else "//" + text).hostname
        if not host:
            return None
        host = host.rstrip(".")
        if _is_ip_address(host):
            return None
        if not host.isascii():
            # IDNA turns Unicode labels into punycode (and nameprep folds case), so
            # bücher.de and xn--bcher-kva.de are one key. (An ASCII host it leaves as it
            # is, or refuses for an empty or too long label, as _LABEL below does.)
            host = host.encode("idna").decode("ascii").lower()
    except (ValueError, UnicodeError):
        return None
    return _registrable(host)


def _registrable(host: str) -> str | None:
    """The registrable domain of an ASCII host (lower-case, no trailing dot, no IP address)."""
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if labels[-1] in _NEVER_DOMAINS:
        return None
    return _PSL.privatesuffix(host)


# The forms partners type most, whose host urlsplit would find as the group: a bare host, an e-mail
# address (no "://" in either), and a URL with a scheme, each host of ASCII letters, digits, dots
# and hyphens, then nothing or a path, query or fragment (read by the tests against urlsplit).
_PLAIN_HOST = re.compile(r"(?:[A-Za-z0-9._%+-]+@)?([A-Za-z0-9.-]+)(?:[/?#].*)?", re.DOTALL)
_PLAIN_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?:[A-Za-z0-9._%+-]+@)?([A-Za-z0-9.-]+)(?:[/?#].*)?", re.DOTALL)


def _is_ip_address(host: str) -> bool:
    # an IPv6 address has a colon, an IPv4 one only ASCII digits and dots: any other host is none,
    # told without `ip_address`, whose refusal (an exception, twice) costs a fifth of the whole
    if ":" not in host and not (host.isascii() and host.replace(".", "").isdigit()):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


_APOSTROPHES = re.compile(r"['\u2019\u02bc`\u00b4]")
# Dotted or slashed initials ("s.p.a.", "l.l.c", "i.b.m.", "a/s") become one word.
_INITIALS = re.compile(r"(?<!\w)\w(?:[./]\w)+\.?(?!\w)")
_NON_WORD = re.compile(r"[\W_]+")
# Letters NFKD does not decompose into a base letter and a mark (\u0131: dotless i).
_LETTERS = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ð": "d", "ł": "l", "þ": "th", "\u0131": "i"})


def _fold(text: str) -> list[str]:
    """Case, accents and punctuation folded; the words that remain."""
    if text.isascii():  # nothing to decompose, no marks, no letters to map: only the case
        text = text.lower()
    else:
        # casefold after compatibility decomposition too: a mathematical capital decomposes only then
        text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
        text = "".join(ch for ch in text if not unicodedata.combining(ch)).translate(_LETTERS)
    text = _APOSTROPHES.sub("", text.replace("&", " and "))
    text = _INITIALS.sub(lambda m: re.sub(r"[./]", "", m.group()), text)
    return _NON_WORD.sub(" ", text).split()


_LEGAL_SUFFIXES = sorted({tuple(_fold(form)) for form in LEGAL_FORMS}, key=len, reverse=True)
# the forms by their last word, longest first: a name is checked only against those its last word
# could end (each name was tried against every form before: the bulk of a replay's CPU)
_SUFFIXES_BY_LAST_WORD: dict[str, list[tuple[str, ...]]] = {}
for _form in _LEGAL_SUFFIXES:
    _SUFFIXES_BY_LAST_WORD.setdefault(_form[-1], []).append(_form)


def normalize_name(name: str) -> str:
    """A company name folded for comparison: case, accents, punctuation, legal forms.

    "The Acme Corporation" and "ACME Corp." both give "acme"; "GmbH & Co. KG" forms
    are removed one after another from the end. A name made only of such words keeps
    its first word rather than becoming empty ("Company Inc." gives "company").
    """
    words = _fold(name)
    stripped = True
    while stripped and words:
        stripped = False
        for form in _SUFFIXES_BY_LAST_WORD.get(words[-1], ()):
            if len(words) > len(form) and tuple(words[-len(form) :]) == form:
                words = words[: -len(form)]
                stripped = True
                break
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    return " ".join(words)


# With LC_CTYPE C, pg_trgm's word characters are the ASCII alphanumerics; any other
# character separates words.
_WORD_CHARS = re.compile(r"[A-Za-z0-9]+")


def trigrams(text: str) -> set[str]:
    """pg_trgm's trigrams of `text` (``show_trgm``), as a set: the union of its `words`' `word_trigrams`."""
    grams: set[str] = set()
    for word in _WORD_CHARS.findall(text):  # `words`, without a call
        grams |= word_trigrams(word)
    return grams


def words(text: str) -> list[str]:
    """pg_trgm's words of `text`, as written (each one's trigrams are `word_trigrams`)."""
    return _WORD_CHARS.findall(text)


# Names are made of few distinct words ("foods", "group", "ltd", surnames): each word's trigrams are
# taken once, and a name's are the union of its words' (about 1 kB a word, 8,192 words at most).
@functools.lru_cache(maxsize=8192)
def word_trigrams(word: str) -> frozenset[str]:
    """pg_trgm's trigrams of one word: lower-cased and padded "  word ", taken as a set. (Lower-cased
    after splitting: str.lower() maps some non-ASCII letters, the Kelvin sign, to ASCII ones, which
    PostgreSQL under C does not.)"""
    padded = f"  {word.lower()} "
    return frozenset(padded[i : i + 3] for i in range(len(padded) - 2))


# A decision compares its claim's name with each rival's, and rivals share a few names: each name's
# trigrams are taken once while it is in use (about 3 kB a name, 1,024 names at most).
_trigram_set = functools.lru_cache(maxsize=1024)(lambda text: frozenset(trigrams(text)))


# A claim's candidates carry few distinct names (a name found is shared by all its claims): each
# pair's score is computed once while in use.
@functools.lru_cache(maxsize=4096)
def trigram_similarity(a: str, b: str) -> float:
    """PostgreSQL pg_trgm ``similarity(a, b)``: shared trigrams over all trigrams.

    Rounded to float4 as PostgreSQL returns ``real``; 0 when either side has no words.
    """
    grams_a, grams_b = _trigram_set(a), _trigram_set(b)
    if not grams_a or not grams_b:
        return 0.0
    common = len(grams_a & grams_b)
    ratio = common / (len(grams_a) + len(grams_b) - common)
    return struct.unpack("f", struct.pack("f", ratio))[0]


@dataclass(frozen=True, slots=True)
class Identity:
    """What identifies a claim's customer, each part in its comparable form."""

    name_key: str
    country: str
    domain: str | None = None
    duns: str | None = None
    tax_id: str | None = None


MatchKeyName = Literal["domain", "duns", "tax_id", "name"]


@dataclass(frozen=True, slots=True)
class MatchKey:
    """One reason two identities name the same customer; score is 1.0 for equal keys."""

    key: MatchKeyName
    score: float


@functools.lru_cache(maxsize=64)
def _ignored(ignore_domains: tuple[str, ...]) -> frozenset[str | None]:
    """The registrable forms of a policy's ignore list (a policy has one; claims are many)."""
    return frozenset(registrable_domain(d) for d in ignore_domains)


def country_key(country: str | None) -> str:
    """The country as identities compare it (names are compared only within one)."""
    return (country or "").strip().upper()


def identity_of(
    name: str | None,
    country: str | None,
    domain: str | None = None,
    duns: str | None = None,
    tax_id: str | None = None,
    ignore_domains: Iterable[str] = (),
) -> Identity:
    """The comparable identity of a customer as a claim gave it."""
    registrable = registrable_domain(domain)
    if registrable is not None and registrable in _ignored(tuple(ignore_domains)):
        registrable = None
    duns_digits = "".join(ch for ch in duns or "" if ch.isascii() and ch.isdigit())
    tax_key = re.sub(r"[^0-9A-Z]", "", unicodedata.normalize("NFKC", tax_id or "").upper())
    return Identity(
        name_key=normalize_name(name or ""),
        country=country_key(country),
        domain=registrable,
        duns=duns_digits or None,
        tax_id=tax_key or None,
    )


def match_evidence(a: Identity, b: Identity, name_threshold: float) -> list[MatchKey]:
    """Every key on which a and b name the same customer; empty when they do not.

    Names are compared only within one (known) country, and a similarity of 0 never
    matches, whatever the threshold.
    """
    evidence = []
    if a.domain is not None and a.domain == b.domain:
        evidence.append(MatchKey("domain", 1.0))
    if a.duns is not None and a.duns == b.duns:
        evidence.append(MatchKey("duns", 1.0))
    if a.tax_id is not None and a.tax_id == b.tax_id:
        evidence.append(MatchKey("tax_id", 1.0))
    if a.country and a.country == b.country:
        score = trigram_similarity(a.name_key, b.name_key)
        if score > 0 and score >= name_threshold:
            evidence.append(MatchKey("name", score))
    return evidence
