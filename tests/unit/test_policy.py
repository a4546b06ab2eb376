"""The program policy: defaults, the merge rule, validation with field paths, and look-ups."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.conflict.domain.errors import DomainError, NotJson, PolicyInvalid
from services.conflict.domain.policy import (
    BELOW_MINIMUM_VALUE,
    CURRENCY_NOT_SUPPORTED,
    DEFAULT_POLICY,
    PRODUCT_NOT_IN_PROGRAM,
    Appeal,
    EscalationLevel,
    Extension,
    Fx,
    MatchSettings,
    Money,
    Policy,
    Review,
    appeal_window,
    auto_approvable,
    duration,
    eligibility,
    escalation_level,
    expiry_warning,
    extension_days,
    extension_request_window,
    final_level,
    parse_policy_document,
    policy_to_json,
    protection_window,
    review_sla,
    sla_for_level,
    tie_window,
    tier_rank,
    value_in_base,
)

pytestmark = pytest.mark.unit

# The example policy of SPEC section 8, verbatim.
EXAMPLE: dict[str, Any] = {
    "tiers": ["platinum", "gold", "silver", "registered"],
    "protection_days": 90,
    "tier_protection_days": {"platinum": 120},
    "extension": {"days": 30, "max_extensions": 1, "request_window_days": 21},
    "expiry_warning_days": 14,
    "minimum_value": {"amount": "5000", "currency": "USD"},
    "fx": {"base": "USD", "rates": {"EUR": "1.08", "GBP": "1.27"}},
    "products": ["firewall", "support", "cloud"],
    "match": {
        "name_similarity": 0.6,
        "require_product_overlap": True,
        "ignore_domains": ["gmail.com", "outlook.com", "yahoo.com"],
    },
    "tie_window_minutes": 0,
    "review": {
        "enabled": False,
        "auto_approve_below": {"amount": "25000", "currency": "USD"},
        "auto_approve_tiers": ["platinum"],
        "sla_hours": 48,
        "on_breach": "approve",
    },
    "rules": [
        "direct_sales_priority",
        "active_protection",
        "incumbent_on_renewal",
        "first_to_register",
        "tier_precedence",
    ],
    "escalation": [
        {"level": 1, "role": "channel_manager", "sla_hours": 48},
        {"level": 2, "role": "regional_director", "sla_hours": 72},
        {"level": 3, "role": "vp_channel", "sla_hours": 120},
    ],
    "on_final_breach": "first_to_register",
    "appeal": {"window_days": 10, "max_appeals": 1},
}
REVIEW = EXAMPLE["review"]


def parse(document: Any) -> Policy:
    return parse_policy_document(json.dumps(document).encode())


def errors_of(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(PolicyInvalid) as caught:
        parse(document)
    return caught.value.errors


# --- defaults and merge -----------------------------------------------------------------------


def test_default_is_the_example_without_minimum_rates_and_products() -> None:
    expected = {k: v for k, v in EXAMPLE.items() if k not in ("minimum_value", "products")}
    expected |= {"fx": {"base": "USD", "rates": {}}, "minimum_value": None, "products": None, "version": 0}
    assert policy_to_json(DEFAULT_POLICY) == expected


def test_an_empty_document_is_the_default() -> None:
    assert parse({}) == DEFAULT_POLICY
    assert parse({}).version == 0


def test_the_spec_example_parses() -> None:
    policy = parse(EXAMPLE)
    assert policy.minimum_value == Money(amount="5000", currency="USD")
    assert policy.fx.rates == {"EUR": "1.08", "GBP": "1.27"}
    assert policy.products == ["firewall", "support", "cloud"]
    assert policy_to_json(policy) == EXAMPLE | {"version": 0}


def test_a_given_field_replaces_the_defaults_whole_value() -> None:
    policy = parse({"review": {"enabled": True, "sla_hours": 24, "on_breach": "reject"}})
    assert policy.review.enabled is True
    assert policy.review.sla_hours == 24
    assert policy.review.auto_approve_below is None  # not the default's 25000 USD
    assert policy.review.auto_approve_tiers == []  # not the default's ["platinum"]
    assert policy.escalation == DEFAULT_POLICY.escalation  # omitted: the default's


def test_omitted_fields_take_the_default_and_version_in_the_body_is_ignored() -> None:
    policy = parse({"protection_days": 30, "version": 7})
    assert policy.protection_days == 30
    assert policy.version == 0
    assert policy.tiers == DEFAULT_POLICY.tiers


def test_null_clears_an_optional_field() -> None:
    assert parse(EXAMPLE | {"minimum_value": None, "products": None}).products is None


def test_ignore_domains_are_folded_to_lower_case() -> None:
    match = {"name_similarity": 0.8, "require_product_overlap": False, "ignore_domains": ["GMail.com"]}
    assert parse({"match": match}).match.ignore_domains == ["gmail.com"]


def test_the_json_form_round_trips() -> None:
    policy = parse(EXAMPLE | {"tie_window_minutes": 0.5})
    assert parse(policy_to_json(policy)) == policy


# --- durations --------------------------------------------------------------------------------


def test_durations_accept_decimals() -> None:
    escalation = [{"level": 1, "role": "cm", "sla_hours": 0.001}]
    policy = parse(
        {
            "review": REVIEW | {"sla_hours": 0.001},
            "escalation": escalation,
            "tie_window_minutes": 0.5,
            "protection_days": 0.5,
            "tier_protection_days": {"platinum": 0.25},
        }
    )
    assert review_sla(policy) == timedelta(seconds=3.6)
    assert sla_for_level(policy, 1) == timedelta(seconds=3.6)
    assert tie_window(policy) == timedelta(seconds=30)
    assert protection_window(policy, "gold") == timedelta(hours=12)
    assert protection_window(policy, "platinum") == timedelta(hours=6)


def test_duration_helpers_on_the_default() -> None:
    policy = DEFAULT_POLICY
    assert duration(days=1, hours=1, minutes=1) == timedelta(days=1, hours=1, minutes=1)
    assert protection_window(policy, "platinum") == timedelta(days=120)
    assert protection_window(policy, "gold") == timedelta(days=90)
    assert protection_window(policy, None) == timedelta(days=90)
    assert [sla_for_level(policy, n) for n in (1, 2, 3)] == [timedelta(hours=h) for h in (48, 72, 120)]
    assert escalation_level(policy, 2).role == "regional_director"
    assert final_level(policy) == 3
    assert review_sla(policy) == timedelta(hours=48)
    assert tie_window(policy) == timedelta(0)
    assert extension_days(policy) == timedelta(days=30)
    assert extension_request_window(policy) == timedelta(days=21)
    assert expiry_warning(policy) == timedelta(days=14)
    assert appeal_window(policy) == timedelta(days=10)


@pytest.mark.parametrize("level", [0, 4, -1])
def test_a_level_the_policy_lacks_is_a_value_error(level: int) -> None:
    with pytest.raises(ValueError):
        sla_for_level(DEFAULT_POLICY, level)


# --- validation -------------------------------------------------------------------------------


def test_bytes_that_are_not_json_are_not_json() -> None:
    with pytest.raises(NotJson) as caught:
        parse_policy_document(b"{tiers: [")
    assert caught.value.errors[0][0] == ""
    assert isinstance(caught.value, PolicyInvalid)
    assert isinstance(caught.value, DomainError)


@pytest.mark.parametrize("document", [[], "policy", None, 3, True])
def test_a_document_that_is_not_an_object_is_invalid(document: Any) -> None:
    assert errors_of(document) == [("", "expected a JSON object")]


ESCALATION = EXAMPLE["escalation"]
RATES_EUR = {"base": "USD", "rates": {"EUR": "1.08"}}
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # (name, document, field, part of the message)
    ("unknown top-level", {"bogus": 1}, "bogus", "unknown field"),
    ("unknown nested", {"review": REVIEW | {"extra": 1}}, "review.extra", "unknown field"),
    ("missing nested", {"review": {"enabled": True}}, "review.sla_hours", "required field is missing"),
    ("string duration", {"protection_days": "90"}, "protection_days", "Expected `float`, got `str`"),
    ("bool duration", {"protection_days": True}, "protection_days", "got `bool`"),
    ("zero protection", {"protection_days": 0}, "protection_days", "> 0"),
    ("huge protection", {"protection_days": 1e9}, "protection_days", "<="),
    ("negative warning", {"expiry_warning_days": -1}, "expiry_warning_days", ">= 0"),
    ("negative tie window", {"tie_window_minutes": -0.5}, "tie_window_minutes", ">= 0"),
    ("zero review sla", {"review": REVIEW | {"sla_hours": 0}}, "review.sla_hours", "> 0"),
    ("bad on_breach", {"review": REVIEW | {"on_breach": "maybe"}}, "review.on_breach", "Invalid enum"),
    ("no escalation", {"escalation": []}, "escalation", "length >= 1"),
    ("level zero", {"escalation": [ESCALATION[0] | {"level": 0}]}, "escalation[0].level", ">= 1"),
    ("level gap", {"escalation": [ESCALATION[0], ESCALATION[2]]}, "escalation[1].level", "expected 2"),
    (
        "level out of order",
        {"escalation": [ESCALATION[1], ESCALATION[0]]},
        "escalation[0].level",
        "1..n in order",
    ),
    ("bad level sla", {"escalation": [ESCALATION[0] | {"sla_hours": "x"}]}, "escalation[0].sla_hours", "str"),
    ("zero level sla", {"escalation": [ESCALATION[0] | {"sla_hours": 0}]}, "escalation[0].sla_hours", "> 0"),
    (
        "duplicate role",
        {"escalation": [ESCALATION[0], ESCALATION[1] | {"role": "channel_manager"}]},
        "escalation[1].role",
        "already has a level",
    ),
    ("unknown rule", {"rules": ["first_to_register", "coin_flip"]}, "rules[1]", "Invalid enum"),
    ("duplicate rule", {"rules": ["first_to_register"] * 2}, "rules[1]", "duplicate rule"),
    ("duplicate tier", {"tiers": ["platinum", "platinum"]}, "tiers[1]", "duplicate tier"),
    ("empty tier name", {"tiers": ["platinum", ""]}, "tiers[1]", "length >= 1"),
    (
        "unknown tier protection",
        {"tier_protection_days": {"diamond": 10}},
        "tier_protection_days.diamond",
        "not one of tiers",
    ),
    (
        "zero tier protection",
        {"tier_protection_days": {"platinum": 0}},
        "tier_protection_days.platinum",
        "> 0",
    ),
    ("bad tier protection", {"tier_protection_days": {"platinum": "x"}}, "tier_protection_days", "value"),
    (
        "unknown auto-approve tier",
        {"review": REVIEW | {"auto_approve_tiers": ["diamond"]}},
        "review.auto_approve_tiers[0]",
        "not one of tiers",
    ),
    (
        "amount with comma",
        {"minimum_value": {"amount": "5,000", "currency": "USD"}},
        "minimum_value.amount",
        "decimal string",
    ),
    (
        "negative amount",
        {"minimum_value": {"amount": "-1", "currency": "USD"}},
        "minimum_value.amount",
        "non-negative",
    ),
    (
        "amount as number",
        {"minimum_value": {"amount": 5000, "currency": "USD"}},
        "minimum_value.amount",
        "int",
    ),
    (
        "lower-case currency",
        {"minimum_value": {"amount": "1", "currency": "usd"}},
        "minimum_value.currency",
        "ISO 4217",
    ),
    (
        "minimum without rate",
        {"minimum_value": {"amount": "1", "currency": "EUR"}},
        "minimum_value.currency",
        "has a rate",
    ),
    (
        "auto-approve without rate",
        {"review": REVIEW | {"auto_approve_below": {"amount": "1", "currency": "GBP"}}},
        "review.auto_approve_below.currency",
        "has a rate",
    ),
    ("lower-case base", {"fx": {"base": "usd", "rates": {}}}, "fx.base", "ISO 4217"),
    (
        "lower-case rate key",
        {"fx": {"base": "USD", "rates": {"eur": "1.08"}}},
        "fx.rates",
        "ISO 4217 code of 3 upper-case letters (in a key)",
    ),
    ("rate as number", {"fx": {"base": "USD", "rates": {"EUR": 1.08}}}, "fx.rates", "in a value"),
    ("rate not decimal", {"fx": {"base": "USD", "rates": {"EUR": "abc"}}}, "fx.rates.EUR", "positive"),
    ("zero rate", {"fx": {"base": "USD", "rates": {"EUR": "0"}}}, "fx.rates.EUR", "positive"),
    ("base rate not 1", {"fx": {"base": "USD", "rates": {"USD": "2"}}}, "fx.rates.USD", "rate is 1"),
    ("fx without base", {"fx": {"rates": {}}}, "fx.base", "required field is missing"),
    (
        "zero similarity",
        {"match": {"name_similarity": 0, "require_product_overlap": True}},
        "match.name_similarity",
        "> 0",
    ),
    (
        "similarity over 1",
        {"match": {"name_similarity": 1.5, "require_product_overlap": True}},
        "match.name_similarity",
        "<=",
    ),
    ("no products", {"products": []}, "products", "length >= 1"),
    ("empty product", {"products": ["firewall", ""]}, "products[1]", "length >= 1"),
    ("negative appeals", {"appeal": {"window_days": 10, "max_appeals": -1}}, "appeal.max_appeals", ">= 0"),
    ("fractional appeals", {"appeal": {"window_days": 10, "max_appeals": 1.5}}, "appeal.max_appeals", "int"),
    (
        "zero extension",
        {"extension": {"days": 0, "max_extensions": 1, "request_window_days": 21}},
        "extension.days",
        "> 0",
    ),
    ("bad final breach", {"on_final_breach": "coin_flip"}, "on_final_breach", "Invalid enum"),
    ("tiers not a list", {"tiers": "gold"}, "tiers", "Expected `array`"),
]


@pytest.mark.parametrize(("document", "field", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_invalid_policy_names_its_field(document: dict[str, Any], field: str, message: str) -> None:
    errors = errors_of(document)
    assert any(f == field and message in m for f, m in errors), errors


def test_cross_field_errors_are_all_reported() -> None:
    errors = errors_of({"tiers": ["gold", "silver"], "rules": ["tier_precedence"] * 2})
    assert [f for f, _ in errors] == [
        "tier_protection_days.platinum",
        "review.auto_approve_tiers[0]",
        "rules[1]",
    ]


def test_the_message_lists_the_errors() -> None:
    with pytest.raises(PolicyInvalid, match=r"escalation\[1\]\.level"):
        parse({"escalation": [ESCALATION[0], ESCALATION[0] | {"role": "vp"}]})


# --- money, eligibility, tiers, review ----------------------------------------------------------

STRICT = parse(EXAMPLE)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("100", "USD", Decimal("100")),
        ("100", "EUR", Decimal("108.00")),
        ("2", "GBP", Decimal("2.54")),
        ("100", "JPY", None),
    ],
)
def test_value_in_base_is_amount_times_rate(amount: str, currency: str, expected: Decimal | None) -> None:
    assert value_in_base(STRICT, Decimal(amount), currency) == expected


@pytest.mark.parametrize(
    ("products", "amount", "currency", "reason"),
    [
        (["firewall"], "5000", "USD", None),
        (["firewall", "cloud"], "125000.00", "USD", None),
        (["firewall"], "4999.99", "USD", BELOW_MINIMUM_VALUE),
        (["firewall"], "4630", "EUR", None),  # 5000.40 USD
        (["firewall"], "4629", "EUR", BELOW_MINIMUM_VALUE),  # 4999.32 USD
        (["firewall"], "3938", "GBP", None),  # 5001.26 USD
        (["firewall"], "1000000", "JPY", CURRENCY_NOT_SUPPORTED),
        (["router"], "10000", "USD", PRODUCT_NOT_IN_PROGRAM),
        (["firewall", "router"], "10000", "USD", PRODUCT_NOT_IN_PROGRAM),
        # Order: product, then currency, then value.
        (["router"], "1", "JPY", PRODUCT_NOT_IN_PROGRAM),
        (["router"], "1", "USD", PRODUCT_NOT_IN_PROGRAM),
    ],
)
def test_eligibility(products: list[str], amount: str, currency: str, reason: str | None) -> None:
    assert eligibility(STRICT, products, Decimal(amount), currency) == reason


def test_a_minimum_in_a_foreign_currency_compares_through_base() -> None:
    policy = parse(EXAMPLE | {"minimum_value": {"amount": "1000", "currency": "EUR"}})
    assert eligibility(policy, ["cloud"], Decimal("999.99"), "EUR") == BELOW_MINIMUM_VALUE
    assert eligibility(policy, ["cloud"], Decimal("1000"), "EUR") is None
    assert eligibility(policy, ["cloud"], Decimal("1080"), "USD") is None
    assert eligibility(policy, ["cloud"], Decimal("1079.99"), "USD") == BELOW_MINIMUM_VALUE
    assert eligibility(policy, ["cloud"], Decimal("1"), "CHF") == CURRENCY_NOT_SUPPORTED


def test_without_a_minimum_any_currency_and_product_is_eligible() -> None:
    assert eligibility(DEFAULT_POLICY, ["anything"], Decimal("1"), "XYZ") is None
    with_rates = parse({"fx": RATES_EUR})
    assert eligibility(with_rates, ["firewall"], Decimal("0"), "JPY") is None


@pytest.mark.parametrize(("tier", "rank"), [("platinum", 0), ("gold", 1), ("registered", 3), ("diamond", 4), (None, 4)])
def test_tier_rank_lower_is_better_and_unlisted_rank_last(tier: str | None, rank: int) -> None:
    assert tier_rank(DEFAULT_POLICY, tier) == rank


def test_tier_rank_with_no_tiers() -> None:
    policy = parse({"tiers": [], "tier_protection_days": {}, "review": REVIEW | {"auto_approve_tiers": []}})
    assert tier_rank(policy, "gold") == tier_rank(policy, "silver") == 0


REVIEWED = parse({"fx": RATES_EUR, "review": REVIEW | {"enabled": True}})


@pytest.mark.parametrize(
    ("tier", "amount", "currency", "expected"),
    [
        ("platinum", "1000000", "USD", True),
        ("gold", "24999.99", "USD", True),
        ("gold", "25000", "USD", False),
        ("gold", "23000", "EUR", True),  # 24840 USD
        ("gold", "23200", "EUR", False),  # 25056 USD
        ("gold", "1", "JPY", False),  # no rate: a person decides
        (None, "1", "USD", True),
    ],
)
def test_auto_approvable(tier: str | None, amount: str, currency: str, expected: bool) -> None:
    assert auto_approvable(REVIEWED, tier, Decimal(amount), currency) is expected


def test_auto_approvable_without_threshold_or_with_review_off() -> None:
    no_threshold = parse({"review": {"enabled": True, "sla_hours": 1, "on_breach": "reject"}})
    assert auto_approvable(no_threshold, "platinum", Decimal("1"), "USD") is False
    assert auto_approvable(DEFAULT_POLICY, "gold", Decimal("1000000"), "JPY") is True


# --- never anything but PolicyInvalid ------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


policy_keys = st.sampled_from(list(Policy.__struct_fields__))
nested_keys = st.sampled_from(
    sorted(
        {
            name
            for part in (Money, Extension, Fx, MatchSettings, Review, EscalationLevel, Appeal)
            for name in part.__struct_fields__
        }
        | {"EUR", "USD", "platinum"}
    )
)
policy_like = st.dictionaries(
    policy_keys,
    json_values | st.dictionaries(nested_keys, json_values, max_size=5) | st.sampled_from(list(EXAMPLE.values())),
    max_size=6,
)


def _only_policy_invalid(raw: bytes) -> None:
    try:
        policy = parse_policy_document(raw)
    except PolicyInvalid as e:
        assert all(isinstance(f, str) and isinstance(m, str) for f, m in e.errors)
        assert e.errors
    else:
        assert isinstance(policy, Policy)


@settings(max_examples=300)
@given(st.binary())
def test_arbitrary_bytes_raise_only_policy_invalid(raw: bytes) -> None:
    _only_policy_invalid(raw)


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=20), json_values, max_size=5))
def test_arbitrary_objects_raise_only_policy_invalid(document: dict[str, Any]) -> None:
    _only_policy_invalid(json.dumps(document).encode())


@settings(max_examples=500)
@given(policy_like)
def test_policy_shaped_objects_raise_only_policy_invalid(document: dict[str, Any]) -> None:
    _only_policy_invalid(json.dumps(document).encode())


def test_deeply_nested_json_raises_policy_invalid() -> None:
    _only_policy_invalid(b"[" * 100_000 + b"]" * 100_000)
    _only_policy_invalid(b'{"tiers":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
