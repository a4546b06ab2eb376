"""Request bodies of the registration API, with their constraints (decoded by msgspec)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from services.http.shapes import Amount, Body, CustomerIn, MoneyIn, Name, Notes, Products, Reason

PartnerType = Literal["reseller", "distributor", "msp", "si", "referral"]
DealType = Literal["new", "renewal", "expansion"]


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
