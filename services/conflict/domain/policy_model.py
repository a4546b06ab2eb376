"""The shape of a program's policy (SPEC section 8) and the default, version 0.

Durations are floats in the unit their field names (`*_days`, `*_hours`, `*_minutes`)
so that decimals such as `sla_hours: 0.001` (3.6 s) work; `policy.py` turns them into
`timedelta`s. Money amounts stay decimal strings. Constraints apply when a document is
decoded (`policy.parse_policy_document`), not when these Structs are built in code.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import msgspec

DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
Currency = Annotated[str, msgspec.Meta(pattern=CURRENCY_PATTERN, description="ISO 4217 code")]
Amount = Annotated[str, msgspec.Meta(pattern=DECIMAL_PATTERN, max_length=32)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
# Upper bounds (a century) keep every duration inside what `timedelta` can hold.
Days = Annotated[float, msgspec.Meta(ge=0, le=36_500)]
PositiveDays = Annotated[float, msgspec.Meta(gt=0, le=36_500)]
PositiveHours = Annotated[float, msgspec.Meta(gt=0, le=876_000)]
Minutes = Annotated[float, msgspec.Meta(ge=0, le=52_560_000)]
Count = Annotated[int, msgspec.Meta(ge=0, le=1_000)]
Similarity = Annotated[float, msgspec.Meta(gt=0, le=1)]
Rule = Literal[
    "direct_sales_priority",
    "active_protection",
    "incumbent_on_renewal",
    "first_to_register",
    "tier_precedence",
]


class _Part(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Money(_Part):
    amount: Amount
    currency: Currency

    @property
    def value(self) -> Decimal:
        return Decimal(self.amount)


class Extension(_Part):
    days: PositiveDays
    max_extensions: Count
    request_window_days: Days


class Fx(_Part):
    base: Currency
    rates: dict[Currency, str] = {}  # decimal strings, checked when parsed


class MatchSettings(_Part):
    name_similarity: Similarity
    require_product_overlap: bool
    ignore_domains: list[Annotated[str, msgspec.Meta(min_length=1, max_length=253)]] = []


class Review(_Part):
    enabled: bool
    sla_hours: PositiveHours
    on_breach: Literal["approve", "reject"]
    auto_approve_below: Money | None = None
    auto_approve_tiers: list[Name] = []


class EscalationLevel(_Part):
    level: Annotated[int, msgspec.Meta(ge=1)]
    role: Name
    sla_hours: PositiveHours


class Appeal(_Part):
    window_days: Days
    max_appeals: Count


class Policy(_Part):
    """A program's rulebook; `version` is 0 for the default and set by the publisher otherwise."""

    tiers: list[Name]
    protection_days: PositiveDays
    tier_protection_days: dict[Name, float]  # bounds checked when parsed
    extension: Extension
    expiry_warning_days: Days
    fx: Fx
    match: MatchSettings
    tie_window_minutes: Minutes
    review: Review
    rules: list[Rule]
    escalation: Annotated[list[EscalationLevel], msgspec.Meta(min_length=1)]
    on_final_breach: Literal["first_to_register", "tier_precedence", "reject_all"]
    appeal: Appeal
    minimum_value: Money | None = None
    products: Annotated[list[Name], msgspec.Meta(min_length=1)] | None = None  # None: any product
    version: Annotated[int, msgspec.Meta(ge=0)] = 0


_DEFAULT = Policy(
    tiers=["platinum", "gold", "silver", "registered"],
    protection_days=90,
    tier_protection_days={"platinum": 120},
    extension=Extension(days=30, max_extensions=1, request_window_days=21),
    expiry_warning_days=14,
    fx=Fx(base="USD"),
    match=MatchSettings(
        name_similarity=0.6,
        require_product_overlap=True,
        ignore_domains=["gmail.com", "outlook.com", "yahoo.com"],
    ),
    tie_window_minutes=0,
    review=Review(
        enabled=False,
        auto_approve_below=Money(amount="25000", currency="USD"),
        auto_approve_tiers=["platinum"],
        sla_hours=48,
        on_breach="approve",
    ),
    rules=[
        "direct_sales_priority",
        "active_protection",
        "incumbent_on_renewal",
        "first_to_register",
        "tier_precedence",
    ],
    escalation=[
        EscalationLevel(level=1, role="channel_manager", sla_hours=48),
        EscalationLevel(level=2, role="regional_director", sla_hours=72),
        EscalationLevel(level=3, role="vp_channel", sla_hours=120),
    ],
    on_final_breach="first_to_register",
    appeal=Appeal(window_days=10, max_appeals=1),
)

# Round-tripped through msgspec so that the default is checked against the constraints and
# holds the same types (float durations) as a parsed policy.
DEFAULT_POLICY: Policy = msgspec.convert(msgspec.to_builtins(_DEFAULT), Policy)
"""Version 0, in force until a program publishes one: no minimum, any product, any currency."""
