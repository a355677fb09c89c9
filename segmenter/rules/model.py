"""The data model of a rules file (SPEC section 5): comparisons, tiers, dimensions and the rule set.

Feature values handed to conditions are exact: counts and days as `int`, money in minor units (cents) —
`monetary` and `lifetime_monetary` as `int`, `avg_order_value` as `Fraction` or `int` — and any feature may be
`None` (null), in which case every comparison on it is false.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

FEATURES: frozenset[str] = frozenset(
    {
        "lifetime_purchases",
        "lifetime_monetary",
        "frequency",
        "monetary",
        "engagement",
        "recency_days",
        "tenure_days",
        "days_since_last_interaction",
        "avg_order_value",
    }
)
MONEY_FEATURES: frozenset[str] = frozenset({"monetary", "lifetime_monetary", "avg_order_value"})
DAY_FEATURES: frozenset[str] = frozenset({"recency_days", "tenure_days", "days_since_last_interaction"})
OPERATORS: tuple[str, ...] = ("<", "<=", ">", ">=", "==", "!=")

FeatureValue = Any  # int | Fraction | None, or an exact ratio (segmenter.features.AvgOrderValue)
FeatureMap = Mapping[str, FeatureValue]
Condition = Callable[[FeatureMap], bool]


def scaled_number(feature: str, number: Fraction) -> int | Fraction:
    """`number` (feature units, as written) in the units of the feature's values: money x 100 (cents).

    Returned as an `int` when integral (faster comparisons), else as an exact `Fraction`.
    """
    value = number * 100 if feature in MONEY_FEATURES else Fraction(number)
    return value.numerator if value.denominator == 1 else value


@dataclass(frozen=True)
class Comparison:
    """`feature op number`; `number` is the literal as written, in feature units (money in currency units)."""

    feature: str
    op: str
    number: Fraction

    @property
    def threshold(self) -> int | Fraction:
        """The number in value units (cents for money features), as compared at run time."""
        return scaled_number(self.feature, self.number)

    def holds(self, features: FeatureMap) -> bool:
        """Evaluate this comparison alone (slow path; conditions use compiled closures)."""
        value = features.get(self.feature)
        if value is None:
            return False
        threshold = self.threshold
        op = self.op
        if op == "<":
            return bool(value < threshold)
        if op == "<=":
            return bool(value <= threshold)
        if op == ">":
            return bool(value > threshold)
        if op == ">=":
            return bool(value >= threshold)
        if op == "==":
            return bool(value == threshold)
        return bool(value != threshold)

    def __str__(self) -> str:
        from segmenter.rules.expression import format_number

        return f"{self.feature} {self.op} {format_number(self.number)}"


@dataclass(frozen=True)
class Tier:
    name: str
    when: str  # the condition's source text, as written
    condition: Condition = field(compare=False, repr=False)
    comparisons: tuple[Comparison, ...]  # distinct comparisons of this condition, in order of appearance
    actions: tuple[str, ...]
    line: int  # 1-based line of the tier entry in the rules file
    normalised: str = field(default="", compare=False)  # canonical condition text (what `version` hashes)


@dataclass(frozen=True)
class Dimension:
    name: str
    tiers: tuple[Tier, ...]

    def classify(self, features: FeatureMap) -> Tier:
        """The first tier whose condition holds (the last tier is always `true`)."""
        for tier in self.tiers:
            if tier.condition(features):
                return tier
        return self.tiers[-1]

    @property
    def tier_names(self) -> tuple[str, ...]:
        return tuple(tier.name for tier in self.tiers)


@dataclass(frozen=True)
class RuleSet:
    value_days: int
    engagement_days: int
    dimensions: tuple[Dimension, ...]
    comparisons: tuple[Comparison, ...]  # every distinct comparison over all conditions, in order
    version: str  # sha256 hex of the canonical JSON of the normalised rules
    source: str  # file path, or "<default>"
    # Precomputed for the hot path; not part of equality.
    _plan: tuple[tuple[tuple[_Check, ...], str], ...] = field(init=False, repr=False, compare=False)
    _actions: tuple[dict[str, tuple[str, ...]], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plan = []
        for dimension in self.dimensions:
            tiers = dimension.tiers
            # The last tier is `true` (validated): never evaluated, it is the fall-through.
            plan.append((tuple(_check(tier) for tier in tiers[:-1]), tiers[-1].name))
        object.__setattr__(self, "_plan", tuple(plan))
        object.__setattr__(
            self,
            "_actions",
            tuple({tier.name: tier.actions for tier in dimension.tiers} for dimension in self.dimensions),
        )

    def classify(self, features: FeatureMap) -> tuple[str, ...]:
        """Tier names, in dimension order: in each dimension the first tier whose condition holds."""
        names: list[str] = []
        append = names.append
        for checks, fallback in self._plan:
            for feature, compare, threshold, condition, name in checks:
                if condition is None:
                    # A single comparison, inlined (no Python-level call): most tiers are like this.
                    try:
                        value = features[feature]
                    except KeyError:
                        continue
                    if value is not None and compare(value, threshold):
                        append(name)
                        break
                elif condition(features):
                    append(name)
                    break
            else:
                append(fallback)
        return tuple(names)

    def tier_actions(self, dimension_index: int, tier_name: str) -> tuple[str, ...]:
        """Actions of tier `tier_name` of the dimension at `dimension_index` (KeyError if no such tier)."""
        return self._actions[dimension_index][tier_name]

    @property
    def dimension_names(self) -> tuple[str, ...]:
        return tuple(dimension.name for dimension in self.dimensions)

    def dimension(self, name: str) -> Dimension:
        for dimension in self.dimensions:
            if dimension.name == name:
                return dimension
        raise KeyError(name)


# (feature, operator function, threshold, None, name) for a single-comparison condition,
# (None, None, None, condition, name) otherwise.
# Typed loosely (Any) because the first three are None exactly when the condition is not: checked once, at
# construction, not on every evaluation.
_Check = tuple[Any, Any, Any, Condition | None, str]
OPERATOR_FUNCTIONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def _check(tier: Tier) -> _Check:
    if len(tier.comparisons) == 1:
        comparison = tier.comparisons[0]
        if tier.normalised == str(comparison):
            return (
                comparison.feature,
                OPERATOR_FUNCTIONS[comparison.op],
                comparison.threshold,
                None,
                tier.name,
            )
    return (None, None, None, tier.condition, tier.name)


class RulesError(ValueError):
    """A rules file that cannot be used: `str()` is `file:line: reason` (`file: reason` when no line)."""

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        super().__init__(str(self))

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.file, self.line, self.reason))

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.file}: {self.reason}"
        return f"{self.file}:{self.line}: {self.reason}"
