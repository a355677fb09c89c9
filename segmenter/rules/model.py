"""The data model of a rules file (SPEC sections 5, 10, 11, 12): comparisons, attribute tests, custom
features, the predictive model, tiers, dimensions and the rule set.

Everything a condition reads comes from one mapping (`FeatureMap`, name -> value):

- features (built-in, custom and predictive) under their names, exact: counts and days as `int`, money in
  minor units (cents) — `monetary`, `lifetime_monetary`, `sum:` custom features and `predicted_clv` as `int`,
  `avg_order_value` as `Fraction`, `int` or an exact ratio — `p_alive` and `expected_purchases` as `float`;
  any feature may be `None` (null) or absent, and then every comparison on it is false;
- profile attributes under `attr.NAME`: `str`, `int`/`float` (a JSON number; `Decimal` is accepted too) or
  `bool`; an absent key (or `None`) is a missing attribute.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

BUILTIN_FEATURE_NAMES: tuple[str, ...] = (
    "lifetime_purchases",
    "lifetime_monetary",
    "frequency",
    "monetary",
    "engagement",
    "recency_days",
    "tenure_days",
    "days_since_last_interaction",
    "avg_order_value",
)
FEATURES: frozenset[str] = frozenset(BUILTIN_FEATURE_NAMES)
MONEY_FEATURES: frozenset[str] = frozenset({"monetary", "lifetime_monetary", "avg_order_value"})
DAY_FEATURES: frozenset[str] = frozenset({"recency_days", "tenure_days", "days_since_last_interaction"})
# SPEC section 12: valid in conditions only when the rules file names a model.
PREDICTIVE_FEATURE_NAMES: tuple[str, ...] = ("p_alive", "expected_purchases", "predicted_clv")
PREDICTIVE_FEATURES: frozenset[str] = frozenset(PREDICTIVE_FEATURE_NAMES)
PREDICTIVE_MONEY_FEATURES: frozenset[str] = frozenset({"predicted_clv"})
OPERATORS: tuple[str, ...] = ("<", "<=", ">", ">=", "==", "!=")
ORDERING_OPERATORS: frozenset[str] = frozenset({"<", "<=", ">", ">="})
ATTRIBUTE_PREFIX = "attr."

FeatureValue = Any  # int | Fraction | float | None, an exact ratio (segmenter.features.AvgOrderValue), or
# for `attr.*` keys str | int | float | bool
FeatureMap = Mapping[str, FeatureValue]
Condition = Callable[[FeatureMap], bool]


def scaled_number(feature: str, number: Fraction, money: bool | None = None) -> int | Fraction:
    """`number` (feature units, as written) in the units of the feature's values: money x 100 (cents).

    `money` says whether the feature is money; None: only if it is a built-in money feature. Returned as an
    `int` when integral (faster comparisons), else as an exact `Fraction`.
    """
    if money is None:
        money = feature in MONEY_FEATURES
    value = number * 100 if money else Fraction(number)
    return value.numerator if value.denominator == 1 else value


@dataclass(frozen=True)
class Comparison:
    """`feature op number`; `number` is the literal as written, in feature units (money in currency units).

    `money` is set by the parser for money features of the rule set (custom `sum:` features, `predicted_clv`);
    the built-in money features are money whatever the caller says, so hand-built comparisons stay right.
    """

    feature: str
    op: str
    number: Fraction
    money: bool = False

    def __post_init__(self) -> None:
        if not self.money and self.feature in MONEY_FEATURES:
            object.__setattr__(self, "money", True)

    @property
    def threshold(self) -> int | Fraction:
        """The number in value units (cents for money features), as compared at run time."""
        return scaled_number(self.feature, self.number, self.money)

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


# ------------------------------------------------------------------------------------------------- attributes

STRING, NUMBER, BOOLEAN = "string", "number", "boolean"
IN, NOT_IN = "in", "not in"
ATTRIBUTE_OPERATORS: tuple[str, ...] = (*OPERATORS, IN, NOT_IN)


@dataclass(frozen=True)
class Literal:
    """A literal of an attribute test. `kind` is part of equality, so `true` never equals the number 1."""

    kind: str  # STRING | NUMBER | BOOLEAN
    value: str | bool | Fraction  # numbers exactly as written (rendered canonically)

    @property
    def number(self) -> float:
        """A number literal as a double (how it is compared: see `attribute_number`)."""
        assert isinstance(self.value, Fraction)
        return float(self.value)

    def __str__(self) -> str:
        if self.kind == STRING:
            return quote_string(str(self.value))
        if self.kind == BOOLEAN:
            return "true" if self.value else "false"
        from segmenter.rules.expression import format_number

        assert isinstance(self.value, Fraction)
        return format_number(self.value)


def quote_string(text: str) -> str:
    """Canonical double-quoted text: quote and backslash escaped, control characters as JSON escapes.

    Non-ASCII stays as is (readable in the `when` field); the lexer reads every escape this writes.
    """
    import json

    return json.dumps(text, ensure_ascii=False)


def attribute_number(value: object) -> float | None:
    """A present attribute's value as a double if it is a number (never a bool), else None.

    Attribute numbers arrive as JSON numbers (int, float or Decimal); literals are the double nearest their
    decimal text. Comparing both as doubles is what a user expects: `attr.score == 0.1` holds for the JSON
    number 0.1, and `1985 == 1985.0`.
    """
    if isinstance(value, float):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # beyond the double range: order it as an infinity
            return math.inf if value > 0 else -math.inf
    if isinstance(value, Decimal | Fraction):
        return float(value)
    return None


def literal_matches(literal: Literal, value: object) -> bool:
    """SPEC 10 `==` for a present attribute: same type (string, number, boolean) and same value."""
    if literal.kind == STRING:
        return isinstance(value, str) and value == literal.value
    if literal.kind == BOOLEAN:
        return isinstance(value, bool) and value is literal.value
    number = attribute_number(value)
    return number is not None and number == literal.number


_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class AttributeTest:
    """`attr.NAME op literal` or `attr.NAME [not] in [literals]` (SPEC section 10).

    Not a `Comparison`: attributes do not change with time, so these never make a day a candidate day.
    """

    attribute: str  # the name, without `attr.`
    op: str  # one of ATTRIBUTE_OPERATORS
    literals: tuple[Literal, ...]  # one for a comparison, 1..100 for `in` / `not in`

    @property
    def key(self) -> str:
        """The key of the attribute in the feature mapping."""
        return ATTRIBUTE_PREFIX + self.attribute

    def holds(self, features: FeatureMap) -> bool:
        """Reference semantics (conditions use compiled closures); a missing attribute: false, whatever op."""
        value = features.get(self.key)
        if value is None:
            return False
        op = self.op
        if op in (IN, NOT_IN):
            found = any(literal_matches(literal, value) for literal in self.literals)
            return found if op == IN else not found
        literal = self.literals[0]
        if op == "==":
            return literal_matches(literal, value)
        if op == "!=":
            return not literal_matches(literal, value)
        number = attribute_number(value)
        if number is None or literal.kind != NUMBER:
            return False
        return bool(_ORDER[op](number, literal.number))

    def __str__(self) -> str:
        if self.op == IN or self.op == NOT_IN:
            items = ", ".join(str(literal) for literal in self.literals)
            return f"{self.key} {self.op} [{items}]"
        return f"{self.key} {self.op} {self.literals[0]}"


# -------------------------------------------------------------------------------------------- custom features

COUNT_PURCHASES = "count_purchases"
COUNT_INTERACTIONS = "count_interactions"
SUM_PURCHASES = "sum_purchases"
DISTINCT_CATEGORIES = "distinct_categories"
CUSTOM_KINDS: tuple[str, ...] = (COUNT_PURCHASES, COUNT_INTERACTIONS, SUM_PURCHASES, DISTINCT_CATEGORIES)


@dataclass(frozen=True)
class CustomFeature:
    """A windowed feature declared under `features:` (SPEC section 11); its window is `[D - days + 1, D]`.

    `types` filters interactions (COUNT_INTERACTIONS only), `categories` purchases and refunds
    (COUNT_PURCHASES, SUM_PURCHASES); None is no filter.
    """

    name: str
    kind: str  # one of CUSTOM_KINDS
    days: int
    types: frozenset[str] | None = None
    categories: frozenset[str] | None = None
    line: int = field(default=0, compare=False)

    @property
    def money(self) -> bool:
        """`sum: purchases` is money: its values are cents, its rule numbers currency units."""
        return self.kind == SUM_PURCHASES

    def canonical(self) -> dict[str, Any]:
        """What the rules version hashes (filters sorted: their order does not matter)."""
        document: dict[str, Any] = {"name": self.name, "kind": self.kind, "days": self.days}
        if self.types is not None:
            document["types"] = sorted(self.types)
        if self.categories is not None:
            document["categories"] = sorted(self.categories)
        return document


# ------------------------------------------------------------------------------------------- predictive model


@dataclass(frozen=True)
class PredictiveModel:
    """The model a rules file names (SPEC section 12): fitted parameters and the horizon of its features."""

    file: str  # the model file, resolved against the rules file's directory
    horizon_days: int
    r: float
    alpha: float
    a: float
    b: float
    p: float
    q: float
    v: float
    line: int = field(default=0, compare=False)

    @property
    def bgnbd(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}

    @property
    def gamma_gamma(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "v": self.v}

    def canonical(self) -> dict[str, Any]:
        """What the rules version hashes: the parameters and the horizon, not where the file lives."""
        return {"bgnbd": self.bgnbd, "gamma_gamma": self.gamma_gamma, "horizon_days": self.horizon_days}


# -------------------------------------------------------------------------------------------- feature catalog


@dataclass(frozen=True)
class FeatureCatalog:
    """The features conditions of one rules file may read, and which of them are money."""

    names: tuple[str, ...]  # built-in, then custom (declaration order), then predictive
    money: frozenset[str]
    has_model: bool = False
    members: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", frozenset(self.names))

    def __contains__(self, name: object) -> bool:
        return name in self.members


def feature_catalog(
    custom_features: tuple[CustomFeature, ...] = (), has_model: bool = False
) -> FeatureCatalog:
    """The catalog of a rules file with these custom features, and a model or not."""
    names = BUILTIN_FEATURE_NAMES + tuple(feature.name for feature in custom_features)
    money = MONEY_FEATURES | {feature.name for feature in custom_features if feature.money}
    if has_model:
        names += PREDICTIVE_FEATURE_NAMES
        money |= PREDICTIVE_MONEY_FEATURES
    return FeatureCatalog(names, frozenset(money), has_model)


BUILTIN_CATALOG = feature_catalog()


# ------------------------------------------------------------------------------------------------------ tiers


@dataclass(frozen=True)
class Tier:
    name: str
    when: str  # the condition's source text, as written
    condition: Condition = field(compare=False, repr=False)
    comparisons: tuple[Comparison, ...]  # distinct comparisons of this condition, in order of appearance
    actions: tuple[str, ...]
    line: int  # 1-based line of the tier entry in the rules file
    normalised: str = field(default="", compare=False)  # canonical condition text (what `version` hashes)
    attribute_tests: tuple[AttributeTest, ...] = ()  # distinct attribute tests, in order of appearance
    tree: Any = field(default=None, compare=False, repr=False)  # the parsed condition (expression.Node)


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


def default_history_days(
    value_days: int, engagement_days: int, custom_features: tuple[CustomFeature, ...] = ()
) -> int:
    """SPEC 11: the longest window of the rules file, and at least 365."""
    return max(365, value_days, engagement_days, *(feature.days for feature in custom_features))


@dataclass(frozen=True)
class RuleSet:
    value_days: int
    engagement_days: int
    dimensions: tuple[Dimension, ...]
    comparisons: tuple[Comparison, ...]  # every distinct feature comparison over all conditions, in order
    version: str  # sha256 hex of the canonical JSON of the normalised rules
    source: str  # file path, or "<default>"
    custom_features: tuple[CustomFeature, ...] = ()
    history_days: int = 0  # days of daily buckets kept; 0: the default (`default_history_days`)
    model: PredictiveModel | None = None
    # Derived; not part of equality.
    attribute_tests: tuple[AttributeTest, ...] = field(init=False, compare=False)  # distinct, in order
    catalog: FeatureCatalog = field(init=False, repr=False, compare=False)
    # Precomputed for the hot path; not part of equality.
    _plan: tuple[tuple[tuple[_Check, ...], str], ...] = field(init=False, repr=False, compare=False)
    _actions: tuple[dict[str, tuple[str, ...]], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.history_days == 0:
            history = default_history_days(self.value_days, self.engagement_days, self.custom_features)
            object.__setattr__(self, "history_days", history)
        tests: dict[AttributeTest, None] = {}
        for dimension in self.dimensions:
            for tier in dimension.tiers:
                for test in tier.attribute_tests:
                    tests.setdefault(test)
        object.__setattr__(self, "attribute_tests", tuple(tests))
        object.__setattr__(self, "catalog", feature_catalog(self.custom_features, self.model is not None))
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

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Every feature of this rule set: built-in, custom (declaration order), predictive (with a model)."""
        return self.catalog.names

    @property
    def money_features(self) -> frozenset[str]:
        """Features whose values are cents and whose rule numbers are currency units."""
        return self.catalog.money

    @property
    def attribute_names(self) -> tuple[str, ...]:
        """The attributes the conditions read (without `attr.`), in order of first appearance."""
        return tuple(dict.fromkeys(test.attribute for test in self.attribute_tests))

    def custom_feature(self, name: str) -> CustomFeature:
        for feature in self.custom_features:
            if feature.name == name:
                return feature
        raise KeyError(name)

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
# The comparisons whose truth is monotone in the value.
ORDERING_FUNCTIONS: frozenset[Callable[[Any, Any], bool]] = frozenset(
    OPERATOR_FUNCTIONS[op] for op in ORDERING_OPERATORS
)


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
