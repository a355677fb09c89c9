"""Rules files (SPEC section 5): the built-in default, validation with file:line errors, the rules version."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from segmenter.rules import (
    Comparison,
    RulesError,
    RuleSet,
    default_rules,
    default_rules_text,
    load_rules,
    parse_rules,
)

SPEC_DEFAULT = """\
version: 1
windows: {value_days: 365, engagement_days: 30}
dimensions:
  lifecycle:
    - {tier: prospect, when: "lifetime_purchases == 0"}
    - {tier: churned,  when: "recency_days >= 180"}
    - {tier: at_risk,  when: "recency_days >= 90"}
    - {tier: new,      when: "tenure_days < 30"}
    - {tier: loyal,    when: "frequency >= 6 and tenure_days >= 180"}
    - {tier: active,   when: "true"}
  value:
    - {tier: none,     when: "lifetime_purchases == 0"}
    - {tier: vip,      when: "monetary >= 1000 and frequency >= 6"}
    - {tier: high,     when: "monetary >= 300"}
    - {tier: medium,   when: "monetary >= 50"}
    - {tier: low,      when: "true"}
  engagement:
    - {tier: highly_engaged, when: "engagement >= 20"}
    - {tier: engaged,        when: "engagement >= 3"}
    - {tier: passive,        when: "true"}
"""

# The same rules, written differently: block style, comments, other quoting, redundant parentheses and
# zeros, windows spelled out in another order.
SPEC_DEFAULT_REFORMATTED = """\
# Customer segmentation rules
version: 1
windows:
  engagement_days: 30   # the engagement window
  value_days: 365
dimensions:
  lifecycle:
    - tier: prospect
      when: lifetime_purchases==0
    - tier: churned
      when: '(recency_days >= 180)'
    - {tier: at_risk, when: "recency_days >= 90.00"}
    - {when: "tenure_days < 30", tier: new}
    - tier: loyal
      when: >-
        (frequency >= 6)
        and (tenure_days >= 180)
    - tier: active
      when: true
  value:
    - {tier: none, when: "lifetime_purchases == 0"}
    - {tier: vip, when: "monetary >= 1000 and frequency >= 6", actions: []}
    - {tier: high, when: "monetary >= 300"}
    - {tier: medium, when: "monetary >= 50"}
    - {tier: low, when: "true"}
  engagement:
    - {tier: highly_engaged, when: "engagement >= 20"}
    - {tier: engaged, when: "engagement >= 3"}
    - {tier: passive, when: "true"}
