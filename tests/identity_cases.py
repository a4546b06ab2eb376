"""Pairs of customers that must and must not be taken for the same customer.

Plain data shared by the unit tests (pure Python matching) and the integration tests
(the same table against PostgreSQL's pg_trgm ``similarity()``). A case is
``(case_id, left, right, same_customer)``; a side is a dict with the keys of
``identity_of``: name, country, domain, duns, tax_id (absent keys are None).
Cases meant to isolate one key give the sides unrelated names.
"""

from __future__ import annotations

NAME_THRESHOLD = 0.6
IGNORE_DOMAINS: tuple[str, ...] = ("gmail.com", "outlook.com", "yahoo.com")

Side = dict[str, str | None]
IdentityCase = tuple[str, Side, Side, bool]


def _side(name: str, country: str = "US", **keys: str | None) -> Side:
    return {"name": name, "country": country, "domain": None, "duns": None, "tax_id": None, **keys}


def _keyed(key: str, left: str, right: str, countries: tuple[str, str] = ("US", "US")) -> tuple[Side, Side]:
    """Two customers with unrelated names, compared on one key only."""
    return _side("Foo", countries[0], **{key: left}), _side("Bar", countries[1], **{key: right})


IDENTITY_CASES: list[IdentityCase] = [
    # --- names, same country ---
    ("name-prefix-of-longer-name", _side("Acme"), _side("Acmeon Industries"), False),
    ("name-corporation-vs-corp", _side("Acme Corporation"), _side("ACME Corp."), True),
    ("name-accents-and-sa", _side("Société Générale S.A.", "FR"), _side("Societe Generale", "FR"), True),
    ("name-umlaut-gmbh", _side("Müller GmbH", "DE"), _side("Muller", "DE"), True),
    ("name-inc-punctuation", _side("Acme Inc"), _side("Acme, Inc."), True),
    ("name-leading-the-company", _side("The Boeing Company"), _side("Boeing"), True),
    ("name-ampersand-and", _side("Johnson & Johnson"), _side("Johnson and Johnson"), True),
    ("name-shared-first-word", _side("Johnson & Johnson"), _side("Johnson Controls"), False),
    ("name-ag-spelled-out", _side("Siemens AG", "DE"), _side("Siemens Aktiengesellschaft", "DE"), True),
    ("name-gmbh-co-kg", _side("Acme GmbH & Co. KG", "DE"), _side("ACME", "DE"), True),
    ("name-nestle-sa", _side("Nestlé S.A.", "CH"), _side("NESTLE", "CH"), True),
    ("name-kabushiki-kaisha", _side("Toyota Motor Kabushiki Kaisha", "JP"), _side("Toyota Motor K.K.", "JP"), True),
    ("name-spa-dotted", _side("Fiat S.p.A.", "IT"), _side("FIAT SpA", "IT"), True),
    ("name-nv-dotted", _side("Philips N.V.", "NL"), _side("Philips", "NL"), True),
    ("name-ab-publ", _side("Volvo AB (publ)", "SE"), _side("Volvo", "SE"), True),
    ("name-a-slash-s", _side("Novo Nordisk A/S", "DK"), _side("Novo Nordisk", "DK"), True),
    ("name-oyj", _side("Nokia Oyj", "FI"), _side("Nokia", "FI"), True),
    ("name-asa", _side("Equinor ASA", "NO"), _side("Equinor", "NO"), True),
    ("name-acute-and-comma", _side("Telefónica, S.A.", "ES"), _side("Telefonica", "ES"), True),
    ("name-sab-de-cv", _side("Grupo Bimbo S.A.B. de C.V.", "MX"), _side("Grupo Bimbo", "MX"), True),
    ("name-ltda", _side("Natura Ltda.", "BR"), _side("Natura", "BR"), True),
    ("name-sp-z-oo", _side("Orlen Sp. z o.o.", "PL"), _side("ORLEN", "PL"), True),
    ("name-pty-ltd", _side("BHP Pty Ltd", "AU"), _side("BHP", "AU"), True),
    ("name-llc-dotted", _side("Acme Holdings LLC"), _side("Acme Holdings L.L.C."), True),
    ("name-co-ltd", _side("Acme Co., Ltd.", "CN"), _side("Acme Limited", "CN"), True),
    ("name-eszett", _side("Straße Logistik GmbH", "DE"), _side("Strasse Logistik", "DE"), True),
    ("name-o-slash", _side("Ørsted A/S", "DK"), _side("Orsted", "DK"), True),
    ("name-dotted-initials", _side("I.B.M. Corp"), _side("IBM"), True),
    ("name-apostrophe", _side("McDonald's Corporation"), _side("McDonalds"), True),
    ("name-typo", _side("Acme Manufacturing"), _side("Acme Manufactoring"), True),
    ("name-word-order", _side("Alpha Beta Gamma Ltd", "GB"), _side("Gamma Beta Alpha", "GB"), True),
    ("name-different-second-word", _side("Acme Widgets"), _side("Acme Gadgets"), False),
    ("name-different-company", _side("Microsoft Corporation"), _side("Micron Technology"), False),
    ("name-subsidiary-suffix", _side("IBM"), _side("IBM Canada"), False),
    ("name-country-differs", _side("Acme", "US"), _side("Acme", "GB"), False),
    ("name-country-case", _side("acme", "us"), _side("ACME", "US"), True),
    ("name-country-missing", _side("Acme", ""), _side("Acme", ""), False),
    ("name-empty", _side(""), _side(""), False),
    ("name-only-punctuation", _side("!!!"), _side("???"), False),
    ("name-only-legal-form", _side("Company Inc."), _side("Company"), True),
    # --- domains (names unrelated) ---
    ("domain-url-of-co-uk", *_keyed("domain", "acme.co.uk", "https://www.acme.co.uk/x"), True),
    ("domain-subdomain", *_keyed("domain", "eu.acme.com", "acme.com"), True),
    ("domain-other-suffix", *_keyed("domain", "acme.com", "acme.co.uk"), False),
    ("domain-unlisted-tld", *_keyed("domain", "umbrella.example", "www.umbrella.example"), True),
    ("domain-ignored", *_keyed("domain", "gmail.com", "gmail.com"), False),
    ("domain-ignored-email", *_keyed("domain", "ann@outlook.com", "bob@outlook.com"), False),
    ("domain-empty", *_keyed("domain", "", ""), False),
    ("domain-absent", _side("Foo"), _side("Bar"), False),
    ("domain-full-url", *_keyed("domain", "HTTPS://u:p@WWW.Acme.COM:8443/a?b#c", "acme.com"), True),
    ("domain-email", *_keyed("domain", "jane.doe@acme.com", "acme.com"), True),
    ("domain-trailing-dot", *_keyed("domain", "acme.com.", "ACME.COM"), True),
    ("domain-private-suffix", *_keyed("domain", "acme.github.io", "other.github.io"), False),
    ("domain-idn-punycode", *_keyed("domain", "shop.bücher.de", "xn--bcher-kva.de"), True),
    ("domain-ip-address", *_keyed("domain", "10.0.0.1", "10.0.0.1"), False),
    ("domain-localhost", *_keyed("domain", "localhost", "http://localhost:8080"), False),
    ("domain-public-suffix-only", *_keyed("domain", "co.uk", "co.uk"), False),
    ("domain-across-countries", *_keyed("domain", "acme.com", "acme.de.acme.com", ("US", "DE")), True),
    # --- DUNS and tax ids (names unrelated) ---
    ("duns-formatting", *_keyed("duns", "12-345-6789", "123456789"), True),
    ("duns-differs", *_keyed("duns", "123456789", "123456780"), False),
    ("duns-empty", *_keyed("duns", "--", ""), False),
    ("duns-across-countries", *_keyed("duns", "123456789", "123456789", ("US", "FR")), True),
    ("tax-id-formatting", *_keyed("tax_id", "US-12-3456789", "us 123456789"), True),
    ("tax-id-differs", *_keyed("tax_id", "DE123456789", "FR123456789"), False),
    ("tax-id-vs-duns", _side("Foo", duns="123456789"), _side("Bar", tax_id="123456789"), False),
]
