"""Why a customer is in each tier (SPEC section 13, Explain).

Pure functions of a rule set and one feature mapping (the same mapping `RuleSet.classify` reads, attributes
under `attr.NAME`), so that `segmenter explain`, the UI and tests explain exactly what classification decided:

- the matched tier, its normalised condition and the values of everything that condition reads;
- for each tier above it (checked first, failed) the part of its condition that failed, with the values read:
  for `and` its failing operands, for `or` every operand (all failed), each explained recursively; for a
  comparison or attribute test the test itself; for `not X` the `not X` node (X held).

Values are rendered for people and JSON alike: money features as 2-place decimal strings in currency units,
`p_alive` and `expected_purchases` (floats) with 6 decimal places, counts and days as ints, attributes as
given; None for a null feature or a missing attribute.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from segmenter.features import AvgOrderValue, render_feature
from segmenter.money import format_cents
from segmenter.rules.expression import (
    And,
    AttrTest,
    Compare,
    Const,
    Node,
    Not,
    Or,
    evaluate,
    format_number,
    normalise,
    reads,
)
from segmenter.rules.model import ATTRIBUTE_PREFIX, MONEY_FEATURES, Dimension, FeatureMap, RuleSet, Tier

Rendered = str | int | float | bool | None
AND, OR, NOT, COMPARISON, ATTRIBUTE, FALSE, CONDITION = (
    "and",
    "or",
    "not",
    "comparison",
    "attribute",
    "false",
    "condition",
)


@dataclass(frozen=True)
class Failure:
    """A part of a condition that failed, with the values it read; `parts` explain an `and` / `or`."""

    kind: str  # AND | OR | NOT | COMPARISON | ATTRIBUTE | FALSE (CONDITION: a tier without a parsed tree)
    condition: str  # the part's normalised text
    values: dict[str, Rendered]
    parts: tuple[Failure, ...] = ()

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "kind": self.kind,
            "condition": self.condition,
            "values": dict(self.values),
        }
        if self.parts:
            document["parts"] = [part.to_json() for part in self.parts]
        return document


@dataclass(frozen=True)
class TierFailure:
    """A tier above the matched one: its whole condition and the part of it that failed."""

    tier: str
    condition: str
    failed: Failure

    def to_json(self) -> dict[str, Any]:
        return {"tier": self.tier, "condition": self.condition, "failed": self.failed.to_json()}


@dataclass(frozen=True)
class DimensionExplanation:
    dimension: str
    tier: str  # the matched tier
    condition: str  # its normalised condition
    values: dict[str, Rendered]  # what that condition reads
    failed: tuple[TierFailure, ...]  # every tier above it, in rule order

    def to_json(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "tier": self.tier,
            "condition": self.condition,
            "values": dict(self.values),
            "failed": [failure.to_json() for failure in self.failed],
        }


# ------------------------------------------------------------------------------------------------ values


def render_value(name: str, value: Any, money_features: frozenset[str] = MONEY_FEATURES) -> Rendered:
    """A feature or attribute value as shown: money in currency units, floats with 6 places (SPEC 12)."""
    if value is None:
        return None
    if name.startswith(ATTRIBUTE_PREFIX):
        return _attribute_value(value)
    if isinstance(value, AvgOrderValue):
        return render_feature(name, value)
    if name in money_features:
        if isinstance(value, float):
            value = Fraction(value)
        return format_cents(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, int):
        return value
    if isinstance(value, Fraction):
        return format_number(value)
    return str(value)


def _attribute_value(value: Any) -> Rendered:
    """Attributes as given; a Decimal (JSON decoded with Decimal numbers) as an int or a float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _values(node: Node, features: FeatureMap, money_features: frozenset[str]) -> dict[str, Rendered]:
    return {key: render_value(key, features.get(key), money_features) for key in reads(node)}


# ------------------------------------------------------------------------------------------------ explaining


