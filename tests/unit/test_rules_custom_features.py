"""Custom features (SPEC 11), `windows.history_days`, the `model:` key and predictive features (SPEC 12), and
what goes into the rules version."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from segmenter.rules import (
    COUNT_INTERACTIONS,
    COUNT_PURCHASES,
    DISTINCT_CATEGORIES,
    SUM_PURCHASES,
    Comparison,
    CustomFeature,
    RulesError,
    default_rules,
    default_rules_text,
    load_rules,
    parse_rules,
)

# The version of the built-in default rules: pinned, so that no new key changes what existing rules hash to.
DEFAULT_VERSION = "2f5a1668542d291d4127b8f057602f49c63445da6af0eea352465cf050f70867"

SPEC_FEATURES = """\
features:
  email_clicks_30d: {count: interactions, type: email_click, days: 30}
  tickets_90d:      {count: interactions, type: [support_ticket, complaint], days: 90}
  orders_90d:       {count: purchases, days: 90}
  electronics_365d: {sum: purchases, category: electronics, days: 365}
  categories_365d:  {distinct: categories, days: 365}
"""
TAIL = "dimensions:\n  d:\n    - {tier: x, when: 'tickets_90d > 2'}\n    - {tier: y, when: 'true'}\n"
MODEL = {
    "bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
    "gamma_gamma": {"p": 6.25, "q": 3.74, "v": 15.44},
    "time_unit": "day",
    "currency": "USD",
    "as_of": "2026-11-24",
    "customers": 100,
    "repeat_customers": 40,
    "log_likelihood": {"bgnbd": -1.0, "gamma_gamma": -2.0},
}


def rules_with(features: str, tail: str = TAIL, windows: str = "") -> str:
    return f"version: 1\n{windows}{features}{tail}"


def test_the_spec_example_declares_five_features() -> None:
    rules = parse_rules(rules_with(SPEC_FEATURES), "r.yaml")
    assert rules.custom_features == (
        CustomFeature("email_clicks_30d", COUNT_INTERACTIONS, 30, frozenset({"email_click"}), None),
        CustomFeature(
            "tickets_90d", COUNT_INTERACTIONS, 90, frozenset({"support_ticket", "complaint"}), None
        ),
        CustomFeature("orders_90d", COUNT_PURCHASES, 90, None, None),
        CustomFeature("electronics_365d", SUM_PURCHASES, 365, None, frozenset({"electronics"})),
        CustomFeature("categories_365d", DISTINCT_CATEGORIES, 365, None, None),
    )
    assert [feature.line for feature in rules.custom_features] == [3, 4, 5, 6, 7]
    assert rules.custom_feature("orders_90d").days == 90
    assert [f.money for f in rules.custom_features] == [False, False, False, True, False]
    assert rules.feature_names[9:] == (
        "email_clicks_30d",
        "tickets_90d",
        "orders_90d",
        "electronics_365d",
        "categories_365d",
    )
    assert "electronics_365d" in rules.money_features and "orders_90d" not in rules.money_features
    assert rules.model is None and rules.history_days == 365


def test_custom_features_are_features_of_conditions() -> None:
    tail = (
        "dimensions:\n  d:\n"
        "    - {tier: big, when: 'electronics_365d >= 100.50'}\n"
        "    - {tier: broad, when: 'categories_365d >= 3 and orders_90d > 0'}\n"
        "    - {tier: y, when: 'true'}\n"
    )
    rules = parse_rules(rules_with(SPEC_FEATURES, tail))
    money, broad, orders = rules.comparisons
    # sum: money, like monetary: the number is currency units, the value cents
    assert money == Comparison("electronics_365d", ">=", Fraction(201, 2), money=True)
    assert money.threshold == 10_050
    assert broad.threshold == 3 and not broad.money
    assert str(orders) == "orders_90d > 0"
    assert rules.dimensions[0].tiers[0].normalised == "electronics_365d >= 100.5"
    assert rules.classify({"electronics_365d": 10_050}) == ("big",)
    assert rules.classify({"electronics_365d": 10_049, "categories_365d": 3, "orders_90d": 1}) == ("broad",)
    assert rules.classify({"electronics_365d": None, "categories_365d": 3, "orders_90d": 0}) == ("y",)
    assert rules.classify({}) == ("y",)


def test_a_custom_feature_unknown_to_the_file_is_an_unknown_feature() -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(rules_with("features:\n  orders_90d: {count: purchases, days: 90}\n", TAIL), "r.yaml")
    assert str(caught.value).startswith("r.yaml:6: unknown feature 'tickets_90d'")
    tail = "dimensions:\n  d:\n    - {tier: x, when: 'orders_09d > 2'}\n    - {tier: y, when: 'true'}\n"
    with pytest.raises(RulesError, match="did you mean 'orders_90d'"):
        parse_rules(rules_with("features:\n  orders_90d: {count: purchases, days: 90}\n", tail))


def feature(line: str) -> str:
    return f"features:\n  {line}\n"


BAD_FEATURES = [
    # (id, features block, line, reason fragment)
    ("not-a-mapping", "features: [a, b]\n", 2, "'features' must be a mapping of feature name to declaration"),
    ("empty-value", "features:\n", 2, "'features' must be a mapping"),
    ("bad-name-upper", feature("Orders: {count: purchases, days: 9}"), 3, "invalid feature name 'Orders'"),
    ("bad-name-digit", feature("9orders: {count: purchases, days: 9}"), 3, "invalid feature name '9orders'"),
    ("bad-name-long", feature("a" * 49 + ": {count: purchases, days: 9}"), 3, "up to 47 of a-z 0-9 _"),
    ("bad-name-dash", feature("orders-90d: {count: purchases, days: 9}"), 3, "invalid feature name"),
    (
        "built-in-name",
        feature("monetary: {count: purchases, days: 9}"),
        3,
        "'monetary' is a built-in feature",
    ),
    (
        "predictive-name",
        feature("p_alive: {count: purchases, days: 9}"),
        3,
        "'p_alive' is a predictive feature",
    ),
    (
        "duplicate-name",
        "features:\n  a: {count: purchases, days: 9}\n  a: {count: purchases, days: 8}\n",
        4,
        "duplicate feature 'a' in features (first defined at line 3)",
    ),
    (
        "spec-not-mapping",
        feature("a: 30"),
        3,
        "feature 'a' must be a mapping like {count: purchases, days: 90}",
    ),
    ("spec-empty", "features:\n  a:\n", 3, "feature 'a' must be a mapping"),
    (
        "unknown-key",
        feature("a: {count: purchases, days: 9, window: 3}"),
        3,
        "unknown key 'window' in feature 'a'",
    ),
    ("unknown-key-hint", feature("a: {count: purchases, day: 9}"), 3, "did you mean 'days'?"),
    (
        "no-kind",
        feature("a: {days: 9}"),
        3,
        "feature 'a' needs exactly one of count: purchases, count: interactions",
    ),
    ("two-kinds", feature("a: {count: purchases, sum: purchases, days: 9}"), 3, "has both 'count' and 'sum'"),
    ("bad-count", feature("a: {count: refunds, days: 9}"), 3, "'count' must be purchases or interactions"),
    ("bad-sum", feature("a: {sum: interactions, days: 9}"), 3, "'sum' must be purchases, found the string"),
    ("bad-distinct", feature("a: {distinct: types, days: 9}"), 3, "'distinct' must be categories"),
    ("kind-not-scalar", feature("a: {count: [purchases], days: 9}"), 3, "'count' must be purchases or"),
    ("no-days", feature("a: {count: purchases}"), 3, "feature 'a' has no 'days'"),
    (
        "days-zero",
        feature("a: {count: purchases, days: 0}"),
        3,
        "days of feature 'a' must be a positive whole",
    ),
    ("days-text", feature("a: {count: purchases, days: ninety}"), 3, "found the string 'ninety'"),
    ("days-float", feature("a: {count: purchases, days: 1.5}"), 3, "found the number 1.5"),
    ("days-too-long", feature("a: {count: purchases, days: 3651}"), 3, "too large: 3651 days (at most 3650)"),
    (
        "type-on-purchases",
        feature("a: {count: purchases, type: email_click, days: 9}"),
        3,
        "feature 'a' (count: purchases) takes only a 'category' filter; 'type' filters interaction types",
    ),
    (
        "category-on-interactions",
        feature("a: {count: interactions, category: books, days: 9}"),
        3,
        "feature 'a' (count: interactions) takes only a 'type' filter; "
        "'category' filters purchase categories",
    ),
    ("type-on-sum", feature("a: {sum: purchases, type: x, days: 9}"), 3, "takes only a 'category' filter"),
    ("filter-on-distinct", feature("a: {distinct: categories, category: x, days: 9}"), 3, "takes no filter"),
    ("type-on-distinct", feature("a: {distinct: categories, type: x, days: 9}"), 3, "takes no filter"),
    (
        "bad-type",
        feature("a: {count: interactions, type: Email-Click, days: 9}"),
        3,
        "invalid interaction type",
    ),
    (
        "bad-type-in-list",
        "features:\n  a:\n    count: interactions\n    days: 9\n"
        "    type:\n      - email_click\n      - 9lives\n",
        8,
        "invalid interaction type '9lives'",
    ),
    (
        "empty-type-list",
        feature("a: {count: interactions, type: [], days: 9}"),
        3,
        "'type' of feature 'a' is an empty",
    ),
    (
        "type-mapping",
        feature("a: {count: interactions, type: {x: 1}, days: 9}"),
        3,
        "must be a string or a list",
    ),
    (
        "empty-category",
        feature("a: {count: purchases, category: , days: 9}"),
        3,
        "must be a string or a list",
    ),
    ("null-category", feature("a: {count: purchases, category: null, days: 9}"), 3, "found null"),
    (
        "category-list-of-lists",
        feature("a: {sum: purchases, category: [[x]], days: 9}"),
        3,
        "list of strings, found a list",
    ),
    ("duplicate-type", feature("a: {count: interactions, type: [x, x], days: 9}"), 3, "duplicate value 'x'"),
    ("duplicate-key", feature("a: {count: purchases, days: 9, days: 8}"), 3, "duplicate key 'days'"),
]


@pytest.mark.parametrize(
    ("text", "line", "reason"), [case[1:] for case in BAD_FEATURES], ids=[case[0] for case in BAD_FEATURES]
)
def test_bad_custom_features(text: str, line: int, reason: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(rules_with(text, "dimensions:\n  d:\n    - {tier: y, when: 'true'}\n"), "rules.yaml")
    error = caught.value
    assert reason in error.reason, str(error)
    assert error.line == line, str(error)
    assert str(error) == f"rules.yaml:{line}: {error.reason}"


def test_filters_accept_one_value_or_a_list() -> None:
    text = (
        "features:\n"
        "  a: {count: purchases, category: [books, music], days: 9}\n"
        "  b: {sum: purchases, category: 2024, days: 9}\n"  # a YAML number: the category text as written
        "  c: {count: interactions, type: [email_click], days: 9}\n"
    )
    rules = parse_rules(rules_with(text, "dimensions:\n  d:\n    - {tier: y, when: 'true'}\n"))
    a, b, c = rules.custom_features
    assert a.categories == frozenset({"books", "music"}) and a.types is None
    assert b.categories == frozenset({"2024"})
    assert c.types == frozenset({"email_click"}) and c.categories is None


# ------------------------------------------------------------------------------------------ history_days


def windows(text: str) -> str:
    return f"windows: {{{text}}}\n"


def test_history_days_defaults_to_the_longest_window_and_at_least_365() -> None:
    def history(text: str, features: str = "") -> int:
        body = rules_with(features, "dimensions:\n  d:\n    - {tier: y, when: 'true'}\n", text)
        return parse_rules(body).history_days

    assert default_rules().history_days == 365
    assert history("") == 365
    assert history(windows("value_days: 30, engagement_days: 7")) == 365
    assert history(windows("value_days: 400")) == 400
    assert history(windows("engagement_days: 500")) == 500
    assert history("", feature("a: {count: purchases, days: 730}")) == 730
    assert history(windows("history_days: 100, value_days: 90")) == 100
    assert history(windows("history_days: 3650"), feature("a: {count: purchases, days: 3650}")) == 3650


@pytest.mark.parametrize(
    ("text", "features", "line", "reason"),
    [
        (
            windows("value_days: 400, history_days: 365"),
            "",
            2,
            "windows.value_days (400 days) is longer than windows.history_days: 365 (line 2)",
        ),
        (
            "windows:\n  history_days: 400\n  engagement_days: 500\n",
            "",
            4,
            "windows.engagement_days (500 days) is longer than windows.history_days: 400 (line 3)",
        ),
        (
            "windows:\n  history_days: 100\n",
            "",
            3,
            "windows.value_days (365 days, the default) is longer than windows.history_days: 100",
        ),
        (
            windows("history_days: 365"),
            "features:\n  a: {count: purchases, days: 30}\n  b: {count: purchases, days: 366}\n",
            5,
            "feature 'b' has days: 366, longer than windows.history_days: 365 (line 2)",
        ),
        (windows("history_days: 0"), "", 2, "windows.history_days must be a positive whole number"),
        (windows("history_days: 3651"), "", 2, "windows.history_days is too large: 3651 days"),
        (windows("history: 400"), "", 2, "unknown window 'history' (did you mean 'history_days'?)"),
    ],
)
def test_bad_history_days(text: str, features: str, line: int, reason: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(
            rules_with(features, "dimensions:\n  d:\n    - {tier: y, when: 'true'}\n", text), "r.yaml"
        )
    assert reason in caught.value.reason, str(caught.value)
    assert caught.value.line == line, str(caught.value)


# ------------------------------------------------------------------------------------------ model


def write_model(directory: Path, document: object = None, name: str = "model.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(MODEL if document is None else document))
    return path


PREDICTIVE_TAIL = (
    "dimensions:\n  d:\n"
    "    - {tier: gone, when: 'p_alive < 0.3'}\n"
    "    - {tier: star, when: 'predicted_clv >= 250.50 and expected_purchases >= 1.5'}\n"
    "    - {tier: y, when: 'true'}\n"
)


def test_a_named_model_brings_the_predictive_features(tmp_path: Path) -> None:
    write_model(tmp_path)
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nmodel: {file: model.json, horizon_days: 90}\n" + PREDICTIVE_TAIL)
    rules = load_rules(path)
    model = rules.model
    assert model is not None
    assert model.file == str(tmp_path / "model.json")  # relative to the rules file, not the cwd
    assert model.horizon_days == 90 and model.line == 2
    assert model.bgnbd == {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert model.gamma_gamma == {"p": 6.25, "q": 3.74, "v": 15.44}
    assert rules.feature_names[-3:] == ("p_alive", "expected_purchases", "predicted_clv")
    assert "predicted_clv" in rules.money_features and "p_alive" not in rules.money_features
    p_alive, clv, expected = rules.comparisons
    assert p_alive.threshold == Fraction(3, 10) and not p_alive.money
    assert clv.threshold == 25_050 and clv.money  # money: compared in cents
    assert expected.threshold == Fraction(3, 2)
    assert rules.classify({"p_alive": 0.29, "predicted_clv": 99_999, "expected_purchases": 9.0}) == ("gone",)
    assert rules.classify({"p_alive": 0.31, "predicted_clv": 25_050, "expected_purchases": 1.5}) == ("star",)
    # compared unrounded and exactly: the double nearest 0.3 is below 3/10
    assert rules.classify({"p_alive": 0.3, "predicted_clv": 0, "expected_purchases": 0.0}) == ("gone",)
    assert rules.classify({"p_alive": 0.9, "predicted_clv": 25_049, "expected_purchases": 1.5}) == ("y",)
    assert rules.classify({"p_alive": None, "predicted_clv": None, "expected_purchases": None}) == ("y",)


def test_model_paths_resolve_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    write_model(tmp_path / "models")
    text = "version: 1\nmodel: {file: models/model.json, horizon_days: 30}\n" + PREDICTIVE_TAIL
    rules = parse_rules(text, "<stdin>", base_dir=str(tmp_path))
    assert rules.model is not None and rules.model.file == str(tmp_path / "models" / "model.json")


@pytest.mark.parametrize("name", ["p_alive", "expected_purchases", "predicted_clv"])
def test_predictive_features_need_a_model(name: str) -> None:
    tail = f"dimensions:\n  d:\n    - {{tier: x, when: '{name} > 0'}}\n    - {{tier: y, when: 'true'}}\n"
    with pytest.raises(RulesError) as caught:
        parse_rules("version: 1\n" + tail, "r.yaml")
    assert caught.value.line == 4
    assert f"unknown feature '{name}'" in str(caught.value)
    assert "the rules file must name a model" in str(caught.value)


@pytest.mark.parametrize(
    ("model_key", "document", "line", "reason"),
    [
        ("model: model.json", None, 2, "'model' must be a mapping like {file: model.json, horizon_days: 90}"),
        ("model: {horizon_days: 90}", None, 2, "model has no 'file'"),
        ("model: {file: model.json}", None, 2, "model has no 'horizon_days'"),
        ("model: {file: model.json, horizon_days: 90, as_of: x}", None, 2, "unknown key 'as_of' in model"),
        ("model: {file: model.json, horizon: 90}", None, 2, "did you mean 'horizon_days'?"),
        (
            "model: {file: model.json, horizon_days: 0}",
            None,
            2,
            "model.horizon_days must be a positive whole",
        ),
        ("model: {file: model.json, horizon_days: 3651}", None, 2, "too large"),
        ("model: {file: , horizon_days: 90}", None, 2, "model.file must be a path"),
        (
            "model:\n  horizon_days: 90\n  file: missing.json",
            None,
            4,
            "model file 'missing.json': cannot read it",
        ),
        (
            "model: {file: model.json, horizon_days: 90}",
            "not json",
            2,
            "model file 'model.json': not valid JSON",
        ),
        ("model: {file: model.json, horizon_days: 90}", [1], 2, "the model must be a JSON object"),
        (
            "model: {file: model.json, horizon_days: 90}",
            {"gamma_gamma": MODEL["gamma_gamma"]},
            2,
            "bgnbd must be",
        ),
        (
            "model: {file: model.json, horizon_days: 90}",
            {**MODEL, "bgnbd": {**MODEL["bgnbd"], "alpha": -1}},  # type: ignore[dict-item]
            2,
            "bgnbd.alpha must be a positive number, got -1",
        ),
        (
            "model: {file: model.json, horizon_days: 90}",
            {**MODEL, "gamma_gamma": {"p": 1, "q": 2}},
            2,
            "gamma_gamma.v must be a positive number, got null",
        ),
        (
            "model: {file: model.json, horizon_days: 90}",
            {**MODEL, "gamma_gamma": {"p": 1, "q": True, "v": 1}},
            2,
            "gamma_gamma.q must be a positive number, got true",
        ),
        (
            "model: {file: model.json, horizon_days: 90}",
            {**MODEL, "gamma_gamma": {"p": 1, "q": 0.5, "v": 1}},
            2,
            "gamma_gamma.q must be > 1",
        ),
    ],
)
def test_bad_models(tmp_path: Path, model_key: str, document: object, line: int, reason: str) -> None:
    path = tmp_path / "model.json"
    path.write_text(
        document if isinstance(document, str) else json.dumps(MODEL if document is None else document)
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"version: 1\n{model_key}\n" + PREDICTIVE_TAIL)
    with pytest.raises(RulesError) as caught:
        load_rules(rules)
    error = caught.value
    assert reason in error.reason, str(error)
    assert (error.file, error.line) == (str(rules), line), str(error)
    assert "\n" not in str(error)


# ------------------------------------------------------------------------------------------ rules version


def test_the_default_rules_version_is_unchanged() -> None:
    assert default_rules().version == DEFAULT_VERSION
    assert parse_rules(default_rules_text()).version == DEFAULT_VERSION
    # spelling out the default history adds nothing
    spelled = default_rules_text().replace(
        "windows: {value_days: 365, engagement_days: 30}",
        "windows: {value_days: 365, engagement_days: 30, history_days: 365}",
    )
    assert parse_rules(spelled).version == DEFAULT_VERSION
    assert parse_rules(
        default_rules_text().replace("version: 1\n", "version: 1\nfeatures: {}\n")
    ).version == (DEFAULT_VERSION)


def test_custom_features_history_and_model_are_part_of_the_version(tmp_path: Path) -> None:
    base = default_rules_text()

    def version(text: str) -> str:
        return parse_rules(text, str(tmp_path / "rules.yaml")).version

    with_feature = base.replace("version: 1\n", "version: 1\nfeatures:\n  a: {count: purchases, days: 90}\n")
    versions = {
        "default": DEFAULT_VERSION,
        "feature": version(with_feature),
        "feature-days": version(with_feature.replace("days: 90", "days: 91")),
        "feature-kind": version(with_feature.replace("count: purchases", "distinct: categories")),
        "feature-filter": version(with_feature.replace("days: 90", "days: 90, category: books")),
        "feature-name": version(with_feature.replace("  a:", "  b:")),
        "history": version(base.replace("engagement_days: 30}", "engagement_days: 30, history_days: 400}")),
    }
    write_model(tmp_path)
    with_model = base.replace("version: 1\n", "version: 1\nmodel: {file: model.json, horizon_days: 90}\n")
    versions["model"] = version(with_model)
    versions["model-horizon"] = version(with_model.replace("horizon_days: 90", "horizon_days: 91"))
    write_model(tmp_path, {**MODEL, "bgnbd": {**MODEL["bgnbd"], "r": 0.244}}, "other.json")  # type: ignore[dict-item]
    versions["model-parameters"] = version(with_model.replace("model.json", "other.json"))
    assert len(set(versions.values())) == len(versions), versions
    # where the model file lives is not part of the version; what it holds is
    (tmp_path / "sub").mkdir()
    write_model(tmp_path / "sub")
    assert version(with_model.replace("model.json", "sub/model.json")) == versions["model"]
    # the order of features and of filter values is not part of the version either
    two = "features:\n  a: {count: purchases, days: 90}\n  b: {count: interactions, type: [x, y], days: 9}\n"
    swapped = (
        "features:\n  b: {count: interactions, type: [y, x], days: 9}\n  a: {count: purchases, days: 90}\n"
    )
    assert version(base.replace("version: 1\n", "version: 1\n" + two)) == version(
        base.replace("version: 1\n", "version: 1\n" + swapped)
    )