"""


def test_default_rules_are_the_spec_text() -> None:
    assert default_rules_text() == SPEC_DEFAULT
    rules = default_rules()
    assert rules is default_rules()  # cached
    assert rules.source == "<default>"
    assert (rules.value_days, rules.engagement_days) == (365, 30)
    assert rules.dimension_names == ("lifecycle", "value", "engagement")
    assert [[tier.name for tier in d.tiers] for d in rules.dimensions] == [
        ["prospect", "churned", "at_risk", "new", "loyal", "active"],
        ["none", "vip", "high", "medium", "low"],
        ["highly_engaged", "engaged", "passive"],
    ]
    assert [tier.line for tier in rules.dimensions[0].tiers] == [5, 6, 7, 8, 9, 10]
    assert rules.dimensions[0].tiers[4].when == "frequency >= 6 and tenure_days >= 180"
    assert rules.tier_actions(0, "churned") == ()
    assert len(rules.version) == 64 and int(rules.version, 16) >= 0


def test_comparisons_are_distinct_and_in_order() -> None:
    rules = default_rules()
    assert [str(c) for c in rules.comparisons] == [
        "lifetime_purchases == 0",
        "recency_days >= 180",
        "recency_days >= 90",
        "tenure_days < 30",
        "frequency >= 6",
        "tenure_days >= 180",
        "monetary >= 1000",
        "monetary >= 300",
        "monetary >= 50",
        "engagement >= 20",
        "engagement >= 3",
    ]
    loyal = rules.dimensions[0].tiers[4]
    assert loyal.comparisons == (
        Comparison("frequency", ">=", 6),
        Comparison("tenure_days", ">=", 180),
    )


def test_version_is_stable_across_formatting_and_comments() -> None:
    reformatted = parse_rules(SPEC_DEFAULT_REFORMATTED, "reformatted.yaml")
    assert reformatted.version == default_rules().version
    # windows may be omitted: the defaults are the same rules
    without_windows = SPEC_DEFAULT.replace("windows: {value_days: 365, engagement_days: 30}\n", "")
    assert parse_rules(without_windows).version == default_rules().version
    # ... and it classifies the same
    assert reformatted.classify({"lifetime_purchases": 0}) == default_rules().classify(
        {"lifetime_purchases": 0}
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("recency_days >= 180", "recency_days >= 181"),
        ("recency_days >= 180", "recency_days > 180"),
        ("monetary >= 300", "monetary >= 300.01"),
        ("engagement_days: 30", "engagement_days: 31"),
        ("value_days: 365", "value_days: 364"),
        ("tier: low,", "tier: basic,"),
        (
            '{tier: vip,      when: "monetary >= 1000 and frequency >= 6"}',
            '{tier: vip,      when: "monetary >= 1000 and frequency >= 6", actions: [vip_welcome]}',
        ),
        ('"frequency >= 6 and tenure_days >= 180"', '"tenure_days >= 180 and frequency >= 6"'),
        ("  engagement:\n", "  engagement_:\n"),
    ],
)
def test_version_changes_when_the_rules_change(old: str, new: str) -> None:
    assert old in SPEC_DEFAULT
    changed = parse_rules(SPEC_DEFAULT.replace(old, new))
    assert changed.version != default_rules().version


def test_tier_order_and_dimension_order_change_the_version() -> None:
    swapped_tiers = SPEC_DEFAULT.replace(
        '    - {tier: churned,  when: "recency_days >= 180"}\n'
        '    - {tier: at_risk,  when: "recency_days >= 90"}\n',
        '    - {tier: at_risk,  when: "recency_days >= 90"}\n'
        '    - {tier: churned,  when: "recency_days >= 180"}\n',
    )
    assert parse_rules(swapped_tiers).version != default_rules().version
    two = (
        "version: 1\ndimensions:\n  a:\n    - {tier: x, when: 'true'}\n  b:\n    - {tier: y, when: 'true'}\n"
    )
    swapped = (
        "version: 1\ndimensions:\n  b:\n    - {tier: y, when: 'true'}\n  a:\n    - {tier: x, when: 'true'}\n"
    )
    assert parse_rules(two).version != parse_rules(swapped).version


def test_actions_are_kept_in_order() -> None:
    text = SPEC_DEFAULT.replace(
        '{tier: churned,  when: "recency_days >= 180"}',
        '{tier: churned,  when: "recency_days >= 180", actions: [winback_offer, crm.notify-team]}',
    )
    rules = parse_rules(text)
    assert rules.tier_actions(0, "churned") == ("winback_offer", "crm.notify-team")
    assert rules.tier_actions(0, "active") == ()
    assert rules.dimensions[0].tiers[1].actions == ("winback_offer", "crm.notify-team")


def test_yaml_scalars_are_read_as_written() -> None:
    rules = parse_rules(
        "version: 1\nwindows: {value_days: 0x10, engagement_days: 7}\ndimensions:\n"
        "  yes:\n    - {tier: no, when: false}\n    - {tier: off, when: true}\n"
    )
    assert rules.value_days == 16
    assert rules.dimension_names == ("yes",)
    assert [tier.name for tier in rules.dimensions[0].tiers] == ["no", "off"]
    assert rules.classify({}) == ("off",)


def test_rules_file_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("\ufeff" + SPEC_DEFAULT_REFORMATTED, encoding="utf-8")
    rules = load_rules(path)
    assert rules.source == str(path)
    assert rules.version == default_rules().version
    assert isinstance(rules, RuleSet)


def test_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(RulesError) as caught:
        load_rules(missing)
    assert caught.value.file == str(missing) and caught.value.line is None
    assert str(caught.value) == f"{missing}: cannot read rules file: No such file or directory"
    with pytest.raises(RulesError, match="cannot read rules file"):
        load_rules(tmp_path)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"version: 1\n# caf\xe9\n")
    with pytest.raises(RulesError) as caught:
        load_rules(latin)
    assert (caught.value.line, caught.value.reason) == (2, "the rules file is not UTF-8 text (byte 17)")


def test_rules_error_shape() -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules("version: 2\n", "my.yaml")
    error = caught.value
    assert (error.file, error.line) == ("my.yaml", 1)
    assert str(error) == f"my.yaml:1: {error.reason}"
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.file, copy.line, copy.reason) == (error.file, error.line, error.reason)


GOOD_TAIL = "    - {tier: rest, when: 'true'}\n"

BAD_FILES = [
    # (id, text, line, reason fragment)
    ("empty", "", 1, "the rules file is empty"),
    ("only-comments", "# nothing here\n\n", 1, "the rules file is empty"),
    ("bad-yaml", "version: 1\ndimensions:\n  a: [1, 2\n  b: 3\n", 4, "invalid YAML: expected ',' or ']'"),
    ("tab-indent", "version: 1\ndimensions:\n\ta: []\n", 3, "indent with spaces, not tabs"),
    ("two-documents", "version: 1\n---\nversion: 1\n", 2, "invalid YAML: but found another document"),
    (
        "not-a-mapping",
        "- version: 1\n",
        1,
        "must be a mapping with keys version, windows, dimensions; found a list",
    ),
    (
        "unknown-top-key",
        "version: 1\ndimension: {}\n",
        2,
        "unknown top-level key 'dimension' (did you mean 'dimensions'?)",
    ),
    (
        "duplicate-top-key",
        "version: 1\nversion: 1\n",
        2,
        "duplicate key 'version' in the rules file (first defined at line 1)",
    ),
    ("missing-version", "\n\ndimensions: {}\n", 3, "missing 'version'"),
    (
        "version-2",
        "version: 2\ndimensions: {}\n",
        1,
        "unsupported rules version: found the number 2, expected 1",
    ),
    ("version-string", "version: '1'\n", 1, "unsupported rules version: found the string '1'"),
    ("windows-not-mapping", "version: 1\nwindows: 365\n", 2, "'windows' must be a mapping"),
    (
        "unknown-window",
        "version: 1\nwindows:\n  value_day: 30\n",
        3,
        "unknown window 'value_day' (did you mean 'value_days'?)",
    ),
    (
        "window-zero",
        "version: 1\nwindows:\n  value_days: 0\n",
        3,
        "windows.value_days must be a positive whole number of days, found the number 0",
    ),
    (
        "window-negative",
        "version: 1\nwindows: {engagement_days: -3}\n",
        2,
        "windows.engagement_days must be a positive whole number",
    ),
    ("window-bool", "version: 1\nwindows:\n\n  engagement_days: yes\n", 4, "found the boolean yes"),
    ("window-float", "version: 1\nwindows:\n  value_days: 30.0\n", 3, "found the number 30.0"),
    ("window-string", "version: 1\nwindows:\n  value_days: '30'\n", 3, "found the string '30'"),
    (
        "window-too-large",
        "version: 1\nwindows:\n  value_days: 3651\n",
        3,
        "windows.value_days is too large: 3651 days (at most 3650)",
    ),
    ("missing-dimensions", "version: 1\nwindows: {value_days: 30}\n", 1, "missing 'dimensions'"),
    ("dimensions-empty", "version: 1\ndimensions: {}\n", 2, "'dimensions' is empty"),
    (
        "dimensions-null",
        "version: 1\ndimensions:\n",
        2,
        "'dimensions' must be a mapping of dimension name to list of tiers, found nothing",
    ),
    ("dimensions-list", "version: 1\ndimensions:\n  - lifecycle\n", 3, "'dimensions' must be a mapping"),
    (
        "duplicate-dimension",
        "version: 1\ndimensions:\n  a:\n" + GOOD_TAIL + "  a:\n" + GOOD_TAIL,
        5,
        "duplicate dimension 'a' in dimensions (first defined at line 3)",
    ),
    (
        "bad-dimension-name",
        "version: 1\ndimensions:\n  Life-Cycle:\n" + GOOD_TAIL,
        3,
        "invalid dimension name 'Life-Cycle'",
    ),
    (
        "dimension-not-list",
        "version: 1\ndimensions:\n  a:\n    tier: x\n",
        4,
        "dimension 'a' must be a list of tiers, found a mapping",
    ),
    (
        "dimension-null",
        "version: 1\ndimensions:\n  a:\n  b: []\n",
        3,
        "dimension 'a' must be a list of tiers, found nothing",
    ),
    ("dimension-empty", "version: 1\ndimensions:\n  a: []\n", 3, "dimension 'a' has no tiers"),
    (
        "tier-not-mapping",
        "version: 1\ndimensions:\n  a:\n    - rest\n",
        4,
        "each tier of dimension 'a' must be a mapping",
    ),
    (
        "unknown-tier-field",
        "version: 1\ndimensions:\n  a:\n    - tier: x\n      when: 'true'\n      colour: red\n",
        6,
        "unknown tier field 'colour' in dimension 'a' (allowed: tier, when, actions)",
    ),
    (
        "misspelt-tier-field",
        "version: 1\ndimensions:\n  a:\n    - {tier: x, wehn: 'true'}\n",
        4,
        "(did you mean 'when'?)",
    ),
    (
        "missing-tier",
        "version: 1\ndimensions:\n  a:\n    - when: 'true'\n",
        4,
        "a tier of dimension 'a' has no 'tier'",
    ),
    (
        "missing-when",
        "version: 1\ndimensions:\n  a:\n    - tier: x\n",
        4,
        "tier 'x' of dimension 'a' has no 'when'",
    ),
    (
        "duplicate-field",
        "version: 1\ndimensions:\n  a:\n    - tier: x\n      when: 'true'\n      when: 'false'\n",
        6,
        "duplicate key 'when'",
    ),
    (
        "duplicate-tier",
        "version: 1\ndimensions:\n  a:\n    - {tier: x, when: 'frequency > 1'}\n"
        "\n    - {tier: x, when: 'true'}\n",
        6,
        "duplicate tier 'x' in dimension 'a' (first defined at line 4)",
    ),
    (
        "bad-tier-name",
        "version: 1\ndimensions:\n  a:\n    - {tier: Gold, when: 'true'}\n",
        4,
        "invalid tier name 'Gold'",
    ),
    (
        "empty-tier-name",
        "version: 1\ndimensions:\n  a:\n    - {tier: , when: 'true'}\n",
        4,
        "tier name in dimension 'a' must be a name",
    ),
    (
        "syntax-error",
        "version: 1\ndimensions:\n  a:\n    - tier: x\n      when: frequency >> 1\n" + GOOD_TAIL,
        5,
        "syntax error in condition of tier 'x' of dimension 'a' at column 11: unknown operator '>>'",
    ),
    (
        "unknown-feature",
        "version: 1\ndimensions:\n  lifecycle:\n    - tier: churned\n      when: recencydays >= 180\n"
        + GOOD_TAIL,
        5,
        "unknown feature 'recencydays' in condition of tier 'churned' of dimension 'lifecycle' "
        "(did you mean 'recency_days'?)",
    ),
    (
        "non-number",
        "version: 1\ndimensions:\n  a:\n    - {tier: x, when: 'frequency >= \"6\"'}\n" + GOOD_TAIL,
        4,
        "comparison with a non-number in condition of tier 'x' of dimension 'a' at column 14",
    ),
    (
        "feature-vs-feature",
        "version: 1\ndimensions:\n  a:\n    - {tier: x, when: 'frequency >= engagement'}\n" + GOOD_TAIL,
        4,
        "comparison with a non-number",
    ),
    (
        "empty-condition",
        "version: 1\ndimensions:\n  a:\n    - tier: x\n      when:\n" + GOOD_TAIL,
        5,
        "the condition is empty",
    ),
    (
        "condition-list",
        "version: 1\ndimensions:\n  a:\n    - {tier: x, when: [true]}\n",
        4,
        "must be a string, found a list",
    ),
    (
        "capital-true",
        "version: 1\ndimensions:\n  a:\n    - {tier: x, when: True}\n",
        4,
        "keywords are lowercase: did you mean 'true'?",
    ),
    (
        "last-not-true",
        "version: 1\ndimensions:\n  a:\n    - {tier: x, when: 'true'}\n"
        "    - tier: y\n      when: frequency > 1\n",
        6,
        "the last tier of every dimension must be `true`: tier "
        "'y' of dimension 'a' has condition 'frequency > 1'",
    ),
    (
        "last-tautology",
        "version: 1\ndimensions:\n  a:\n    - {tier: x, when: 'true or frequency > 1'}\n",
        4,
        "the last tier of every dimension must be `true`",
    ),
    (
        "actions-not-list",
        "version: 1\ndimensions:\n  a:\n    - {tier: x, when: 'true', actions: winback}\n",
        4,
        "actions of tier 'x' must be a list of strings, found the string 'winback'",
    ),
    (
        "action-bad-name",
        "version: 1\ndimensions:\n  a:\n    - tier: x\n      when: 'true'\n"
        "      actions:\n        - ok\n        - Bad Action\n",
        8,
        "invalid action 'Bad Action' in tier 'x'",
    ),
    (
        "action-not-string",
        "version: 1\ndimensions:\n  a:\n    - tier: x\n"
        "      when: 'true'\n      actions:\n        - {a: 1}\n",
        7,
        "must be a list of strings, found a mapping in it",
    ),
    (
        "action-duplicate",
        "version: 1\ndimensions:\n  a:\n    - {tier: x, when: 'true', actions: [a, a]}\n",
        4,
        "duplicate action 'a' in tier 'x'",
    ),
    (
        "control-character",
        "version: 1\ndimensions:\n  a: \x07\n",
        3,
        "control character '\\x07' is not allowed",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "reason"), [case[1:] for case in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_bad_rules_files(text: str, line: int, reason: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.yaml")
    error = caught.value
    assert reason in error.reason
    assert error.line == line, str(error)
    assert error.file == "rules.yaml"
    assert str(error) == f"rules.yaml:{line}: {error.reason}"
    assert "\n" not in str(error)


def test_there_are_many_distinct_bad_file_kinds() -> None:
    assert len({case[0] for case in BAD_FILES}) == len(BAD_FILES) >= 12


def test_the_first_mistake_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "two-mistakes.yaml"
    path.write_text(
        "version: 1\ndimensions:\n  a:\n"
        "    - {tier: x, when: 'frequency > one'}\n    - {tier: y, when: 'nope'}\n"
    )
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert str(caught.value).startswith(f"{path}:4: comparison with a non-number")
