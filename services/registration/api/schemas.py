"""Request bodies of the registration API, with their constraints (decoded by msgspec)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from contracts.common import Customer, Money

Id = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}\Z")]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Short = Annotated[str, Meta(min_length=1, max_length=100)]
Reason = Annotated[str, Meta(min_length=1, max_length=2000)]
Amount = Annotated[str, Meta(pattern=r"^\d{1,15}(\.\d{1,4})?$", description="decimal string, e.g. \"125000.00\"")]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217")]
Country = Annotated[str, Meta(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
Product = Annotated[str, Meta(min_length=1, max_length=64)]
Products = Annotated[list[Product], Meta(min_length=1, max_length=50)]
Notes = Annotated[str, Meta(max_length=10_000)]
PartnerType = Literal["reseller", "distributor", "msp", "si", "referral"]
DealType = Literal["new", "renewal", "expansion"]


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


class ProgramIn(Body, kw_only=True):
    name: Name


class PartnerIn(Body, kw_only=True):
    name: Name
    tier: Annotated[str, Meta(min_length=1, max_length=40)]
    type: PartnerType


class RegistrationIn(Body, kw_only=True):
    external_ref: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    customer: CustomerIn
    products: Products
    deal_type: DealType
    estimated_value: MoneyIn
    expected_close: dt.date
    notes: Notes | None = None


class RegistrationPatch(Body, kw_only=True):
    """Fields left out stay as they are; `notes: null` clears the notes."""

    customer: CustomerIn | msgspec.UnsetType = msgspec.UNSET
    products: Products | msgspec.UnsetType = msgspec.UNSET
    estimated_value: MoneyIn | msgspec.UnsetType = msgspec.UNSET
    expected_close: dt.date | msgspec.UnsetType = msgspec.UNSET
    notes: Notes | msgspec.UnsetType | None = msgspec.UNSET


class ReasonIn(Body, kw_only=True):
    reason: Reason | None = None


class AppealIn(Body, kw_only=True):
    reason: Reason


class OutcomeIn(Body, kw_only=True):
    result: Literal["won", "lost"]
    amount: Amount | None = None
    closed_on: dt.date
