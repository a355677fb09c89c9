"""Attribute conditions (SPEC section 10): exact semantics, canonical text, and `rules check` errors."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmenter.rules import ConditionError, RulesError, compile_condition, parse_condition, parse_rules
from segmenter.rules.expression import AttrTest, evaluate
from segmenter.rules.model import AttributeTest, Literal

MISSING = object()  # the attribute is not in the mapping


def holds(condition: str, value: Any) -> bool:
    """Evaluate `condition` three ways (compiled closure, tree interpreter, AttributeTest.holds) and insist
    that they agree."""
    features: dict[str, Any] = {} if value is MISSING else {"attr.a": value}
    compiled = compile_condition(condition)
    result = compiled(features)
    assert evaluate(compiled.tree, features) is result
    if isinstance(compiled.tree, AttrTest):
        assert compiled.tree.test.holds(features) is result
    assert isinstance(result, bool)
    return result


# (condition, attribute value, expected): every rule of SPEC section 10, one row each.
SEMANTICS = [
    # a missing attribute is false whatever the operator (also != and not in)
    ('attr.a == "EU"', MISSING, False),
    ('attr.a != "EU"', MISSING, False),
    ("attr.a < 5", MISSING, False),
    ("attr.a <= 5", MISSING, False),
    ("attr.a > 5", MISSING, False),
    ("attr.a >= 5", MISSING, False),
    ('attr.a in ["EU"]', MISSING, False),
    ('attr.a not in ["EU"]', MISSING, False),
    ("attr.a == true", MISSING, False),
    ("attr.a != false", MISSING, False),
    # None in the mapping (a removed attribute) is missing too
    ('attr.a != "EU"', None, False),
    ('attr.a not in ["EU"]', None, False),
    # strings: exact, case-sensitive, same type only
    ('attr.a == "EU"', "EU", True),
    ('attr.a == "EU"', "eu", False),
    ('attr.a == "EU"', "EU ", False),
    ('attr.a != "EU"', "UK", True),
    ('attr.a != "EU"', "EU", False),
    ('attr.a == "1985"', 1985, False),
    ('attr.a != "1985"', 1985, True),
    ('attr.a == "true"', True, False),
    ('attr.a == "a\\"b\\\\c"', 'a"b\\c', True),
    ('attr.a == "caf\\u00e9"', "café", True),
    ('attr.a == "café"', "café", True),
    # numbers by value, as doubles
    ("attr.a == 1985", 1985, True),
    ("attr.a == 1985", 1985.0, True),
    ("attr.a == 1985.0", 1985, True),
    ("attr.a == 1985", Decimal("1985.00"), True),
    ("attr.a == 0.1", 0.1, True),
    ("attr.a == 0.1", Decimal("0.1"), True),
    ("attr.a == 0.3", 0.1 + 0.2, False),  # 0.30000000000000004 is not the double nearest 0.3
    ("attr.a == -2.5", -2.5, True),
    ("attr.a == 1985", "1985", False),
    ("attr.a != 1985", "1985", True),
    ("attr.a != 1985", 1986, True),
    ("attr.a != 1985", 1985.0, False),
    # booleans are not numbers: true is not 1, false is not 0
    ("attr.a == true", True, True),
    ("attr.a == true", False, False),
    ("attr.a == false", False, True),
    ("attr.a == 1", True, False),
    ("attr.a == 0", False, False),
    ("attr.a == true", 1, False),
    ("attr.a == false", 0, False),
    ("attr.a != 1", True, True),
    ("attr.a != true", 1, True),
    ("attr.a != true", False, True),
    ("attr.a != true", True, False),
    # ordering only between numbers
    ("attr.a <= 1990", 1985, True),
    ("attr.a <= 1990", 1990.0, True),
    ("attr.a < 1990", 1990, False),
    ("attr.a > 1990", 1990.5, True),
    ("attr.a >= 1990", 1989.999, False),
    ("attr.a >= 0.1", 0.1, True),
    ("attr.a < 5", "3", False),
    ("attr.a >= 5", "9", False),
    ("attr.a < 5", True, False),
    ("attr.a > 0", True, False),
    ("attr.a >= 0", False, False),
    # in: some literal ==; not in: its negation (present attributes only)
    ('attr.a in ["retail", "wholesale"]', "retail", True),
    ('attr.a in ["retail", "wholesale"]', "public", False),
    ('attr.a not in ["public"]', "retail", True),
    ('attr.a not in ["public"]', "public", False),
    ("attr.a in [1, 2, 3]", 2.0, True),
    ("attr.a in [1, 2, 3]", 4, False),
    ("attr.a in [1, 2, 3]", True, False),  # True is not 1
    ("attr.a in [true]", 1, False),
    ("attr.a in [true]", True, True),
    ("attr.a in [false]", 0, False),
    ("attr.a not in [true]", 1, True),
    ("attr.a not in [1]", True, True),
    ('attr.a in ["1", 2, true]', "1", True),
    ('attr.a in ["1", 2, true]', 1, False),
    ('attr.a in ["1", 2, true]', 2, True),
    ('attr.a in ["1", 2, true]', True, True),
    ('attr.a in ["1", 2, true]', False, False),
    ('attr.a not in ["1", 2, true]', False, True),
    ('attr.a not in ["1", 2, true]', "2", True),
    ("attr.a in [0.1]", 0.1, True),
]


@pytest.mark.parametrize(("condition", "value", "expected"), SEMANTICS, ids=[repr(r[:2]) for r in SEMANTICS])
def test_attribute_semantics(condition: str, value: Any, expected: bool) -> None:
    assert holds(condition, value) is expected


def test_not_of_a_missing_attribute_holds() -> None:
    # `!=` on a missing attribute is false, so its negation is true: `not attr.a == "EU"` differs from `!=`.
    assert holds('not attr.a == "EU"', MISSING) is True
    assert holds('attr.a != "EU"', MISSING) is False


def test_huge_integer_attributes_order_as_infinities() -> None:
    assert holds("attr.a > 100", 10**400) is True
    assert holds("attr.a < -100", -(10**400)) is True
    assert holds("attr.a == 100", 10**400) is False


def test_attributes_and_features_combine() -> None:
    rules = parse_rules(
        "version: 1\ndimensions:\n  d:\n"
        "    - {tier: eu_buyer, when: 'attr.region == \"EU\" and frequency >= 1'}\n"
        '    - {tier: eu, when: \'attr.region in ["EU", "UK"]\'}\n'
        "    - {tier: old, when: 'attr.birth_year <= 1960'}\n"
        "    - {tier: rest, when: 'true'}\n"
    )
    assert rules.classify({"attr.region": "EU", "frequency": 2}) == ("eu_buyer",)
    assert rules.classify({"attr.region": "EU", "frequency": 0}) == ("eu",)
    assert rules.classify({"attr.region": "UK", "attr.birth_year": 1950}) == ("eu",)
    assert rules.classify({"attr.region": "US", "attr.birth_year": 1950}) == ("old",)
    assert rules.classify({"attr.birth_year": True}) == ("rest",)
    assert rules.classify({}) == ("rest",)
    # attribute tests never become comparisons (attributes do not change with time)
    assert [str(c) for c in rules.comparisons] == ["frequency >= 1"]
    assert [str(t) for t in rules.attribute_tests] == [
        'attr.region == "EU"',
        'attr.region in ["EU", "UK"]',
        "attr.birth_year <= 1960",
    ]
    assert rules.attribute_names == ("region", "birth_year")
    assert rules.dimensions[0].tiers[1].attribute_tests == (
        AttributeTest("region", "in", (Literal("string", "EU"), Literal("string", "UK"))),
    )


def test_literal_equality_keeps_the_type() -> None:
    assert Literal("boolean", True) != Literal("number", Fraction(1))
    assert parse_condition("attr.a == true") != parse_condition("attr.a == 1")
    assert parse_condition("attr.a == 1") == parse_condition("attr.a == 1.00")


# ------------------------------------------------------------------------------------------ canonical text


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ('attr.region=="EU"', 'attr.region == "EU"'),
        ('attr.region in ["EU","UK"]', 'attr.region in ["EU", "UK"]'),
        ('attr.region  not   in ["public"]', 'attr.region not in ["public"]'),
        ("attr.birth_year <= 1990.00", "attr.birth_year <= 1990"),
        ("attr.score >= -0.50", "attr.score >= -0.5"),
        ("attr.newsletter == true", "attr.newsletter == true"),
        ("attr.x in [1, 2.50, true, false]", "attr.x in [1, 2.5, true, false]"),
        ('attr.q == "a\\"b"', 'attr.q == "a\\"b"'),
        ('attr.q == "back\\\\slash"', 'attr.q == "back\\\\slash"'),
        ('attr.q == "\\u00e9t\\u00e9"', 'attr.q == "été"'),
        ('attr.q == "tab\\there"', 'attr.q == "tab\\there"'),
        ('attr.q == "\\/"', 'attr.q == "/"'),
        ('attr.q == "\\u0001"', 'attr.q == "\\u0001"'),
        (
            '(attr.region == "EU" or attr.region == "UK") and not attr.vip == true',
            '(attr.region == "EU" or attr.region == "UK") and not attr.vip == true',
        ),
        ('not (attr.a in ["x"])', 'not attr.a in ["x"]'),
    ],
)
def test_normalised_attribute_text(text: str, normalised: str) -> None:
    compiled = compile_condition(text)
    assert compiled.normalised == normalised
    again = compile_condition(compiled.normalised)
    assert again.normalised == normalised
    assert again.tree == compiled.tree


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=20))
def test_any_string_literal_round_trips(text: str) -> None:
    from segmenter.rules.model import quote_string

    compiled = compile_condition(f"attr.a == {quote_string(text)}")
    assert compiled({"attr.a": text}) is True
    assert compile_condition(compiled.normalised).tree == compiled.tree


ATTRIBUTE_VALUES = st.one_of(
    st.text(max_size=3),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-3, max_value=3),
    st.sampled_from([0.5, 1.0, 2.0, -1.0]),
    st.booleans(),
    st.none(),
)
LITERALS = st.sampled_from(['"a"', '""', '"1"', "1", "0", "2.5", "-1", "0.5", "true", "false"])


@settings(max_examples=300, deadline=None)
@given(
    op=st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"]),
    literals=st.lists(LITERALS, min_size=1, max_size=4),
    value=ATTRIBUTE_VALUES,
    present=st.booleans(),
)
def test_compiled_attribute_tests_match_a_reference(
    op: str, literals: list[str], value: Any, present: bool
) -> None:
    """The compiled closures equal a direct reading of SPEC 10 written here."""

    def parse_literal(text: str) -> Any:
        if text.startswith('"'):
            return text[1:-1]
        if text in ("true", "false"):
            return text == "true"
        return float(text)

    def same(literal: Any, actual: Any) -> bool:
        if isinstance(literal, bool) or isinstance(actual, bool):
            return isinstance(literal, bool) and isinstance(actual, bool) and literal == actual
        if isinstance(literal, str) or isinstance(actual, str):
            return isinstance(literal, str) and isinstance(actual, str) and literal == actual
        return bool(float(actual) == literal)

    if op in ("in", "not in"):
        text = f"attr.a {op} [{', '.join(literals)}]"
    else:
        literals = literals[:1]
        text = f"attr.a {op} {literals[0]}"
    parsed = [parse_literal(lit) for lit in literals]
    ordering = op in ("<", "<=", ">", ">=")
    if ordering and not isinstance(parsed[0], float):
        with pytest.raises(ConditionError):
            compile_condition(text)
        return
    features = {"attr.a": value} if present else {}
    if not present or value is None:
        expected = False
    elif op == "==":
        expected = same(parsed[0], value)
    elif op == "!=":
        expected = not same(parsed[0], value)
    elif op == "in":
        expected = any(same(lit, value) for lit in parsed)
    elif op == "not in":
        expected = not any(same(lit, value) for lit in parsed)
    else:
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        bound = parsed[0]
        expected = (
            is_number
            and {
                "<": value < bound,
                "<=": value <= bound,
                ">": value > bound,
                ">=": value >= bound,
            }[op]
        )
    assert holds(text, value if present else MISSING) is expected
    assert compile_condition(text)(features) is expected


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("condition", "kind", "column", "message"),
    [
        # bad attribute names
        ('attr.Region == "EU"', ConditionError.BAD_ATTRIBUTE, 1, "invalid attribute name 'Region'"),
        ("attr. == 1", ConditionError.BAD_ATTRIBUTE, 1, "invalid attribute name ''"),
        ("attr.birth-year <= 1990", ConditionError.BAD_ATTRIBUTE, 1, "invalid attribute name 'birth-year'"),
        ("attr._x == 1", ConditionError.BAD_ATTRIBUTE, 1, "invalid attribute name '_x'"),
        ("attr.a.b == 1", ConditionError.BAD_ATTRIBUTE, 1, "invalid attribute name 'a.b'"),
        ("attr." + "a" * 33 + " == 1", ConditionError.BAD_ATTRIBUTE, 1, "up to 31 of a-z 0-9 _"),
        ("frequency >= 1 and attr.9 == 1", ConditionError.BAD_ATTRIBUTE, 20, "invalid attribute name '9'"),
        # strings and booleans with an ordering operator
        ('attr.region < "EU"', ConditionError.TYPE_MISMATCH, 15, "'<' with the string \"EU\""),
        ('attr.region >= "EU"', ConditionError.TYPE_MISMATCH, 16, "compare numbers only"),
        ("attr.newsletter > true", ConditionError.TYPE_MISMATCH, 19, "'>' with the boolean true"),
        ("attr.newsletter <= false", ConditionError.TYPE_MISMATCH, 20, "compare numbers only"),
        # `in` on a non-attribute
        ("frequency in [1, 2]", ConditionError.TYPE_MISMATCH, 11, "`in` and `not in` test attributes only"),
        ("frequency not in [1]", ConditionError.TYPE_MISMATCH, 11, "test attributes only"),
        # a string literal compared with a numeric feature
        (
            'frequency == "3"',
            ConditionError.NON_NUMBER,
            14,
            "only attributes (attr.NAME) compare with strings",
        ),
        ("monetary >= true", ConditionError.NON_NUMBER, 13, "found 'true'"),
        # bad lists
        ("attr.region in []", ConditionError.BAD_LIST, 16, "the list is empty"),
        ('attr.region in ["EU", "UK"', ConditionError.BAD_LIST, 27, "unterminated list: '[' at column 16"),
        ('attr.region in ["EU",', ConditionError.BAD_LIST, 22, "unterminated list"),
        ("attr.region in [", ConditionError.BAD_LIST, 17, "unterminated list"),
        (
            "attr.region in [EU]",
            ConditionError.BAD_LIST,
            17,
            "lists hold literals only, found 'EU' (strings are double-quoted: \"EU\")",
        ),
        ('attr.region in ["EU", frequency]', ConditionError.BAD_LIST, 23, "lists hold literals only"),
        ('attr.region in [("EU")]', ConditionError.BAD_LIST, 17, "lists hold literals only, found '('"),
        ('attr.region in ["EU" "UK"]', ConditionError.BAD_LIST, 22, "expected ',' or ']'"),
        ('attr.region in ["EU",]', ConditionError.BAD_LIST, 22, "lists hold literals only, found ']'"),
        ('attr.region in "EU"', ConditionError.BAD_LIST, 16, "expected '[' to start a list"),
        ("attr.n in [" + ", ".join(["1"] * 101) + "]", ConditionError.BAD_LIST, 11, "more than 100 literals"),
        # unterminated and malformed strings
        ('attr.region == "EU', ConditionError.SYNTAX, 16, 'unterminated string (no closing ")'),
        ('attr.region == "EU\\"', ConditionError.SYNTAX, 16, "unterminated string"),
        ('attr.region == "EU\\', ConditionError.SYNTAX, 19, "unterminated string"),
        ('attr.region == "\\x41"', ConditionError.SYNTAX, 17, "invalid escape '\\x'"),
        ('attr.region == "\\u12"', ConditionError.SYNTAX, 17, "invalid escape '\\u'"),
        ("attr.region == 'EU'", ConditionError.SYNTAX, 16, "strings are double-quoted"),
        ("attr.region == EU", ConditionError.SYNTAX, 16, 'strings are double-quoted: "EU"'),
        ("attr.region ==", ConditionError.SYNTAX, 15, "expected a literal after 'attr.region =='"),
        ("attr.region", ConditionError.SYNTAX, 12, "expected an operator"),
        ('attr.region not ["EU"]', ConditionError.SYNTAX, 17, "expected 'in' after 'attr.region not'"),
        ("attr.n == 1" + "0" * 400, ConditionError.SYNTAX, 11, "beyond the range of a double"),
        ('"EU" == attr.region', ConditionError.SYNTAX, 1, "expected a comparison"),
    ],
)
def test_condition_errors(condition: str, kind: str, column: int, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(condition)
    error = caught.value
    assert error.kind == kind, str(error)
    assert error.column == column, str(error)
    assert message in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            'attr.Region == "EU"',
            "invalid attribute name in condition of tier 'x' of dimension 'd' at column 1",
        ),
        ('attr.region < "EU"', "type mismatch in condition of tier 'x' of dimension 'd' at column 15"),
        ("frequency in [1]", "type mismatch in condition of tier 'x' of dimension 'd' at column 11"),
        ('frequency == "3"', "comparison with a non-number in condition of tier 'x' of dimension 'd'"),
        (
            "attr.a in []",
            "invalid list in condition of tier 'x' of dimension 'd' at column 11: the list is empty",
        ),
        (
            'attr.a in ["b"',
            "invalid list in condition of tier 'x' of dimension 'd' at column 15: unterminated",
        ),
        ("attr.a in [b]", "invalid list in condition of tier 'x' of dimension 'd' at column 12"),
        ('attr.a == "b', "syntax error in condition of tier 'x' of dimension 'd' at column 11: unterminated"),
        ("regionn == 1", "unknown feature 'regionn' in condition of tier 'x' of dimension 'd'"),
        ("p_alive < 0.3", "the rules file must name a model"),
    ],
)
def test_rules_check_reports_file_line_reason(condition: str, message: str) -> None:
    escaped = condition.replace("'", "''")
    text = (
        "version: 1\ndimensions:\n  d:\n    - tier: x\n"
        f"      when: '{escaped}'\n    - {{tier: y, when: 'true'}}\n"
    )
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.yaml")
    error = caught.value
    assert (error.file, error.line) == ("rules.yaml", 5)
    assert str(error).startswith("rules.yaml:5: ")
    assert message in str(error)


def test_unknown_feature_hints_at_attributes() -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition('region == "EU"')
    assert caught.value.kind == ConditionError.UNKNOWN_FEATURE
    assert "attributes are written attr.NAME" in str(caught.value)
