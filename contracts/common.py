"""Value types that several events carry."""

from __future__ import annotations

import datetime as dt

import msgspec


class Money(msgspec.Struct, frozen=True, kw_only=True):
    """An amount as a decimal string (never a float) in an ISO 4217 currency."""

    amount: str
    currency: str


class Customer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The identity of the customer a claim names."""

    name: str
    country: str
    domain: str | None = None
    region: str | None = None
    city: str | None = None
    postal_code: str | None = None
    duns: str | None = None
    tax_id: str | None = None


class ClaimRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One claim in a conflict, as ops see it."""

    claim_id: str
    kind: str  # "registration" | "direct_deal"
    submitted_at: dt.datetime
    registration_id: str | None = None
    direct_deal_id: str | None = None
    partner_id: str | None = None


class Evidence(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Why two claims name the same customer."""

    claims: list[str]
    keys: list[str]
    scores: dict[str, float] = {}
    overlapping_products: list[str] = []


class RuleVerdict(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One rule evaluated while deciding, in order, with what it concluded."""

    rule: str
    verdict: str  # "decided" | "no_separation" | "not_applicable"
    detail: str | None = None
    winner: str | None = None


class Share(msgspec.Struct, frozen=True, kw_only=True):
    claim_id: str
    percent: int
