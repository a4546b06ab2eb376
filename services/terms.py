"""Checks on a customer, products and money that a type alone cannot express (pure; both services use them)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

import pycountry

from contracts.common import Customer, Money

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def country_ok(code: str) -> bool:
    return pycountry.countries.get(alpha_2=code) is not None


def currency_ok(code: str) -> bool:
    return pycountry.currencies.get(alpha_3=code) is not None


def host_of(value: str) -> str | None:
    """The host of `value`, given as a bare host or as a URL; None when it is neither."""
    text = value.strip()
    if not text or any(c.isspace() for c in text):
        return None
    try:
        parts = urlsplit(text if "://" in text else f"//{text}")
        host = (parts.hostname or "").rstrip(".")
        host = host.encode("idna").decode("ascii").lower()
    except (ValueError, UnicodeError):
        return None
    labels = host.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return None
    return host


def money_errors(field: str, money: Money) -> list[tuple[str, str]]:
    errors = []
    try:
        amount = Decimal(money.amount)
        if not amount.is_finite() or amount < 0:
            errors.append((f"{field}.amount", "must be a non-negative decimal string"))
    except InvalidOperation:
        errors.append((f"{field}.amount", 'must be a decimal string such as "125000.00"'))
    if not currency_ok(money.currency):
        errors.append((f"{field}.currency", f"{money.currency!r} is not an ISO 4217 currency code"))
    return errors


def customer_errors(customer: Customer) -> list[tuple[str, str]]:
    errors = []
    if not customer.name.strip():
        errors.append(("customer.name", "must not be blank"))
    if not country_ok(customer.country):
        errors.append(("customer.country", f"{customer.country!r} is not an ISO 3166 alpha-2 country code"))
    if customer.domain is not None and host_of(customer.domain) is None:
        errors.append(("customer.domain", "must be a host name (acme.com) or a URL (https://www.acme.com)"))
    return errors


def product_errors(products: list[str]) -> list[tuple[str, str]]:
    if len(set(products)) != len(products):
        return [("products", "must not repeat a product")]
    return [("products", "must not contain blank names")] if any(not p.strip() for p in products) else []
