"""Customer identity: registrable domains, name folding, trigram similarity, match evidence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.conflict.domain.identity import (
    Identity,
    MatchKey,
    identity_of,
    match_evidence,
    normalize_name,
    registrable_domain,
    trigram_similarity,
)
from tests.identity_cases import IDENTITY_CASES, IGNORE_DOMAINS, NAME_THRESHOLD, Side

pytestmark = pytest.mark.unit


def _identity(side: Side) -> Identity:
    return identity_of(**side, ignore_domains=IGNORE_DOMAINS)


def test_the_table_is_large_and_has_unique_ids():
    ids = [case_id for case_id, *_ in IDENTITY_CASES]
    assert len(ids) >= 40
    assert len(set(ids)) == len(ids)
    assert {expected for *_, expected in IDENTITY_CASES} == {True, False}


@pytest.mark.parametrize(
    ("left", "right", "same_customer"), [case[1:] for case in IDENTITY_CASES], ids=[case[0] for case in IDENTITY_CASES]
)
def test_identity_table(left: Side, right: Side, same_customer: bool):
    forward = match_evidence(_identity(left), _identity(right), NAME_THRESHOLD)
    backward = match_evidence(_identity(right), _identity(left), NAME_THRESHOLD)
    assert bool(forward) is same_customer
    assert forward == backward


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("acme.com", "acme.com"),
        ("eu.acme.com", "acme.com"),
        ("acme.co.uk", "acme.co.uk"),
        ("https://www.Acme.com/path", "acme.com"),
        ("www.acme.co.uk:8080/x?y=1", "acme.co.uk"),
        ("ftp://user:secret@files.acme.com:21/pub", "acme.com"),
        ("mailto:jane@acme.com", "acme.com"),
        ("Jane.Doe+deals@Sales.ACME.com", "acme.com"),
        ("  acme.com.  ", "acme.com"),
        ("umbrella.example", "umbrella.example"),
        ("www.umbrella.example", "umbrella.example"),
        ("acme.github.io", "acme.github.io"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("https://WWW.XN--BCHER-KVA.DE/", "xn--bcher-kva.de"),
        ("github.io", None),
        ("co.uk", None),
        ("com", None),
        ("localhost", None),
        ("api.localhost", None),
        ("http://127.0.0.1:8000/", None),
        ("sales@10.0.0.7", None),
        ("http://1.2.3.4./", None),
        ("[::1]", None),
        ("https://[2001:db8::1]/x", None),
        ("", None),
        ("   ", None),
        (None, None),
        ("not a domain", None),
        ("acme..com", None),
        ("-acme.com", None),
        ("http://", None),
        ("https://[oops/", None),
        ("a" * 64 + ".com", None),
    ],
)
def test_registrable_domain(value: str | None, expected: str | None):
    assert registrable_domain(value) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Acme Corporation", "acme"),
        ("ACME Corp.", "acme"),
        ("The Acme Company", "acme"),
        ("Société Générale S.A.", "societe generale"),
        ("Müller GmbH & Co. KG", "muller"),
        ("Fiat S.p.A.", "fiat"),
        ("Philips B.V.", "philips"),
        ("Hitachi K.K.", "hitachi"),
        ("Orlen Sp. z o.o.", "orlen"),
        ("Novo Nordisk A/S", "novo nordisk"),
        ("Acme Co., Ltd.", "acme"),
        ("Smith & Sons", "smith and sons"),
        ("O'Reilly Media, Inc.", "oreilly media"),
        ("I.B.M.", "ibm"),
        ("Ørsted", "orsted"),
        ("SAS Institute Inc.", "sas institute"),
        ("Acme Holdings", "acme holdings"),
        ("Company Inc.", "company"),
        ("Inc.", "inc"),
        ("The", "the"),
        ("  ", ""),
    ],
)
def test_normalize_name(name: str, expected: str):
    assert normalize_name(name) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("word", "two words", 0.36363637),  # the pg_trgm documentation's example
        ("acme", "acme", 1.0),
        ("acme", "ACME", 1.0),
        ("acme", "", 0.0),
        ("", "", 0.0),
        ("ab_cd", "ab cd", 1.0),
        ("acme widgets", "acme gadgets", 9 / 17),
    ],
)
def test_trigram_similarity_known_values(a: str, b: str, expected: float):
    assert trigram_similarity(a, b) == pytest.approx(expected, rel=1e-6)


def test_non_ascii_letters_separate_words_as_in_a_c_ctype_database():
    assert trigram_similarity("привет", "привет") == 0.0
    assert trigram_similarity("éa", "ea") == 0.0


def test_identity_of_folds_each_key():
    identity = identity_of(" Acme, Inc. ", " us ", "https://www.acme.com/", "12-345-6789", "us-12-3456789")
    assert identity == Identity(
        name_key="acme", country="US", domain="acme.com", duns="123456789", tax_id="US123456789"
    )


def test_ignore_list_is_compared_in_registrable_form():
    ignored = identity_of("Acme", "US", "mail.Yahoo.com", ignore_domains=["https://www.yahoo.com"])
    assert ignored.domain is None
    assert identity_of("Acme", "US", "acme.com", ignore_domains=["GMAIL.com"]).domain == "acme.com"


def test_match_evidence_lists_every_key_with_its_score():
    a = identity_of("Acme Manufacturing", "US", "acme.com", "123456789", "X1")
    b = identity_of("Acme Manufactoring", "US", "www.acme.com", "123456789", "X1")
    evidence = match_evidence(a, b, 0.6)
    assert [m.key for m in evidence] == ["domain", "duns", "tax_id", "name"]
    assert evidence[:3] == [MatchKey("domain", 1.0), MatchKey("duns", 1.0), MatchKey("tax_id", 1.0)]
    assert evidence[3].score == pytest.approx(8 / 11, rel=1e-6)


def test_name_threshold_is_inclusive_and_zero_never_matches():
    a, b = identity_of("Acme Widgets", "US"), identity_of("Acme Gadgets", "US")
    score = trigram_similarity(a.name_key, b.name_key)
    assert match_evidence(a, b, score) == [MatchKey("name", score)]
    assert match_evidence(a, b, score + 1e-6) == []
    assert match_evidence(identity_of("Foo", "US"), identity_of("Bar", "US"), 0.0) == []


names = st.text(st.characters(codec="utf-8"), max_size=40)


@given(names, names)
def test_similarity_is_symmetric_and_bounded(a: str, b: str):
    score = trigram_similarity(a, b)
    assert score == trigram_similarity(b, a)
    assert 0.0 <= score <= 1.0


@given(names)
def test_identical_normalized_names_are_fully_similar(name: str):
    key = normalize_name(name)
    has_words = any(ch.isascii() and ch.isalnum() for ch in key)
    assert trigram_similarity(key, key) == (1.0 if has_words else 0.0)


@given(names)
def test_normalize_name_is_idempotent(name: str):
    once = normalize_name(name)
    assert normalize_name(once) == once


@given(st.text())
def test_registrable_domain_never_raises_on_text(value: str):
    result = registrable_domain(value)
    assert result is None or (result == result.lower() and result.isascii())


url_parts = st.sampled_from(
    [
        "http://",
        "https://",
        "//",
        "",
        "mailto:",
        "user@",
        "a:b@",
        "[",
        "]",
        ":",
        ":99999",
        ".",
        "..",
        "/",
        "?",
        "#",
        "@",
        "%",
        "xn--",
        "-",
        "ü",
        "é",
        "com",
        "co.uk",
        "acme",
        "127.0.0.1",
        "::1",
        "\t",
        " ",
        "\x00",
    ]
)


@given(st.lists(url_parts, max_size=12).map("".join))
def test_registrable_domain_never_raises_on_url_like_text(value: str):
    registrable_domain(value)


def _strip_every_form(name: str) -> str:
    """normalize_name as first written: every legal form tried against every name."""
    from services.conflict.domain.identity import _LEGAL_SUFFIXES, _fold

    words = _fold(name)
    stripped = True
    while stripped:
        stripped = False
        for form in _LEGAL_SUFFIXES:
            if len(words) > len(form) and tuple(words[-len(form) :]) == form:
                words = words[: -len(form)]
                stripped = True
                break
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    return " ".join(words)


_FORM_WORDS = st.sampled_from(["gmbh", "co", "kg", "inc", "ltd", "llc", "s.a.", "sa", "ag", "corp", "&", "plc", "bv"])


@given(st.lists(st.one_of(st.text(max_size=8), _FORM_WORDS), max_size=7).map(" ".join))
def test_looking_forms_up_by_last_word_strips_what_trying_every_form_strips(name: str):
    assert normalize_name(name) == _strip_every_form(name)


def _registrable_domain_by_urlsplit(value: str | None) -> str | None:
    """registrable_domain as first written: every host found by urlsplit, every host through IDNA
    (then read as registrable_domain reads it)."""
    from urllib.parse import urlsplit

    from services.conflict.domain.identity import _is_ip_address, _registrable

    if not isinstance(value, str) or not (text := value.strip()):
        return None
    try:
        host = urlsplit(text if "://" in text else "//" + text).hostname
        if not host:
            return None
        host = host.rstrip(".")
        if _is_ip_address(host):
            return None
        host = host.encode("idna").decode("ascii").lower()
    except (ValueError, UnicodeError):
        return None
    return _registrable(host)


# the pieces of the forms partners type, and of what only looks like them
_TYPED_PARTS = st.sampled_from(
    [
        "https://", "HTTP://", "ftp+x.y://", "://", "//", "www.", "WWW.", "sales@", "a.b+c%d@", "@", "acme", "ACME",
        "x-y", "-", "_", ".", "..", "com", "co.uk", "de", "github.io", "1", "127.0.0.1", "[::1]", ":", ":8080", "/",
        "/path", "?q=1", "#top", "/r?u=https://other.com", "/@evil.com", "a" * 64, "ü", "xn--bcher-kva", "\t",
        "\n", " ", "localhost",
    ]
)  # fmt: skip


@settings(max_examples=1000)
@given(st.one_of(st.lists(_TYPED_PARTS, max_size=10).map("".join), st.text()))
def test_registrable_domain_finds_without_urlsplit_what_urlsplit_finds(value: str):
    """The plain forms read without urlsplit (and ASCII hosts without IDNA) give what both give."""
    assert registrable_domain(value) == _registrable_domain_by_urlsplit(value)


@pytest.mark.parametrize(
    "value",
    ["acme.com", "https://www.Acme.co.uk/contact?x=1", "sales@acme.de", "ftp://user@files.acme.com", "acme.com#x"],
)
def test_the_plain_forms_are_read_without_urlsplit(value: str, monkeypatch):
    from services.conflict.domain import identity

    monkeypatch.setattr(identity, "urlsplit", None)  # would raise if called
    assert registrable_domain(value) == _registrable_domain_by_urlsplit(value) is not None


def _fold_by_unicode(text: str) -> list[str]:
    """_fold as first written: every name decomposed and stripped of marks, ASCII ones too."""
    import re
    import unicodedata

    from services.conflict.domain.identity import _APOSTROPHES, _INITIALS, _LETTERS, _NON_WORD

    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).translate(_LETTERS)
    text = _APOSTROPHES.sub("", text.replace("&", " and "))
    text = _INITIALS.sub(lambda m: re.sub(r"[./]", "", m.group()), text)
    return _NON_WORD.sub(" ", text).split()


@given(st.one_of(st.text(alphabet=st.characters(max_codepoint=127)), st.text()))
def test_folding_an_ascii_name_by_its_case_alone_folds_it_as_unicode_does(name: str):
    from services.conflict.domain.identity import _fold

    assert _fold(name) == _fold_by_unicode(name)
