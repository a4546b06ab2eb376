"""Request-body shapes both APIs accept, with their constraints (decoded by msgspec)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from contracts.common import Customer, Money

Id = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}\Z")]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Short = Annotated[str, Meta(min_length=1, max_length=100)]
Reason = Annotated[str, Meta(min_length=1, max_length=2000)]
Amount = Annotated[str, Meta(pattern=r"^\d{1,15}(\.\d{1,4})?$", description='decimal string, e.g. "125000.00"')]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217")]
Country = Annotated[str, Meta(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
Product = Annotated[str, Meta(min_length=1, max_length=64)]
Products = Annotated[list[Product], Meta(min_length=1, max_length=50)]
Notes = Annotated[str, Meta(max_length=10_000)]


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class MoneyIn(Body, kw_only=True):
    amount: Amount
    currency: Currency

    def to_domain(self) -> Money:
        return Money(amount=self.amount, currency=self.currency)


class CustomerIn(Body, kw_only=True):
    name: Name
    country: Country
    domain: Annotated[str, Meta(min_length=1, max_length=2048)] | None = None
    region: Short | None = None
    city: Short | None = None
    postal_code: Annotated[str, Meta(min_length=1, max_length=20)] | None = None
    duns: Annotated[str, Meta(pattern=r"^\d{2}-?\d{3}-?\d{4}$")] | None = None
    tax_id: Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9 ./-]+$")] | None = None

    def to_domain(self) -> Customer:
        return Customer(**msgspec.structs.asdict(self))
