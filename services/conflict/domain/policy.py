"""A program's policy (SPEC section 8): parsing a published document, and the pure look-ups
the rules, ownership, review and escalation code need. No clock: callers add durations to
times they were given.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from services.conflict.domain.policy_document import parse_policy_document, policy_to_json
from services.conflict.domain.policy_model import (
    DEFAULT_POLICY,
    Appeal,
    EscalationLevel,
    Extension,
    Fx,
    MatchSettings,
    Money,
    Policy,
    Review,
    Rule,
)

__all__ = [
    "BELOW_MINIMUM_VALUE",
    "CURRENCY_NOT_SUPPORTED",
    "DEFAULT_POLICY",
    "PRODUCT_NOT_IN_PROGRAM",
    "Appeal",
    "EscalationLevel",
    "Extension",
    "Fx",
    "MatchSettings",
    "Money",
    "Policy",
    "Review",
    "Rule",
    "appeal_window",
    "auto_approvable",
    "duration",
    "eligibility",
    "escalation_level",
    "expiry_warning",
    "extension_days",
    "extension_request_window",
    "final_level",
    "parse_policy_document",
    "policy_to_json",
    "protection_window",
    "review_sla",
    "sla_for_level",
    "tie_window",
    "tier_rank",
    "value_in_base",
]


BELOW_MINIMUM_VALUE = "below_minimum_value"
CURRENCY_NOT_SUPPORTED = "currency_not_supported"
PRODUCT_NOT_IN_PROGRAM = "product_not_in_program"


def duration(*, days: float = 0, hours: float = 0, minutes: float = 0) -> timedelta:
    """A policy duration as a timedelta, rounded to the microsecond (`hours=0.001` is 3.6 s)."""
    return timedelta(days=days, hours=hours, minutes=minutes)


def protection_window(policy: Policy, tier: str | None) -> timedelta:
    """How long an approval protects a partner of `tier` (its `tier_protection_days` if any)."""
    return duration(days=policy.tier_protection_days.get(tier or "", policy.protection_days))


def escalation_level(policy: Policy, level: int) -> EscalationLevel:
    """The escalation level numbered `level`; ValueError when the policy has no such level."""
    if not 1 <= level <= len(policy.escalation):
        raise ValueError(f"policy version {policy.version} has no escalation level {level}")
    return policy.escalation[level - 1]


def final_level(policy: Policy) -> int:
    """The last escalation level, after which `on_final_breach` decides."""
    return len(policy.escalation)


def sla_for_level(policy: Policy, level: int) -> timedelta:
    """How long the authority at `level` has before the conflict escalates further."""
    return duration(hours=escalation_level(policy, level).sla_hours)


def review_sla(policy: Policy) -> timedelta:
    return duration(hours=policy.review.sla_hours)


def tie_window(policy: Policy) -> timedelta:
    return duration(minutes=policy.tie_window_minutes)


def extension_days(policy: Policy) -> timedelta:
    """How much one granted extension adds to the end of protection."""
    return duration(days=policy.extension.days)


def extension_request_window(policy: Policy) -> timedelta:
    """How long before the end of protection an extension may be requested."""
    return duration(days=policy.extension.request_window_days)


def expiry_warning(policy: Policy) -> timedelta:
    """How long before the end of protection `ownership.expiring` fires."""
    return duration(days=policy.expiry_warning_days)


def appeal_window(policy: Policy) -> timedelta:
    """How long after a decision a partner may appeal it."""
    return duration(days=policy.appeal.window_days)


def value_in_base(policy: Policy, amount: Decimal, currency: str) -> Decimal | None:
    """`amount` in `fx.base` (amount * rate, the base itself at rate 1); None without a rate."""
    if currency == policy.fx.base:
        return amount
    rate = policy.fx.rates.get(currency)
    return None if rate is None else amount * Decimal(rate)


def _is_below(policy: Policy, amount: Decimal, currency: str, limit: Money) -> bool | None:
    """Whether amount < limit; None when the two cannot be compared (no rate)."""
    if currency == limit.currency:  # same currency: exact, whatever fx says
        return amount < limit.value
    value, floor = value_in_base(policy, amount, currency), value_in_base(policy, limit.value, limit.currency)
    if value is None or floor is None:
        return None
    return value < floor


def eligibility(policy: Policy, products: list[str], amount: Decimal, currency: str) -> str | None:
    """The reason code that makes a claim ineligible, or None when it is eligible.

    Checked in this order, first failure wins: a product outside `products`
    (`product_not_in_program`: the program does not cover the deal at all), then the value
    against `minimum_value`: a currency that cannot be compared with it
    (`currency_not_supported`), then a value below it (`below_minimum_value`). Without a
    `minimum_value`, any currency is eligible.
    """
    if policy.products is not None and any(product not in policy.products for product in products):
        return PRODUCT_NOT_IN_PROGRAM
    if policy.minimum_value is None:
        return None
    below = _is_below(policy, amount, currency, policy.minimum_value)
    if below is None:
        return CURRENCY_NOT_SUPPORTED
    return BELOW_MINIMUM_VALUE if below else None


def tier_rank(policy: Policy, tier: str | None) -> int:
    """A tier's rank in `tiers` (0 is the best); unlisted tiers (and None) rank last, together."""
    return policy.tiers.index(tier) if tier in policy.tiers else len(policy.tiers)


def auto_approvable(policy: Policy, tier: str | None, amount: Decimal, currency: str) -> bool:
    """Whether an uncontested registration is approved at once rather than sent to review.

    True when review is disabled, the partner's tier is in `auto_approve_tiers`, or the
    value is strictly below `auto_approve_below` (a value that cannot be converted is not).
    """
    review = policy.review
    if not review.enabled or (tier is not None and tier in review.auto_approve_tiers):
        return True
    if review.auto_approve_below is None:
        return False
    return _is_below(policy, amount, currency, review.auto_approve_below) is True
