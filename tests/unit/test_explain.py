"""Explain (SPEC 13): the matched tier with the values it reads, and what failed in the tiers above."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmenter.features import AvgOrderValue
from segmenter.rules import FEATURES, default_rules, parse_rules
from segmenter.rules.explain import (
    DimensionExplanation,
    explain_dimension,
    explain_rules,
    explanations_json,
    render_text,
    render_value,
)

RULES = default_rules()


def customer(**values: Any) -> dict[str, Any]:
    """A customer with purchases; everything not given is unremarkable."""
    base: dict[str, Any] = {
        "lifetime_purchases": 3,
        "lifetime_monetary": 4_000,
        "frequency": 2,
        "monetary": 4_000,
        "engagement": 0,
        "recency_days": 10,
        "tenure_days": 100,
        "days_since_last_interaction": None,
        "avg_order_value": AvgOrderValue(4_000, 2),
    }
    base.update(values)
    return base


PROSPECT = dict.fromkeys(FEATURES) | {
    "lifetime_purchases": 0,
    "lifetime_monetary": 0,
    "frequency": 0,
    "monetary": 0,
    "engagement": 0,
}


def failed(explanation: DimensionExplanation) -> list[tuple[str, str, dict[str, Any]]]:
    """(tier, failed part, its values) for each tier above the match."""
    return [(f.tier, f.failed.condition, f.failed.values) for f in explanation.failed]


def lifecycle(features: dict[str, Any]) -> DimensionExplanation:
    return explain_dimension(RULES.dimension("lifecycle"), features)


def value(features: dict[str, Any]) -> DimensionExplanation:
    return explain_dimension(RULES.dimension("value"), features)


def engagement(features: dict[str, Any]) -> DimensionExplanation:
    return explain_dimension(RULES.dimension("engagement"), features)


# ------------------------------------------------------------------------------------------ lifecycle

PROSPECT_FAILED = ("prospect", "lifetime_purchases == 0", {"lifetime_purchases": 3})


def test_lifecycle_prospect() -> None:
    explanation = lifecycle(PROSPECT)
    assert (explanation.tier, explanation.condition) == ("prospect", "lifetime_purchases == 0")
    assert explanation.values == {"lifetime_purchases": 0}
    assert explanation.failed == ()


def test_lifecycle_churned() -> None:
    explanation = lifecycle(customer(recency_days=200))
    assert (explanation.tier, explanation.condition, explanation.values) == (
        "churned",
        "recency_days >= 180",
        {"recency_days": 200},
    )
    assert failed(explanation) == [PROSPECT_FAILED]


def test_lifecycle_at_risk() -> None:
    explanation = lifecycle(customer(recency_days=120))
    assert (explanation.tier, explanation.values) == ("at_risk", {"recency_days": 120})
    assert failed(explanation) == [PROSPECT_FAILED, ("churned", "recency_days >= 180", {"recency_days": 120})]


def test_lifecycle_new() -> None:
    explanation = lifecycle(customer(recency_days=3, tenure_days=10))
    assert (explanation.tier, explanation.condition, explanation.values) == (
        "new",
        "tenure_days < 30",
        {"tenure_days": 10},
    )
    assert failed(explanation) == [
        PROSPECT_FAILED,
        ("churned", "recency_days >= 180", {"recency_days": 3}),
        ("at_risk", "recency_days >= 90", {"recency_days": 3}),
    ]


def test_lifecycle_loyal() -> None:
    explanation = lifecycle(customer(frequency=6, tenure_days=200))
    assert explanation.tier == "loyal"
    assert explanation.condition == "frequency >= 6 and tenure_days >= 180"
    assert explanation.values == {"frequency": 6, "tenure_days": 200}
    assert failed(explanation)[-1] == ("new", "tenure_days < 30", {"tenure_days": 200})
    assert len(explanation.failed) == 4


def test_lifecycle_active_names_only_the_failing_operand_of_loyal() -> None:
    explanation = lifecycle(customer(frequency=2, tenure_days=200))
    assert (explanation.tier, explanation.condition, explanation.values) == ("active", "true", {})
    loyal = explanation.failed[-1]
    assert (loyal.tier, loyal.condition) == ("loyal", "frequency >= 6 and tenure_days >= 180")
    assert loyal.failed.kind == "and"
    assert [(p.kind, p.condition, p.values) for p in loyal.failed.parts] == [
        ("comparison", "frequency >= 6", {"frequency": 2})
    ]
    assert [f.tier for f in explanation.failed] == ["prospect", "churned", "at_risk", "new", "loyal"]


def test_lifecycle_active_with_both_operands_of_loyal_failing() -> None:
    loyal = lifecycle(customer(frequency=2, tenure_days=100)).failed[-1]
    assert [p.condition for p in loyal.failed.parts] == ["frequency >= 6", "tenure_days >= 180"]
    assert loyal.failed.values == {"frequency": 2, "tenure_days": 100}


def test_null_features_are_none() -> None:
    explanation = lifecycle(customer(recency_days=None, tenure_days=None))
    assert explanation.tier == "active"
    assert ("churned", "recency_days >= 180", {"recency_days": None}) in failed(explanation)
    assert "recency_days >= 180 failed (recency_days = null)" in render_text([explanation])
    # a feature absent from the mapping reads as null too
    assert lifecycle({"lifetime_purchases": 1}).failed[1].failed.values == {"recency_days": None}


# ------------------------------------------------------------------------------------------ value (money)


def test_value_none() -> None:
    explanation = value(PROSPECT)
    assert (explanation.tier, explanation.values, explanation.failed) == (
        "none",
        {"lifetime_purchases": 0},
        (),
    )


def test_value_vip_renders_money_in_currency_units() -> None:
    explanation = value(customer(monetary=100_000, frequency=6))
    assert explanation.tier == "vip"
    assert explanation.values == {"monetary": "1000.00", "frequency": 6}
    assert failed(explanation) == [("none", "lifetime_purchases == 0", {"lifetime_purchases": 3})]


def test_value_high_names_the_failing_part_of_vip() -> None:
    explanation = value(customer(monetary=30_000, frequency=7))
    assert (explanation.tier, explanation.values) == ("high", {"monetary": "300.00"})
    vip = explanation.failed[1]
    assert vip.tier == "vip"
    assert [(p.condition, p.values) for p in vip.failed.parts] == [
        ("monetary >= 1000", {"monetary": "300.00"})
    ]


def test_value_medium() -> None:
    explanation = value(customer(monetary=5_000, frequency=1))
    assert (explanation.tier, explanation.values) == ("medium", {"monetary": "50.00"})
    assert [f.tier for f in explanation.failed] == ["none", "vip", "high"]
    assert explanation.failed[2].failed.values == {"monetary": "50.00"}


def test_value_low() -> None:
    explanation = value(customer(monetary=4_999, frequency=1))
    assert (explanation.tier, explanation.condition, explanation.values) == ("low", "true", {})
    assert failed(explanation)[-1] == ("medium", "monetary >= 50", {"monetary": "49.99"})
    vip = explanation.failed[1].failed
    assert vip.values == {"monetary": "49.99", "frequency": 1}


# ------------------------------------------------------------------------------------------ engagement


@pytest.mark.parametrize(
    ("count", "tier", "failed_tiers"),
    [
        (25, "highly_engaged", []),
        (3, "engaged", ["highly_engaged"]),
        (2, "passive", ["highly_engaged", "engaged"]),
    ],
)
def test_engagement_tiers(count: int, tier: str, failed_tiers: list[str]) -> None:
    explanation = engagement(customer(engagement=count))
    assert explanation.tier == tier
    assert [f.tier for f in explanation.failed] == failed_tiers
    assert all(f.failed.values == {"engagement": count} for f in explanation.failed)


def test_every_default_tier_is_explained() -> None:
    """Customers built to hit each tier of the default rules: explain agrees with classify on every one."""
    customers = [
        PROSPECT,
        customer(recency_days=200),
        customer(recency_days=120),
        customer(recency_days=3, tenure_days=10),
        customer(frequency=6, tenure_days=200, monetary=100_000, engagement=25),
        customer(monetary=30_000, engagement=3),
        customer(monetary=5_000),
        customer(monetary=4_999),
    ]
    seen: set[tuple[str, str]] = set()
    for features in customers:
        explanations = explain_rules(RULES, features)
        assert tuple(e.tier for e in explanations) == RULES.classify(features)
        seen.update((e.dimension, e.tier) for e in explanations)
    every = {(d.name, t.name) for d in RULES.dimensions for t in d.tiers}
    assert seen == every


# ------------------------------------------------------------------------------------------ text and JSON


def test_text_rendering() -> None:
    text = render_text(
        explain_rules(RULES, customer(recency_days=120, monetary=12_050, frequency=3, engagement=4))
    )
    assert text == (
        "lifecycle: at_risk  because recency_days >= 90 (recency_days = 120)\n"
        "  not prospect: lifetime_purchases == 0 failed (lifetime_purchases = 3)\n"
        "  not churned: recency_days >= 180 failed (recency_days = 120)\n"
        "value: medium  because monetary >= 50 (monetary = 120.50)\n"
        "  not none: lifetime_purchases == 0 failed (lifetime_purchases = 3)\n"
        "  not vip: monetary >= 1000 failed (monetary = 120.50); frequency >= 6 failed (frequency = 3)\n"
        "  not high: monetary >= 300 failed (monetary = 120.50)\n"
        "engagement: engaged  because engagement >= 3 (engagement = 4)\n"
        "  not highly_engaged: engagement >= 20 failed (engagement = 4)\n"
    )


def test_json_is_plain_and_round_trips() -> None:
    document = explanations_json(explain_rules(RULES, customer(monetary=12_050, frequency=3)))
    assert json.loads(json.dumps(document)) == document
    value_doc = document[1]
    assert value_doc["dimension"] == "value" and value_doc["tier"] == "medium"
    assert value_doc["values"] == {"monetary": "120.50"}
    vip = value_doc["failed"][1]
    assert vip == {
        "tier": "vip",
        "condition": "monetary >= 1000 and frequency >= 6",
        "failed": {
            "kind": "and",
            "condition": "monetary >= 1000 and frequency >= 6",
            "values": {"monetary": "120.50", "frequency": 3},
            "parts": [
                {"kind": "comparison", "condition": "monetary >= 1000", "values": {"monetary": "120.50"}},
                {"kind": "comparison", "condition": "frequency >= 6", "values": {"frequency": 3}},
            ],
        },
    }


CUSTOM = parse_rules(
    "version: 1\n"
    "features:\n  spend_30d: {sum: purchases, days: 30}\n"
    "dimensions:\n  d:\n"
    '    - {tier: a, when: \'attr.region in ["EU", "UK"] and (spend_30d >= 100 or frequency > 5)\'}\n'
    "    - {tier: b, when: 'not attr.vip == true'}\n"
    "    - {tier: c, when: 'false'}\n"
    "    - {tier: e, when: 'attr.region == \"EU\"'}\n"
    "    - {tier: z, when: 'true'}\n"
)


def test_or_not_false_attributes_and_custom_money() -> None:
    features = {"attr.region": "UK", "attr.vip": True, "spend_30d": 5_050, "frequency": 2}
    (explanation,) = explain_rules(CUSTOM, features)
    assert explanation.tier == "z"
    a, b, c, e = explanation.failed
    # `and`: only the failing operand, an `or`, whose every operand failed
    assert a.failed.kind == "and" and len(a.failed.parts) == 1
    either = a.failed.parts[0]
    assert (either.kind, either.condition) == ("or", "spend_30d >= 100 or frequency > 5")
    assert [(p.kind, p.condition, p.values) for p in either.parts] == [
        ("comparison", "spend_30d >= 100", {"spend_30d": "50.50"}),
        ("comparison", "frequency > 5", {"frequency": 2}),
    ]
    # `not X`: the not node, X held
    assert (b.failed.kind, b.failed.condition, b.failed.values) == (
        "not",
        "not attr.vip == true",
        {"attr.vip": True},
    )
    assert (c.failed.kind, c.failed.condition, c.failed.values) == ("false", "false", {})
    assert (e.failed.kind, e.failed.values) == ("attribute", {"attr.region": "UK"})
    assert render_text([explanation]) == (
        "d: z  because true (no tier above matched)\n"
        "  not a: spend_30d >= 100 or frequency > 5 failed (spend_30d = 50.50, frequency = 2)\n"
        "  not b: not attr.vip == true failed (attr.vip = true)\n"
        "  not c: false never holds\n"
        '  not e: attr.region == "EU" failed (attr.region = "UK")\n'
    )


def test_missing_attributes_are_none_and_shown_absent() -> None:
    (explanation,) = explain_rules(CUSTOM, {"spend_30d": 20_000})
    assert explanation.tier == "b"  # `not attr.vip == true` holds when vip is missing
    assert explanation.values == {"attr.vip": None}
    (a,) = explanation.failed
    assert [p.values for p in a.failed.parts] == [{"attr.region": None}]
    assert render_text([explanation]).splitlines() == [
        "d: b  because not attr.vip == true (attr.vip = absent)",
        '  not a: attr.region in ["EU", "UK"] failed (attr.region = absent)',
    ]


def test_matched_condition_reads_every_value() -> None:
    (explanation,) = explain_rules(CUSTOM, {"attr.region": "EU", "spend_30d": 10_000, "frequency": 9})
    assert explanation.tier == "a"
    assert explanation.values == {"attr.region": "EU", "spend_30d": "100.00", "frequency": 9}


def test_render_value() -> None:
    money = frozenset({"monetary", "predicted_clv"})
    assert render_value("monetary", 12_345, money) == "123.45"
    assert render_value("monetary", -50, money) == "-0.50"
    assert render_value("avg_order_value", AvgOrderValue(1001, 2)) == "5.01"  # 500.5 cents, half up
    assert render_value("avg_order_value", Fraction(1001, 2)) == "5.01"
    assert render_value("predicted_clv", 25_050, money) == "250.50"
    assert render_value("p_alive", 0.1234567) == "0.123457"
    assert render_value("expected_purchases", 2.0) == "2.000000"
    assert render_value("frequency", 4) == 4
    assert render_value("frequency", None) is None
    assert render_value("attr.birth_year", 1985) == 1985
    assert render_value("attr.score", 0.1) == 0.1
    assert render_value("attr.flag", False) is False
    assert render_value("attr.region", "EU") == "EU"


FEATURE_MAPS = st.fixed_dictionaries(
    {
        "lifetime_purchases": st.integers(0, 10),
        "frequency": st.integers(0, 10),
        "monetary": st.integers(0, 200_000),
        "engagement": st.integers(0, 30),
        "recency_days": st.one_of(st.none(), st.integers(0, 400)),
        "tenure_days": st.one_of(st.none(), st.integers(0, 400)),
    }
)


@settings(max_examples=200, deadline=None)
@given(features=FEATURE_MAPS)
def test_explain_agrees_with_classify(features: dict[str, Any]) -> None:
    explanations = explain_rules(RULES, features)
    assert tuple(e.tier for e in explanations) == RULES.classify(features)
    for explanation, dimension in zip(explanations, RULES.dimensions, strict=True):
        names = [tier.name for tier in dimension.tiers]
        assert [f.tier for f in explanation.failed] == names[: names.index(explanation.tier)]
