"""Realistic, reproducible deal registrations: customers, domains, products and partners from a seed.

Company names come from Faker's locales (German, Dutch, Spanish, French, British and American
firms, with their legal forms and accents), joined with an industry word so that a million of them
stay mostly distinct. A customer is a pure function of (seed, index), so a pool of millions needs
no memory; registrations draw customers from a pool three times their number, which gives about
15% repeat registrations of one customer (the collisions the conflict service has to settle),
each repeat written slightly differently (case, legal form, URL or bare domain, missing domain).
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import re
import unicodedata
from dataclasses import dataclass

import msgspec

LOCALES = {"en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "nl_NL": "NL", "es_ES": "ES"}
COUNTRY_WEIGHTS = {"US": 40, "GB": 15, "DE": 15, "FR": 10, "NL": 10, "ES": 10}
TLDS = {"US": "com", "GB": "co.uk", "DE": "de", "FR": "fr", "NL": "nl", "ES": "es"}
CURRENCIES = {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "NL": "EUR", "ES": "EUR"}
INDUSTRIES = tuple(
    "Logistics Systems Foods Pharma Energy Analytics Retail Media Capital Robotics Health Textiles Motors Labs"
    " Networks Insurance Hotels Aviation Chemicals Software Consulting Dental Brewing Marine Packaging Security"
    " Telecom Agritech Solar Freight".split()
)
PRODUCTS = tuple("firewall endpoint siem ztna email-security cloud-backup vpn soc-service support training".split())
PRODUCT_WEIGHTS = (20, 18, 10, 8, 8, 8, 6, 6, 10, 6)
TIERS = {"platinum": 0.1, "gold": 0.2, "silver": 0.3, "registered": 0.4}
PARTNER_TYPES = ("reseller", "distributor", "msp", "si", "referral")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@functools.cache
def _company_bases(seed: int, per_locale: int = 30_000) -> dict[str, tuple[str, ...]]:
    """Faker company names per country, drawn once per seed: 8,000 to 27,000 distinct ones each
    (surnames drawn uniformly, which is also 13 times faster than by their frequency). With the
    industry words that is 250,000 to 850,000 names a country, so a million customers stay mostly
    distinct, as a registry's are; a pool of 1,500 gave each name 4 to 9 firms at a million and made
    nearly every new customer collide with an old one."""
    from faker import Faker

    out = {}
    for locale, country in LOCALES.items():
        fake = Faker(locale, use_weighting=False)
        fake.seed_instance(seed)
        out[country] = tuple(dict.fromkeys(fake.company() for _ in range(per_locale)))
    return out


@functools.cache
def _cities(seed: int) -> dict[str, tuple[str, ...]]:
    from faker import Faker

    out = {}
    for locale, country in LOCALES.items():
        fake = Faker(locale)
        fake.seed_instance(seed + 1)
        out[country] = tuple(dict.fromkeys(fake.city() for _ in range(200)))
    return out


def slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return _NON_ALNUM.sub("", ascii_name.replace("&", "and"))[:40] or "company"


@functools.cache
def _split_legal_form(base: str) -> tuple[str, str]:
    """A company name cut before its legal form: ("Heser", "GmbH & Co. KG"), ("Smith, Jones and Brown", "").

    The cut is after the fewest words that normalize as the whole name does, so an industry word
    joined at the cut lands where a registry has it, before the legal form.
    """
    from services.conflict.domain.identity import normalize_name

    words, key = base.split(), normalize_name(base)
    cut = next(k for k in range(1, len(words) + 1) if normalize_name(" ".join(words[:k])) == key)
    return " ".join(words[:cut]).rstrip(","), " ".join(words[cut:])


@dataclass(frozen=True, slots=True)
class Customer:
    name: str
    country: str
    domain: str  # registrable, e.g. "krokerlogistics.de"
    city: str
    duns: str | None
    tax_id: str | None

    def as_registered(self, rng: random.Random) -> dict:
        """The customer as one partner types it: name, domain form and optional fields vary."""
        name = self.name
        roll = rng.random()
        if roll < 0.1:
            name = name.upper()
        elif roll < 0.2:
            name = f"The {name}"
        elif roll < 0.3 and self.country == "US":
            name = f"{name}, Inc."
        out: dict = {"name": name, "country": self.country, "city": self.city}
        roll = rng.random()
        if roll < 0.5:
            out["domain"] = f"https://www.{self.domain}"
        elif roll < 0.8:
            out["domain"] = self.domain
        elif roll < 0.9:
            out["domain"] = f"sales@{self.domain}"
        if self.duns and rng.random() < 0.7:
            out["duns"] = self.duns
        if self.tax_id and rng.random() < 0.7:
            out["tax_id"] = self.tax_id
        return out


def customer(seed: int, index: int) -> Customer:
    """Customer number `index` of the universe of `seed`: the same inputs give the same customer."""
    rng = random.Random(seed * 1_000_003 + index)
    country = rng.choices(tuple(COUNTRY_WEIGHTS), weights=tuple(COUNTRY_WEIGHTS.values()))[0]
    core, legal_form = _split_legal_form(rng.choice(_company_bases(seed)[country]))
    if rng.random() < 0.85:
        core = f"{core} {rng.choice(INDUSTRIES)}"  # "Heser Pharma GmbH & Co. KG", as registries write it
    name = f"{core} {legal_form}".strip()
    domain_slug = slug(core)  # "Smith, Jones and Brown" is smithjonesandbrown.com, not smith.com
    if rng.random() < 0.5:
        domain_slug = f"{domain_slug}{index % 997}"  # many firms share a name; their domains differ
    duns = f"{rng.randrange(10**8, 10**9)}" if rng.random() < 0.3 else None
    tax_id = f"{country}{rng.randrange(10**8, 10**9)}" if rng.random() < 0.2 else None
    return Customer(name, country, f"{domain_slug}.{TLDS[country]}", rng.choice(_cities(seed)[country]), duns, tax_id)


@dataclass(frozen=True, slots=True)
class Partner:
    partner_id: str
    name: str
    tier: str
    type: str


def partners(seed: int, count: int) -> list[Partner]:
    """`count` partners with tiers in proportion (10% platinum ... 40% registered)."""
    rng = random.Random(seed + 2)
    tiers = [tier for tier, share in TIERS.items() for _ in range(max(1, round(share * count)))][:count]
    bases = [base for names in _company_bases(seed).values() for base in names]
    return [
        Partner(f"p{i:04d}", rng.choice(bases), tiers[i % len(tiers)], rng.choice(PARTNER_TYPES)) for i in range(count)
    ]


def registration_body(rng: random.Random, cust: Customer, external_ref: str, today: dt.date) -> dict:
    products = sorted(set(rng.choices(PRODUCTS, weights=PRODUCT_WEIGHTS, k=rng.choice((1, 1, 2, 2, 3)))))
    amount = rng.choice((5_000, 12_000, 24_000, 40_000, 75_000, 120_000, 250_000, 600_000)) * rng.uniform(0.8, 1.2)
    body = {
        "external_ref": external_ref,
        "customer": cust.as_registered(rng),
        "products": products,
        "deal_type": rng.choices(("new", "renewal", "expansion"), weights=(70, 15, 15))[0],
        "estimated_value": {"amount": f"{amount:.2f}", "currency": CURRENCIES[cust.country]},
        "expected_close": (today + dt.timedelta(days=rng.randrange(30, 180))).isoformat(),
    }
    if rng.random() < 0.3:
        body["notes"] = f"Champion in {rng.choice(('IT', 'security', 'procurement', 'finance'))}; budget approved."
    return body


def registration_requests(seed: int, label: str, count: int, partner_count: int) -> list[tuple[int, bytes]]:
    """(partner index, JSON body) for `count` registrations of the phase `label`, reproducibly."""
    rng = random.Random(f"{seed}/{label}")
    pool = max(50, count * 3)
    universe = rng.randrange(1, 10**6)  # each phase registers its own program's customers
    today = dt.date.today()
    encode = msgspec.json.encode
    out = []
    cache: dict[int, Customer] = {}
    for i in range(count):
        index = rng.randrange(pool)
        cust = cache.get(index) or cache.setdefault(index, customer(seed, universe * 10**7 + index))
        body = registration_body(rng, cust, f"opp-{label}-{i:07d}", today)
        out.append((rng.randrange(partner_count), encode(body)))
    return out
