"""Tier conditions (SPEC section 5): grammar, precedence, nulls, exact money, compiled == interpreted."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmenter.features import FEATURE_NAMES
from segmenter.features import MONEY_FEATURES as ENGINE_MONEY_FEATURES
from segmenter.rules import (
    DAY_FEATURES,
    FEATURES,
    MONEY_FEATURES,
    Comparison,
    ConditionError,
    compile_condition,
    default_rules,
    format_number,
    parse_condition,
    parse_rules,
)
from segmenter.rules.expression import And, Compare, Const, Not, Or

RULES = default_rules()


def features(**values: int | Fraction | None) -> dict[str, int | Fraction | None]:
    """A full feature map: everything null unless given."""
    base: dict[str, int | Fraction | None] = dict.fromkeys(FEATURES)
    base.update(values)
    return base


def customer(
    *,
    lifetime_purchases: int = 1,
    frequency: int = 1,
    monetary: int = 1000,
    recency_days: int | None = 5,
    tenure_days: int | None = 60,
    engagement: int = 0,
) -> dict[str, int | Fraction | None]:
    return features(
        lifetime_purchases=lifetime_purchases,
        lifetime_monetary=monetary,
        frequency=frequency,
        monetary=monetary,
        engagement=engagement,
        recency_days=recency_days,
        tenure_days=tenure_days,
        days_since_last_interaction=None,
        avg_order_value=Fraction(monetary, frequency) if frequency else None,
    )


def test_feature_sets_match_the_engine_and_spec() -> None:
    assert frozenset(FEATURE_NAMES) == FEATURES
    assert len(FEATURES) == 9
    assert MONEY_FEATURES == ENGINE_MONEY_FEATURES == {"monetary", "lifetime_monetary", "avg_order_value"}
    assert {"recency_days", "tenure_days", "days_since_last_interaction"} == DAY_FEATURES


# ------------------------------------------------------------------------------------------ default rules


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        # no purchases at all: prospect / none; nulls everywhere else
        (
            features(lifetime_purchases=0, lifetime_monetary=0, frequency=0, monetary=0, engagement=0),
            ("prospect", "none", "passive"),
        ),
        (
            features(lifetime_purchases=0, lifetime_monetary=0, frequency=0, monetary=0, engagement=25),
            ("prospect", "none", "highly_engaged"),
        ),
        # churned beats everything after it; value uses the 365-day monetary only
        (customer(recency_days=180, tenure_days=400, frequency=0, monetary=0), ("churned", "low", "passive")),
        (
            customer(recency_days=179, tenure_days=400, frequency=7, monetary=200_000),
            ("at_risk", "vip", "passive"),
        ),
        (customer(recency_days=90, tenure_days=90), ("at_risk", "low", "passive")),
        (customer(recency_days=89, tenure_days=89), ("active", "low", "passive")),
        (customer(recency_days=0, tenure_days=29), ("new", "low", "passive")),
        (customer(recency_days=0, tenure_days=30), ("active", "low", "passive")),
        # loyal: frequency >= 6 and tenure >= 180
        (customer(frequency=6, tenure_days=180, monetary=99_999), ("loyal", "high", "passive")),
        (customer(frequency=5, tenure_days=180, monetary=100_000), ("active", "high", "passive")),
        (customer(frequency=6, tenure_days=179, monetary=100_000), ("active", "vip", "passive")),
        # value thresholds in currency units, features in cents
        (customer(monetary=30_000, engagement=3), ("active", "high", "engaged")),
        (customer(monetary=29_999, engagement=2), ("active", "medium", "passive")),
        (customer(monetary=5_000, engagement=19), ("active", "medium", "engaged")),
        (customer(monetary=4_999, engagement=20), ("active", "low", "highly_engaged")),
        (customer(monetary=0, frequency=0), ("active", "low", "passive")),
    ],
)
def test_default_rules_classify(inputs: dict[str, int | Fraction | None], expected: tuple[str, ...]) -> None:
    assert RULES.classify(inputs) == expected
    # Dimension.classify agrees with the fast path
    assert tuple(dimension.classify(inputs).name for dimension in RULES.dimensions) == expected


def test_vip_threshold_is_exact_in_cents() -> None:
    assert RULES.classify(customer(frequency=6, tenure_days=10, monetary=99_999))[1] == "high"
    assert RULES.classify(customer(frequency=6, tenure_days=10, monetary=100_000))[1] == "vip"


# ------------------------------------------------------------------------------------------ null semantics


def test_null_comparisons_are_false_and_not_inverts_them() -> None:
    null = features()
    for op in ("<", "<=", ">", ">=", "==", "!="):
        assert compile_condition(f"recency_days {op} 90")(null) is False
    assert compile_condition("not (recency_days >= 90)")(null) is True
    assert compile_condition("not recency_days < 90")(null) is True
    assert compile_condition("recency_days >= 90 or recency_days < 90")(null) is False
    assert compile_condition("avg_order_value != 0")(null) is False


def test_all_null_features_fall_through_to_the_last_tiers() -> None:
    assert RULES.classify(features()) == ("active", "low", "passive")


def test_missing_feature_counts_as_null() -> None:
    assert compile_condition("frequency >= 1")({}) is False
    assert compile_condition("not frequency >= 1")({}) is True
    assert RULES.classify({}) == ("active", "low", "passive")


# ------------------------------------------------------------------------------------------ exact numbers


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ("monetary >= 1000", 99_999, False),
        ("monetary >= 1000", 100_000, True),
        ("monetary > 0.01", 1, False),
        ("monetary > 0.01", 2, True),
        ("monetary == 12.34", 1234, True),
        ("monetary == 12.340", 1234, True),
        ("monetary != 12.34", 1234, False),
        ("lifetime_monetary < -0.5", -50, False),
        ("lifetime_monetary < -0.5", -51, True),
        ("lifetime_monetary <= -0.50", -50, True),
        ("avg_order_value > 12.34", Fraction(2468, 2), False),
        ("avg_order_value > 12.34", Fraction(2469, 2), True),
        ("avg_order_value >= 0.005", Fraction(1, 2), True),  # half a cent
        ("avg_order_value >= 0.005", Fraction(49, 100), False),
        ("avg_order_value == 0.005", Fraction(1, 2), True),
        ("frequency > 2.5", 3, True),
        ("frequency > 2.5", 2, False),
        ("frequency == 2.5", 2, False),
        ("frequency != 2.5", 2, True),
        ("recency_days <= 0", 0, True),
        ("recency_days < -0", 0, False),
        ("tenure_days >= 180", 179, False),
        ("tenure_days >= 00180", 180, True),
    ],
)
def test_exact_comparisons(condition: str, value: int | Fraction, expected: bool) -> None:
    compiled = compile_condition(condition)
    (comparison,) = compiled.comparisons
    assert compiled(features(**{comparison.feature: value})) is expected
    assert comparison.holds({comparison.feature: value}) is expected


def test_comparison_numbers_are_as_written_and_thresholds_scaled() -> None:
    (money,) = compile_condition("monetary >= 1000.50").comparisons
    assert money == Comparison("monetary", ">=", Fraction(2001, 2))
    assert money.threshold == 100_050 and type(money.threshold) is int
    (aov,) = compile_condition("avg_order_value < 0.001").comparisons
    assert aov.threshold == Fraction(1, 10)
    (days,) = compile_condition("recency_days >= 90").comparisons
    assert days.number == 90 and days.threshold == 90 and type(days.threshold) is int
    assert str(money) == "monetary >= 1000.5"


# ------------------------------------------------------------------------------------------ grammar


def test_precedence_not_over_and_over_or() -> None:
    assert parse_condition("frequency > 1 or frequency > 2 and frequency > 3") == Or(
        (
            Compare(Comparison("frequency", ">", Fraction(1))),
            And(
                (
                    Compare(Comparison("frequency", ">", Fraction(2))),
                    Compare(Comparison("frequency", ">", Fraction(3))),
                )
            ),
        )
    )
    assert parse_condition("not frequency > 1 and frequency > 2") == And(
        (
            Not(Compare(Comparison("frequency", ">", Fraction(1)))),
            Compare(Comparison("frequency", ">", Fraction(2))),
        )
    )
    true_or_false_and_false = compile_condition("true or false and false")
    assert true_or_false_and_false({}) is True  # (true or false) and false would be False
    assert compile_condition("(true or false) and false")({}) is False
    assert compile_condition("not false and false")({}) is False  # not (false and false) would be True
    assert compile_condition("not (false and false)")({}) is True


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("true", "true"),
        ("  (( true ))  ", "true"),
        ("frequency>=6 and tenure_days>=180", "frequency >= 6 and tenure_days >= 180"),
        ("(frequency >= 6) and ((tenure_days >= 180))", "frequency >= 6 and tenure_days >= 180"),
        ("monetary >= 1000.00", "monetary >= 1000"),
        ("monetary >= -0.50", "monetary >= -0.5"),
        ("(engagement > 1 or engagement < 0) and not engagement == 5", None),
        (
            "engagement > 1 or (engagement < 0 and frequency == 1)",
            "engagement > 1 or engagement < 0 and frequency == 1",
        ),
        (
            "(engagement > 1 or engagement < 0) and frequency == 1",
            "(engagement > 1 or engagement < 0) and frequency == 1",
        ),
        ("not (engagement > 1 and frequency == 1)", "not (engagement > 1 and frequency == 1)"),
        ("not not false", "not not false"),
        (
            "frequency > 1 or (frequency > 2 or frequency > 3)",
            "frequency > 1 or frequency > 2 or frequency > 3",
        ),
        ("frequency\t>\n1", "frequency > 1"),
    ],
)
def test_normalised_text(text: str, normalised: str | None) -> None:
    compiled = compile_condition(text)
    if normalised is not None:
        assert compiled.normalised == normalised
    # normalising is idempotent and keeps the meaning
    again = compile_condition(compiled.normalised)
    assert again.normalised == compiled.normalised
    assert again.tree == compiled.tree


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("", 1, "the condition is empty"),
        ("   ", 4, "the condition is empty"),
        (
            "recency_days",
            13,
            "expected a comparison operator (< <= > >= == !=) after 'recency_days', found end",
        ),
        ("recency_days = 90", 14, "unknown operator '=' (did you mean '=='?)"),
        ("recency_days => 90", 14, "unknown operator '=>' (did you mean '>='?)"),
        ("recency_days <> 90", 14, "unknown operator '<>' (did you mean '!='?)"),
        ("recency_days >= 1e3", 17, "invalid number '1e3'"),
        ("recency_days >= 1.", 17, "invalid number '1.'"),
        ("recency_days >= .5", 17, "invalid number '.5'"),
        ("recency_days >= - 5", 17, "unexpected character '-'"),
        ("90 <= recency_days", 1, "expected a feature name, found number '90'"),
        ("(recency_days > 1", 18, "expected ')' to close '(' at column 1, found end of condition"),
        ("recency_days > 1)", 17, "unmatched ')'"),
        ("recency_days > 1 frequency > 1", 18, "expected 'and', 'or' or end of condition, found 'frequency'"),
        ("recency_days > 1 AND frequency > 1", 18, "found 'AND' (keywords are lowercase)"),
        ("recency_days > 1 && frequency > 1", 18, "unexpected '&&' (use 'and')"),
        ("recency_days > 1 || frequency > 1", 18, "unexpected '||' (use 'or')"),
        ("!(recency_days > 1)", 1, "unknown operator '!' (use 'not'"),
        ("true or", 8, "unexpected end of condition"),
        ("not", 4, "unexpected end of condition"),
        ("and true", 1, "found 'and'"),
        ("recency_days > 1 ; drop", 18, "unexpected character ';'"),
        ("(" * 70 + "true" + ")" * 70, 65, "nested too deeply"),
        ("not " * 70 + "true", 257, "nested too deeply"),
    ],
)
def test_syntax_errors_name_the_column(text: str, column: int, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    assert caught.value.kind == ConditionError.SYNTAX
    assert caught.value.column == column
    assert message in str(caught.value)
    assert f"at column {column}" in caught.value.describe("condition of tier 'x'")


@pytest.mark.parametrize(
    ("text", "feature", "hint"),
    [
        ("recencydays >= 90", "recencydays", "did you mean 'recency_days'?"),
        ("recency-days >= 90", "recency-days", "did you mean 'recency_days'?"),
        ("Frequency >= 1", "Frequency", "did you mean 'frequency'?"),
        ("True", "True", "keywords are lowercase: did you mean 'true'?"),
        ("spend > 5", "spend", "features: avg_order_value, days_since_last_interaction"),
        ("frequency >= 1 and nope < 3", "nope", ""),
        ("__import__('os')", "__import__", ""),
    ],
)
def test_unknown_feature(text: str, feature: str, hint: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    error = caught.value
    assert error.kind == ConditionError.UNKNOWN_FEATURE
    assert error.feature == feature
    message = error.describe("condition of tier 'churned'")
    assert message.startswith(f"unknown feature '{feature}' in condition of tier 'churned'")
    assert hint in message


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("recency_days >= frequency", "found 'frequency'"),
        ("recency_days >= '90'", "found string '90'"),
        ('recency_days >= "90"', 'found string "90"'),
        ("recency_days >= true", "found 'true'"),
        ("recency_days >= (90)", "found '('"),
        ("recency_days >=", "found end of condition"),
    ],
)
def test_comparison_with_a_non_number(text: str, found: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    assert caught.value.kind == ConditionError.NON_NUMBER
    assert found in str(caught.value)
    assert str(caught.value).startswith("comparison with a non-number in condition at column")


def test_format_number() -> None:
    assert format_number(Fraction(1000)) == "1000"
    assert format_number(Fraction("-0.50")) == "-0.5"
    assert format_number(Fraction("12.345")) == "12.345"
    assert format_number(Fraction(1, 3)) == "1/3"


def test_rules_never_use_eval() -> None:
    source_dir = Path(__import__("segmenter.rules", fromlist=["x"]).__file__).parent
    pattern = re.compile(r"(?<![\w.])(eval|exec|compile|__import__)\s*\(")
    for path in source_dir.glob("*.py"):
        assert not pattern.search(path.read_text()), path


# ------------------------------------------------------------------------------------------ property


OPS = ("<", "<=", ">", ">=", "==", "!=")
NUMBERS = st.one_of(
    st.integers(-5, 400).map(str),
    st.builds(
        lambda whole, frac: f"{whole}.{frac}", st.integers(-3, 50), st.sampled_from(["0", "5", "25", "999"])
    ),
)


@st.composite
def comparisons(draw: st.DrawFn) -> tuple[str, str, str]:
    return draw(st.sampled_from(sorted(FEATURES))), draw(st.sampled_from(OPS)), draw(NUMBERS)


# A tree as nested tuples, independent of the module's AST: ("cmp", f, op, n) | ("const", b) | ("not", t)
# | ("and", l, r) | ("or", l, r)
TREES = st.recursive(
    st.one_of(comparisons().map(lambda c: ("cmp", *c)), st.booleans().map(lambda b: ("const", b))),
    lambda inner: st.one_of(
        inner.map(lambda t: ("not", t)),
        st.tuples(st.sampled_from(["and", "or"]), inner, inner),
    ),
    max_leaves=12,
)


def render(tree: tuple, spacing: str) -> str:
    """Fully parenthesised text (so the tree's structure is what is written)."""
    kind = tree[0]
    if kind == "cmp":
        return f"{tree[1]}{spacing}{tree[2]}{spacing}{tree[3]}"
    if kind == "const":
        return "true" if tree[1] else "false"
    if kind == "not":
        return f"not ({render(tree[1], spacing)})"
    return f"({render(tree[1], spacing)}) {kind} ({render(tree[2], spacing)})"


def interpret(tree: tuple, values: dict[str, int | Fraction | None]) -> bool:
    """A tiny independent interpreter: null comparisons false; money literals x 100 against cents."""
    kind = tree[0]
    if kind == "const":
        return tree[1]
    if kind == "not":
        return not interpret(tree[1], values)
    if kind == "and":
        return interpret(tree[1], values) and interpret(tree[2], values)
    if kind == "or":
        return interpret(tree[1], values) or interpret(tree[2], values)
    _, feature, op, number = tree
    value = values[feature]
    if value is None:
        return False
    literal = Fraction(number) * (100 if feature in MONEY_FEATURES else 1)
    return {
        "<": value < literal,
        "<=": value <= literal,
        ">": value > literal,
        ">=": value >= literal,
        "==": value == literal,
        "!=": value != literal,
    }[op]


def feature_value(name: str) -> st.SearchStrategy[int | Fraction | None]:
    if name == "avg_order_value":
        value: st.SearchStrategy[int | Fraction] = st.fractions(
            min_value=0, max_value=50_000, max_denominator=7
        )
    elif name in MONEY_FEATURES:
        value = st.integers(-1_000, 50_000)
    else:
        value = st.integers(-6, 410)
    return st.one_of(st.none(), value)


FEATURE_MAPS = st.fixed_dictionaries({name: feature_value(name) for name in sorted(FEATURES)})


def literals(tree: tuple) -> list[tuple[str, str]]:
    """(feature, number text) of every comparison in a tree."""
    if tree[0] == "cmp":
        return [(tree[1], tree[3])]
    if tree[0] == "const":
        return []
    return [pair for child in tree[1:] for pair in literals(child)]


def near(feature: str, number: str) -> st.SearchStrategy[int | Fraction]:
    """Values at and right around a comparison's threshold, in value units (cents for money)."""
    exact = Fraction(number) * (100 if feature in MONEY_FEATURES else 1)
    if feature == "avg_order_value":
        steps = st.sampled_from(
            [Fraction(0), Fraction(1, 3), Fraction(-1, 3), Fraction(1, 100), Fraction(-1, 100)]
        )
        return steps.map(lambda step: exact + step)
    return st.sampled_from([-1, 0, 1]).map(lambda step: math.floor(exact) + step)


@settings(max_examples=200, deadline=None)
@given(tree=TREES, spacing=st.sampled_from([" ", "", "  "]), data=st.data())
def test_compiled_condition_matches_an_independent_interpreter(
    tree: tuple, spacing: str, data: st.DataObject
) -> None:
    text = render(tree, spacing)
    compiled = compile_condition(text)
    renormalised = compile_condition(compiled.normalised)
    boundaries = literals(tree)
    for _ in range(4):
        inputs = data.draw(FEATURE_MAPS)
        # move some features onto the boundary of one of their comparisons
        for feature, number in boundaries:
            if data.draw(st.booleans()):
                inputs[feature] = data.draw(near(feature, number))
        expected = interpret(tree, inputs)
        assert compiled(inputs) is expected, (text, inputs)
        assert renormalised(inputs) is expected, (compiled.normalised, inputs)


@settings(max_examples=200, deadline=None)
@given(values=FEATURE_MAPS)
def test_default_rules_match_hand_written_python(values: dict[str, int | Fraction | None]) -> None:
    def ge(name: str, number: int) -> bool:
        value = values[name]
        return value is not None and value >= number

    def eq(name: str, number: int) -> bool:
        value = values[name]
        return value is not None and value == number

    tenure = values["tenure_days"]
    if eq("lifetime_purchases", 0):
        lifecycle = "prospect"
    elif ge("recency_days", 180):
        lifecycle = "churned"
    elif ge("recency_days", 90):
        lifecycle = "at_risk"
    elif tenure is not None and tenure < 30:
        lifecycle = "new"
    elif ge("frequency", 6) and ge("tenure_days", 180):
        lifecycle = "loyal"
    else:
        lifecycle = "active"
    if eq("lifetime_purchases", 0):
        value = "none"
    elif ge("monetary", 100_000) and ge("frequency", 6):
        value = "vip"
    elif ge("monetary", 30_000):
        value = "high"
    elif ge("monetary", 5_000):
        value = "medium"
    else:
        value = "low"
    engagement = "highly_engaged" if ge("engagement", 20) else "engaged" if ge("engagement", 3) else "passive"
    assert RULES.classify(values) == (lifecycle, value, engagement)


def test_const_nodes() -> None:
    assert parse_condition("true") == Const(True)
    assert parse_condition("false") == Const(False)


SINGLE = comparisons().map(lambda c: ("cmp", *c))  # single-comparison tiers take RuleSet's inlined path


@settings(max_examples=80, deadline=None)
@given(
    dimensions=st.lists(st.lists(st.one_of(SINGLE, TREES), max_size=4), min_size=1, max_size=3),
    data=st.data(),
)
def test_ruleset_classify_is_first_match(dimensions: list[list[tuple]], data: st.DataObject) -> None:
    lines = ["version: 1", "dimensions:"]
    for d, trees in enumerate(dimensions):
        lines.append(f"  d{d}:")
        lines.extend(f"    - {{tier: t{t}, when: '{render(tree, ' ')}'}}" for t, tree in enumerate(trees))
        lines.append("    - {tier: last, when: 'true'}")
    rules = parse_rules("\n".join(lines) + "\n")
    boundaries = [pair for trees in dimensions for tree in trees for pair in literals(tree)]
    for _ in range(4):
        inputs = data.draw(FEATURE_MAPS)
        for feature, number in boundaries:
            if data.draw(st.booleans()):
                inputs[feature] = data.draw(near(feature, number))
        expected = tuple(
            next((f"t{t}" for t, tree in enumerate(trees) if interpret(tree, inputs)), "last")
            for trees in dimensions
        )
        assert rules.classify(inputs) == expected
        assert tuple(dimension.classify(inputs).name for dimension in rules.dimensions) == expected


FUZZ_ALPHABET = st.sampled_from(
    list("()<>=!&|-.'\" \t\n0123456789_aednortfsuly")
    + ["and", "or", "not", "true", "frequency", "٣", "²", "\xa0"]
)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(FUZZ_ALPHABET, max_size=25))
def test_any_text_either_compiles_or_raises_condition_error(pieces: list[str]) -> None:
    text = "".join(pieces)
    try:
        compiled = compile_condition(text)
    except ConditionError as error:
        assert 1 <= error.column <= len(text) + 1
        assert "\n" not in error.describe("x")
    else:
        assert isinstance(compiled({}), bool)
