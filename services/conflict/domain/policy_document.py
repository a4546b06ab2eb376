"""Reading a published policy document: default-filling, validation with field paths, and
writing a policy back out as JSON.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import msgspec

from services.conflict.domain.errors import NotJson, PolicyInvalid
from services.conflict.domain.policy_model import (
    CURRENCY_PATTERN,
    DECIMAL_PATTERN,
    DEFAULT_POLICY,
    Fx,
    Policy,
)

_AT = re.compile(r"^(?P<message>.*?)(?: - at (?:`(?P<key>key)` in )?`(?P<path>\$[^`]*)`)?$", re.DOTALL)
# msgspec names a failed pattern by its regex; say what the value should look like instead.
_EXPECTED_MATCHING = "Expected `str` matching regex"
_PATTERN_MESSAGES = {
    f"{_EXPECTED_MATCHING} {CURRENCY_PATTERN!r}": "expected an ISO 4217 code of 3 upper-case letters",
    f"{_EXPECTED_MATCHING} {DECIMAL_PATTERN!r}": 'expected a non-negative decimal string such as "5000.00"',
}
_UNKNOWN_OR_MISSING = re.compile(r"^Object (?:contains unknown|missing required) field `(?P<name>[^`]*)`")


def parse_policy_document(raw: bytes) -> Policy:
    """Parse a published policy body, filling omitted top-level fields from `DEFAULT_POLICY`.

    A top-level field that is given replaces the default's whole value (a given `review`
    is a complete review). A `version` in the body is ignored: the publisher assigns it.
    Raises `NotJson` for bytes that are not JSON and `PolicyInvalid` for anything else wrong.
    """
    try:
        document = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError) as e:
        raise NotJson([("", f"not valid JSON: {e}")]) from e
    if not isinstance(document, dict):
        raise PolicyInvalid([("", "expected a JSON object")])
    document.pop("version", None)
    merged = msgspec.to_builtins(DEFAULT_POLICY) | document | {"version": 0}
    try:
        policy = msgspec.convert(merged, Policy)
    except msgspec.ValidationError as e:
        raise PolicyInvalid([_field_error(str(e))]) from e
    errors = _cross_field_errors(policy)
    if errors:
        raise PolicyInvalid(errors)
    # Domains compare case-insensitively; store them folded once.
    match = msgspec.structs.replace(policy.match, ignore_domains=[d.lower() for d in policy.match.ignore_domains])
    return msgspec.structs.replace(policy, match=match)


def _field_error(text: str) -> tuple[str, str]:
    """Turn msgspec's "message - at `$.a[0].b`" into ("a[0].b", "message")."""
    found = _AT.match(text)
    assert found is not None  # the pattern matches any text
    message, path = found["message"], (found["path"] or "$").removeprefix("$").removeprefix(".")
    message = _PATTERN_MESSAGES.get(message, message)
    if found["key"]:
        message = f"{message} (in a key)"
    elif path.endswith("[...]"):  # msgspec does not name the key of a bad dict value
        path, message = path.removesuffix("[...]"), f"{message} (in a value)"
    named = _UNKNOWN_OR_MISSING.match(message)
    if named:
        path = f"{path}.{named['name']}" if path else named["name"]
        message = "unknown field" if "unknown" in message else "required field is missing"
    return path, message


def _cross_field_errors(policy: Policy) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    tiers = set(policy.tiers)
    for i, tier in enumerate(policy.tiers):
        if tier in policy.tiers[:i]:
            errors.append((f"tiers[{i}]", f"duplicate tier {tier!r}"))
    for tier, days in policy.tier_protection_days.items():
        if tier not in tiers:
            errors.append((f"tier_protection_days.{tier}", f"{tier!r} is not one of tiers"))
        if not 0 < days <= 36_500:
            errors.append((f"tier_protection_days.{tier}", "expected days > 0 and <= 36500"))
    for i, tier in enumerate(policy.review.auto_approve_tiers):
        if tier not in tiers:
            errors.append((f"review.auto_approve_tiers[{i}]", f"{tier!r} is not one of tiers"))
    for i, rule in enumerate(policy.rules):
        if rule in policy.rules[:i]:
            errors.append((f"rules[{i}]", f"duplicate rule {rule!r}"))
    roles: set[str] = set()
    for i, level in enumerate(policy.escalation):
        if level.level != i + 1:
            errors.append((f"escalation[{i}].level", f"levels are numbered 1..n in order; expected {i + 1}"))
        if level.role in roles:
            errors.append((f"escalation[{i}].role", f"role {level.role!r} already has a level"))
        roles.add(level.role)
    for currency, rate in policy.fx.rates.items():
        if not re.fullmatch(DECIMAL_PATTERN, rate) or len(rate) > 32 or Decimal(rate) <= 0:
            errors.append((f"fx.rates.{currency}", 'expected a positive decimal string such as "1.08"'))
        elif currency == policy.fx.base and Decimal(rate) != 1:
            errors.append((f"fx.rates.{currency}", "the base currency's rate is 1"))
    for field, money in (
        ("minimum_value", policy.minimum_value),
        ("review.auto_approve_below", policy.review.auto_approve_below),
    ):
        if money is not None and not _convertible(policy.fx, money.currency):
            message = f"{money.currency} is neither fx.base nor has a rate in fx.rates"
            errors.append((f"{field}.currency", message))
    return errors


def _convertible(fx: Fx, currency: str) -> bool:
    return currency == fx.base or currency in fx.rates


def policy_to_json(policy: Policy) -> dict[str, Any]:
    """The policy as JSON builtins for the API, with whole-number durations written as integers."""
    return _tidy(msgspec.to_builtins(policy))


def _tidy(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _tidy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tidy(v) for v in value]
    return value