def explain_failure(
    node: Node, features: FeatureMap, money_features: frozenset[str] = MONEY_FEATURES
) -> Failure:
    """Why `node` (which does not hold for `features`) failed."""
    text = normalise(node)
    if isinstance(node, And | Or):
        operands = node.operands
        if isinstance(node, And):  # an `and` fails by its failing operands only
            operands = tuple(operand for operand in operands if not evaluate(operand, features))
        parts = tuple(explain_failure(operand, features, money_features) for operand in operands)
        values: dict[str, Rendered] = {}
        for part in parts:
            values.update(part.values)
        return Failure(AND if isinstance(node, And) else OR, text, values, parts)
    if isinstance(node, Const):
        return Failure(FALSE, text, {})
    kind = NOT if isinstance(node, Not) else COMPARISON if isinstance(node, Compare) else ATTRIBUTE
    assert isinstance(node, Not | Compare | AttrTest)
    return Failure(kind, text, _values(node, features, money_features))


def _tier_failure(tier: Tier, features: FeatureMap, money_features: frozenset[str]) -> TierFailure:
    condition = tier.normalised or tier.when
    tree: Node | None = tier.tree
    if tree is None:  # a hand-built tier: no tree to take apart
        return TierFailure(tier.name, condition, Failure(CONDITION, condition, {}))
    return TierFailure(tier.name, condition, explain_failure(tree, features, money_features))


def explain_dimension(
    dimension: Dimension, features: FeatureMap, money_features: frozenset[str] = MONEY_FEATURES
) -> DimensionExplanation:
    """The tier of `dimension` for `features` and why (pass the rule set's money features for custom ones)."""
    failed: list[TierFailure] = []
    for tier in dimension.tiers:
        if tier is dimension.tiers[-1] or tier.condition(features):
            tree: Node | None = tier.tree
            values = _values(tree, features, money_features) if tree is not None else {}
            return DimensionExplanation(
                dimension.name, tier.name, tier.normalised or tier.when, values, tuple(failed)
            )
        failed.append(_tier_failure(tier, features, money_features))
    raise ValueError(
        f"dimension '{dimension.name}' has no tiers"
    )  # pragma: no cover - validated by the loader


def explain_rules(rules: RuleSet, features: FeatureMap) -> tuple[DimensionExplanation, ...]:
    """Every dimension of `rules`, in order."""
    money = rules.money_features
    return tuple(explain_dimension(dimension, features, money) for dimension in rules.dimensions)


def explanations_json(explanations: Iterable[DimensionExplanation]) -> list[dict[str, Any]]:
    """The `--json` document: one object per dimension."""
    return [explanation.to_json() for explanation in explanations]


# ------------------------------------------------------------------------------------------------ text


def _value_text(name: str, value: Rendered) -> str:
    if value is None:
        return "absent" if name.startswith(ATTRIBUTE_PREFIX) else "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and name.startswith(ATTRIBUTE_PREFIX):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _values_text(values: dict[str, Rendered]) -> str:
    if not values:
        return ""
    return " (" + ", ".join(f"{name} = {_value_text(name, value)}" for name, value in values.items()) + ")"


def failure_text(failure: Failure) -> str:
    """`recency_days >= 180 failed (recency_days = 120)`; an `and` lists its failing operands with `;`."""
    if failure.kind == AND:
        return "; ".join(failure_text(part) for part in failure.parts)
    if failure.kind == FALSE:
        return "false never holds"
    return f"{failure.condition} failed{_values_text(failure.values)}"


def render_text(explanations: Iterable[DimensionExplanation]) -> str:
    """One block per dimension: the tier and why, then one line per tier above it."""
    lines: list[str] = []
    for explanation in explanations:
        because = explanation.condition
        if because == "true" and explanation.failed:
            because = "true (no tier above matched)"
        values = _values_text(explanation.values)
        lines.append(f"{explanation.dimension}: {explanation.tier}  because {because}{values}")
        lines.extend(
            f"  not {failure.tier}: {failure_text(failure.failed)}" for failure in explanation.failed
        )
    return "\n".join(lines) + "\n" if lines else ""
