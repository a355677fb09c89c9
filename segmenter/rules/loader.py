"""Rules files (SPEC sections 5, 11, 12): YAML text -> validated `RuleSet`; mistakes are `file:line: reason`.

The YAML is composed to nodes (never constructed into Python objects wholesale), so every value keeps its line
and duplicate mapping keys — which a plain YAML load silently collapses — are caught. Names and conditions
are read from the scalar's text, so `when: true` (a YAML boolean) is the condition `true`, and a tier called
`no` stays the string "no".
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from segmenter.rules.expression import ConditionError, compile_condition
from segmenter.rules.model import (
    BUILTIN_CATALOG,
    COUNT_INTERACTIONS,
    COUNT_PURCHASES,
    DISTINCT_CATEGORIES,
    FEATURES,
    PREDICTIVE_FEATURES,
    SUM_PURCHASES,
    Comparison,
    CustomFeature,
    Dimension,
    FeatureCatalog,
    PredictiveModel,
    RulesError,
    RuleSet,
    Tier,
    default_history_days,
    feature_catalog,
)

SUPPORTED_VERSION = 1
DEFAULT_WINDOWS = {"value_days": 365, "engagement_days": 30}
WINDOW_KEYS = ("value_days", "engagement_days", "history_days")
MAX_WINDOW_DAYS = 3650
TOP_LEVEL_KEYS = ("version", "windows", "features", "model", "dimensions")
FEATURE_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,47}")
INTERACTION_TYPE_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
FEATURE_KEYS = ("count", "sum", "distinct", "days", "type", "category")
# (kind key, its value) -> CustomFeature.kind
CUSTOM_KINDS = {
    ("count", "purchases"): COUNT_PURCHASES,
    ("count", "interactions"): COUNT_INTERACTIONS,
    ("sum", "purchases"): SUM_PURCHASES,
    ("distinct", "categories"): DISTINCT_CATEGORIES,
}
KIND_TEXT = "count: purchases, count: interactions, sum: purchases or distinct: categories"
# The filter each kind accepts (None: no filter).
KIND_FILTERS = {
    COUNT_PURCHASES: "category",
    COUNT_INTERACTIONS: "type",
    SUM_PURCHASES: "category",
    DISTINCT_CATEGORIES: None,
}
MODEL_KEYS = ("file", "horizon_days")
MAX_HORIZON_DAYS = 3650
TIER_FIELDS = ("tier", "when", "actions")
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
ACTION_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
DEFAULT_SOURCE = "<default>"

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"


def _line(node: Node) -> int:
    line: int = node.start_mark.line
    return line + 1


def _describe(node: Node) -> str:
    """What a node is, for error messages: `a list`, `the string 'x'`, `the number 5`, `null`."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing" if node.value in ("", "~") else "null"
    if node.tag == _BOOL:
        return f"the boolean {node.value}"
    value = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    if node.tag == _STR:
        return f"the string {value!r}"
    if node.tag in (_INT, "tag:yaml.org,2002:float"):
        return f"the number {value}"
    return repr(value)


def _is_empty(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL and node.value in ("", "~")


def _did_you_mean(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (allowed: {', '.join(choices)})"


class _Loader:
    def __init__(self, text: str, source: str, base_dir: str | None = None) -> None:
        self.text = text
        self.source = source
        if base_dir is None:  # a real file: paths in it are relative to its directory
            base_dir = "." if source.startswith("<") else os.path.dirname(source) or "."
        self.base_dir = base_dir
        self.files: Mapping[str, str] | None = None
        self.catalog: FeatureCatalog = BUILTIN_CATALOG

    def error(self, node_or_line: Node | int | None, reason: str) -> RulesError:
        line = _line(node_or_line) if isinstance(node_or_line, Node) else node_or_line
        return RulesError(self.source, line, reason)

    # ---------------------------------------------------------------- YAML
    def compose(self) -> Node:
        try:
            root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            raise self._yaml_error(exc) from None
        except yaml.reader.ReaderError as exc:
            line = self.text.count("\n", 0, max(exc.position, 0)) + 1
            character = chr(exc.character) if isinstance(exc.character, int) else exc.character
            raise self.error(line, f"invalid YAML: control character {character!r} is not allowed") from None
        except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML error above carries a position
            raise self.error(None, f"invalid YAML: {' '.join(str(exc).split())}") from None
        if root is None:
            raise self.error(1, "the rules file is empty (expected keys: version, windows, dimensions)")
        return root

    def _yaml_error(self, exc: yaml.MarkedYAMLError) -> RulesError:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        if line is not None:  # an error at the end of the stream: point at the last line, not past it
            last_line = max(1, len(self.text.splitlines()))
            line = min(line, last_line)
        reason = exc.problem or exc.context or "malformed YAML"
        if exc.problem and exc.context:
            where = ""
            if exc.context_mark is not None and mark is not None and exc.context_mark.line != mark.line:
                where = f" at line {exc.context_mark.line + 1}"
            reason = f"{exc.problem} ({exc.context}{where})"
        if exc.problem and "'\\t'" in exc.problem:
            reason += "; indent with spaces, not tabs"
        return self.error(line, f"invalid YAML: {' '.join(reason.split())}")

    def mapping_items(self, node: MappingNode, what: str) -> list[tuple[str, ScalarNode, Node]]:
        """(key text, key node, value node) in order; rejects non-scalar and duplicate keys."""
        items: list[tuple[str, ScalarNode, Node]] = []
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise self.error(key_node, f"keys of {what} must be plain names, found {_describe(key_node)}")
            key = key_node.value
            if key == "<<" and key_node.tag == "tag:yaml.org,2002:merge":
                raise self.error(key_node, f"merge keys ('<<') are not supported in {what}")
            if key in seen:
                label = {"dimensions": "dimension", "features": "feature"}.get(what, "key")
                raise self.error(
                    key_node, f"duplicate {label} '{key}' in {what} (first defined at line {seen[key]})"
                )
            seen[key] = _line(key_node)
            items.append((key, key_node, value_node))
        return items

    # ---------------------------------------------------------------- structure
    def load(self) -> RuleSet:
        root = self.compose()
        if not isinstance(root, MappingNode):
            raise self.error(
                root,
                "the rules file must be a mapping with keys version, windows, dimensions; "
                f"found {_describe(root)}",
            )
        fields: dict[str, tuple[ScalarNode, Node]] = {}
        for key, key_node, value in self.mapping_items(root, "the rules file"):
            if key not in TOP_LEVEL_KEYS:
                raise self.error(
                    key_node, f"unknown top-level key '{key}'{_did_you_mean(key, TOP_LEVEL_KEYS)}"
                )
            fields[key] = (key_node, value)

        if "version" not in fields:
            raise self.error(root, f"missing 'version' (add `version: {SUPPORTED_VERSION}`)")
        self.check_version(*fields["version"])
        custom = self.features(*fields["features"]) if "features" in fields else ()
        model = self.model(*fields["model"]) if "model" in fields else None
        windows, window_lines = self.windows(*fields["windows"]) if "windows" in fields else ({}, {})
        value_days = windows.get("value_days", DEFAULT_WINDOWS["value_days"])
        engagement_days = windows.get("engagement_days", DEFAULT_WINDOWS["engagement_days"])
        history_days = self.history_days(value_days, engagement_days, windows, window_lines, custom)
        if "dimensions" not in fields:
            raise self.error(root, "missing 'dimensions' (a mapping of dimension name to list of tiers)")
        self.catalog = feature_catalog(custom, model is not None)
        dimensions = self.dimensions(*fields["dimensions"])

        comparisons: dict[Comparison, None] = {}
        for dimension in dimensions:
            for tier in dimension.tiers:
                for comparison in tier.comparisons:
                    comparisons.setdefault(comparison)
        version = rules_version(
            value_days,
            engagement_days,
            dimensions,
            history_days=history_days,
            custom_features=custom,
            model=model,
        )
        return RuleSet(
            value_days=value_days,
            engagement_days=engagement_days,
            dimensions=dimensions,
            comparisons=tuple(comparisons),
            version=version,
            source=self.source,
            custom_features=custom,
            history_days=history_days,
            model=model,
        )

    def check_version(self, key_node: ScalarNode, node: Node) -> None:
        at = key_node if _is_empty(node) else node
        if not (isinstance(node, ScalarNode) and node.tag == _INT and _int(node) == SUPPORTED_VERSION):
            raise self.error(
                at, f"unsupported rules version: found {_describe(node)}, expected {SUPPORTED_VERSION}"
            )

    def days(self, what: str, key_node: ScalarNode, node: Node, maximum: int = MAX_WINDOW_DAYS) -> int:
        """A whole number of days in 1..maximum, or an error naming `what` at the value's line."""
        at = key_node if _is_empty(node) else node
        if not (isinstance(node, ScalarNode) and node.tag == _INT) or _int(node) <= 0:
            raise self.error(at, f"{what} must be a positive whole number of days, found {_describe(node)}")
        days = _int(node)
        if days > maximum:
            raise self.error(at, f"{what} is too large: {days} days (at most {maximum})")
        return days

    def windows(self, key_node: ScalarNode, node: Node) -> tuple[dict[str, int], dict[str, int]]:
        """The windows given (by key) and their lines."""
        if not isinstance(node, MappingNode):
            raise self.error(
                key_node if _is_empty(node) else node,
                f"'windows' must be a mapping like {{value_days: 365, engagement_days: 30}}, "
                f"found {_describe(node)}",
            )
        windows: dict[str, int] = {}
        lines: dict[str, int] = {}
        for key, window_key, value in self.mapping_items(node, "windows"):
            if key not in WINDOW_KEYS:
                raise self.error(window_key, f"unknown window '{key}'{_did_you_mean(key, WINDOW_KEYS)}")
            windows[key] = self.days(f"windows.{key}", window_key, value)
            lines[key] = _line(window_key)
        return windows, lines

    def history_days(
        self,
        value_days: int,
        engagement_days: int,
        windows: dict[str, int],
        lines: dict[str, int],
        custom: tuple[CustomFeature, ...],
    ) -> int:
        """SPEC 11: `windows.history_days`, or the longest window (at least 365); no window may be longer."""
        if "history_days" not in windows:
            return default_history_days(value_days, engagement_days, custom)
        history = windows["history_days"]
        at = f"windows.history_days: {history} (line {lines['history_days']})"
        for key, days in (("value_days", value_days), ("engagement_days", engagement_days)):
            if days > history:
                given = key in lines
                raise self.error(
                    lines[key] if given else lines["history_days"],
                    f"windows.{key} ({days} days{'' if given else ', the default'}) is longer than {at}: "
                    "the state keeps only history_days days",
                )
        for feature in custom:
            if feature.days > history:
                raise self.error(
                    feature.line,
                    f"feature '{feature.name}' has days: {feature.days}, longer than {at}: "
                    "the state keeps only history_days days",
                )
        return history

    # ---------------------------------------------------------------- custom features (SPEC 11)
    def features(self, key_node: ScalarNode, node: Node) -> tuple[CustomFeature, ...]:
        if not isinstance(node, MappingNode):
            raise self.error(
                key_node if _is_empty(node) else node,
                "'features' must be a mapping of feature name to declaration like "
                f"{{count: purchases, days: 90}}, found {_describe(node)}",
            )
        return tuple(
            self.custom_feature(name, name_node, spec)
            for name, name_node, spec in self.mapping_items(node, "features")
        )

    def custom_feature(self, name: str, name_node: ScalarNode, node: Node) -> CustomFeature:
        self.check_feature_name(name, name_node)
        if not isinstance(node, MappingNode):
            raise self.error(
                name_node if _is_empty(node) else node,
                f"feature '{name}' must be a mapping like {{count: purchases, days: 90}}, "
                f"found {_describe(node)}",
            )
        entries: dict[str, tuple[ScalarNode, Node]] = {}
        for key, key_node, value in self.mapping_items(node, f"feature '{name}'"):
            if key not in FEATURE_KEYS:
                raise self.error(
                    key_node, f"unknown key '{key}' in feature '{name}'{_did_you_mean(key, FEATURE_KEYS)}"
                )
            entries[key] = (key_node, value)
        kind, kind_text = self.feature_kind(name, node, entries)
        if "days" not in entries:
            raise self.error(
                node, f"feature '{name}' has no 'days' (its window: 1 to {MAX_WINDOW_DAYS} days)"
            )
        days = self.days(f"days of feature '{name}'", *entries["days"])
        accepted = KIND_FILTERS[kind]
        for key in ("type", "category"):
            if key in entries and key != accepted:
                takes = "no filter" if accepted is None else f"only a '{accepted}' filter"
                filters = "interaction types" if key == "type" else "purchase categories"
                raise self.error(
                    entries[key][0],
                    f"feature '{name}' ({kind_text}) takes {takes}; '{key}' filters {filters}",
                )
        types = self.filter_values(name, "type", *entries["type"]) if "type" in entries else None
        categories = (
            self.filter_values(name, "category", *entries["category"]) if "category" in entries else None
        )
        return CustomFeature(name, kind, days, types, categories, _line(name_node))

    def check_feature_name(self, name: str, name_node: ScalarNode) -> None:
        if not FEATURE_NAME_RE.fullmatch(name):
            raise self.error(
                name_node,
                f"invalid feature name {name!r}: feature names are a lowercase letter followed by up to 47 "
                "of a-z 0-9 _",
            )
        if name in FEATURES:
            raise self.error(
                name_node, f"feature '{name}' is a built-in feature (SPEC section 4): choose another name"
            )
        if name in PREDICTIVE_FEATURES:
            raise self.error(
                name_node, f"feature '{name}' is a predictive feature (SPEC section 12): choose another name"
            )

    def feature_kind(
        self, name: str, node: MappingNode, entries: dict[str, tuple[ScalarNode, Node]]
    ) -> tuple[str, str]:
        """(CustomFeature.kind, its text as written, e.g. 'count: purchases')."""
        given = [key for key in ("count", "sum", "distinct") if key in entries]
        if not given:
            raise self.error(node, f"feature '{name}' needs exactly one of {KIND_TEXT}")
        if len(given) > 1:
            raise self.error(
                entries[given[1]][0],
                f"feature '{name}' has both '{given[0]}' and '{given[1]}': "
                f"it needs exactly one of {KIND_TEXT}",
            )
        key = given[0]
        key_node, value = entries[key]
        text = value.value if isinstance(value, ScalarNode) else None
        kind = CUSTOM_KINDS.get((key, text)) if isinstance(text, str) else None
        if kind is None:
            allowed = " or ".join(v for (k, v) in CUSTOM_KINDS if k == key)
            raise self.error(
                key_node if _is_empty(value) else value,
                f"feature '{name}': '{key}' must be {allowed}, found {_describe(value)}",
            )
        return kind, f"{key}: {text}"

    def filter_values(self, name: str, key: str, key_node: ScalarNode, node: Node) -> frozenset[str]:
        """A filter: one value or a non-empty list of distinct values (interaction types must be valid)."""
        items = node.value if isinstance(node, SequenceNode) else [node]
        what = f"'{key}' of feature '{name}'"
        if isinstance(node, SequenceNode) and not items:
            raise self.error(node, f"{what} is an empty list: give one value or a list of values")
        values: list[str] = []
        for item in items:
            if not isinstance(item, ScalarNode) or _is_empty(item) or item.tag == _NULL or not item.value:
                raise self.error(
                    key_node if _is_empty(item) else item,
                    f"{what} must be a string or a list of strings, found {_describe(item)}",
                )
            value = item.value
            if key == "type" and not INTERACTION_TYPE_RE.fullmatch(value):
                raise self.error(
                    item,
                    f"invalid interaction type {value!r} in {what}: types are a lowercase letter followed "
                    "by up to 31 of a-z 0-9 _",
                )
            if value in values:
                raise self.error(item, f"duplicate value {value!r} in {what}")
            values.append(value)
        return frozenset(values)

    # ---------------------------------------------------------------- predictive model (SPEC 12)
    def model(self, key_node: ScalarNode, node: Node) -> PredictiveModel:
        if not isinstance(node, MappingNode):
            raise self.error(
                key_node if _is_empty(node) else node,
                f"'model' must be a mapping like {{file: model.json, horizon_days: 90}}, "
                f"found {_describe(node)}",
            )
        entries: dict[str, tuple[ScalarNode, Node]] = {}
        for key, entry_key, value in self.mapping_items(node, "model"):
            if key not in MODEL_KEYS:
                raise self.error(entry_key, f"unknown key '{key}' in model{_did_you_mean(key, MODEL_KEYS)}")
            entries[key] = (entry_key, value)
        if "file" not in entries:
            raise self.error(node, "model has no 'file' (the JSON file written by `segmenter model fit`)")
        if "horizon_days" not in entries:
            raise self.error(node, "model has no 'horizon_days' (the days expected_purchases looks ahead)")
        file_key, file_node = entries["file"]
        if not isinstance(file_node, ScalarNode) or _is_empty(file_node) or not file_node.value:
            raise self.error(
                file_key if _is_empty(file_node) else file_node,
                f"model.file must be a path, found {_describe(file_node)}",
            )
        horizon = self.days("model.horizon_days", *entries["horizon_days"], maximum=MAX_HORIZON_DAYS)
        path = os.path.normpath(os.path.join(self.base_dir, os.path.expanduser(file_node.value)))
        try:
            if self.files is None:
                parameters = read_model_parameters(path)
            elif file_node.value in self.files:
                parameters = model_parameters_of(self.files[file_node.value])
            else:
                raise ValueError("the rules record does not carry it")
        except ValueError as exc:
            raise self.error(file_node, f"model file '{file_node.value}': {exc}") from None
        return PredictiveModel(file=path, horizon_days=horizon, line=_line(key_node), **parameters)

    def dimensions(self, key_node: ScalarNode, node: Node) -> tuple[Dimension, ...]:
        if not isinstance(node, MappingNode):
            raise self.error(
                key_node if _is_empty(node) else node,
                f"'dimensions' must be a mapping of dimension name to list of tiers, found {_describe(node)}",
            )
        items = self.mapping_items(node, "dimensions")
        if not items:
            raise self.error(node, "'dimensions' is empty: define at least one dimension")
        dimensions = []
        for name, name_node, tiers_node in items:
            if not NAME_RE.fullmatch(name):
                raise self.error(name_node, f"invalid dimension name {name!r}: {_NAME_RULE}")
            dimensions.append(self.dimension(name, name_node, tiers_node))
        return tuple(dimensions)

    def dimension(self, name: str, name_node: ScalarNode, node: Node) -> Dimension:
        if not isinstance(node, SequenceNode):
            raise self.error(
                name_node if _is_empty(node) else node,
                f"dimension '{name}' must be a list of tiers, found {_describe(node)}",
            )
        if not node.value:
            raise self.error(node, f"dimension '{name}' has no tiers")
        tiers: list[Tier] = []
        seen: dict[str, int] = {}
        when_line = 0
        for entry in node.value:
            tier, when_line = self.tier(name, entry)
            if tier.name in seen:
                raise self.error(
                    tier.line,
                    f"duplicate tier '{tier.name}' in dimension '{name}' "
                    f"(first defined at line {seen[tier.name]})",
                )
            seen[tier.name] = tier.line
            tiers.append(tier)
        last = tiers[-1]
        if last.normalised != "true":
            raise self.error(
                when_line,
                f"the last tier of every dimension must be `true`: tier '{last.name}' of dimension "
                f"'{name}' has condition {last.when!r}",
            )
        return Dimension(name, tuple(tiers))

    def tier(self, dimension: str, entry: Node) -> tuple[Tier, int]:
        """The tier of a list entry, and the line of its condition."""
        if not isinstance(entry, MappingNode):
            raise self.error(
                entry,
                f"each tier of dimension '{dimension}' must be a mapping like "
                f"{{tier: NAME, when: CONDITION}}, found {_describe(entry)}",
            )
        fields: dict[str, tuple[ScalarNode, Node]] = {}
        for key, key_node, value in self.mapping_items(entry, f"a tier of dimension '{dimension}'"):
            if key not in TIER_FIELDS:
                raise self.error(
                    key_node,
                    f"unknown tier field '{key}' in dimension '{dimension}'{_did_you_mean(key, TIER_FIELDS)}",
                )
            fields[key] = (key_node, value)
        if "tier" not in fields:
            raise self.error(entry, f"a tier of dimension '{dimension}' has no 'tier' (its name)")
        name_key, name_node = fields["tier"]
        if not isinstance(name_node, ScalarNode) or _is_empty(name_node):
            raise self.error(
                name_key if _is_empty(name_node) else name_node,
                f"tier name in dimension '{dimension}' must be a name, found {_describe(name_node)}",
            )
        name = name_node.value
        if not NAME_RE.fullmatch(name):
            raise self.error(
                name_node, f"invalid tier name {name!r} in dimension '{dimension}': {_NAME_RULE}"
            )
        if "when" not in fields:
            raise self.error(entry, f"tier '{name}' of dimension '{dimension}' has no 'when' (its condition)")
        when_key, when_node = fields["when"]
        where = f"condition of tier '{name}' of dimension '{dimension}'"
        if not isinstance(when_node, ScalarNode):
            raise self.error(when_node, f"the {where} must be a string, found {_describe(when_node)}")
        text = when_node.value
        try:
            condition = compile_condition(text, self.catalog)
        except ConditionError as exc:
            raise self.error(when_key if _is_empty(when_node) else when_node, exc.describe(where)) from None
        actions = self.actions(name, *fields["actions"]) if "actions" in fields else ()
        tier = Tier(
            name=name,
            when=text,
            condition=condition.evaluate,
            comparisons=condition.comparisons,
            actions=actions,
            line=_line(entry),
            normalised=condition.normalised,
            attribute_tests=condition.attribute_tests,
            tree=condition.tree,
        )
        return tier, _line(when_node)

    def actions(self, tier: str, key_node: ScalarNode, node: Node) -> tuple[str, ...]:
        if not isinstance(node, SequenceNode):
            raise self.error(
                key_node if _is_empty(node) else node,
                f"actions of tier '{tier}' must be a list of strings, found {_describe(node)}",
            )
        actions: list[str] = []
        for item in node.value:
            if not isinstance(item, ScalarNode) or _is_empty(item):
                raise self.error(
                    item, f"actions of tier '{tier}' must be a list of strings, found {_describe(item)} in it"
                )
            if not ACTION_RE.fullmatch(item.value):
                raise self.error(
                    item,
                    f"invalid action {item.value!r} in tier '{tier}': actions are a lowercase letter "
                    "followed by up to 63 of a-z 0-9 _ . -",
                )
            if item.value in actions:
                raise self.error(item, f"duplicate action '{item.value}' in tier '{tier}'")
            actions.append(item.value)
        return tuple(actions)


_NAME_RULE = "names are a lowercase letter followed by up to 62 of a-z 0-9 _"


def _int(node: ScalarNode) -> int:
    value = yaml.constructor.SafeConstructor().construct_yaml_int(node)
    return int(value)


def rules_version(
    value_days: int,
    engagement_days: int,
    dimensions: tuple[Dimension, ...],
    *,
    history_days: int | None = None,
    custom_features: tuple[CustomFeature, ...] = (),
    model: PredictiveModel | None = None,
) -> str:
    """sha256 hex of the canonical JSON of the normalised rules (insensitive to formatting and comments).

    What is at its default is left out — `history_days` when it is the default, `features` when there are
    none, `model` when none is named — so that rules without them keep the version they always had.
    """
    windows: dict[str, int] = {"value_days": value_days, "engagement_days": engagement_days}
    if history_days is not None and history_days != default_history_days(
        value_days, engagement_days, custom_features
    ):
        windows["history_days"] = history_days
    canonical: dict[str, Any] = {
        "version": SUPPORTED_VERSION,
        "windows": windows,
        "dimensions": [
            {
                "name": dimension.name,
                "tiers": [
                    {"tier": tier.name, "when": tier.normalised, "actions": list(tier.actions)}
                    for tier in dimension.tiers
                ],
            }
            for dimension in dimensions
        ],
    }
    if custom_features:
        canonical["features"] = sorted(
            (feature.canonical() for feature in custom_features), key=lambda item: str(item["name"])
        )
    if model is not None:
        canonical["model"] = model.canonical()
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def read_model_parameters(path: str) -> dict[str, float]:
    """The seven parameters of a model file (SPEC 12), keyed r, alpha, a, b, p, q, v; ValueError(reason).

    The rules loader's own reader, so that rules load without the predictive package (and its numerical
    dependencies); `segmenter.predictive.model.load_model` validates the whole file for `model fit`.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ValueError(f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8 text") from None
    return model_parameters_of(text)


def model_parameters_of(text: str) -> dict[str, float]:
    """The seven parameters of a model document's text (see `read_model_parameters`)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(document, dict):
        raise ValueError("the model must be a JSON object with keys bgnbd and gamma_gamma")
    parameters = _model_section(document, "bgnbd", ("r", "alpha", "a", "b"))
    parameters.update(_model_section(document, "gamma_gamma", ("p", "q", "v")))
    if parameters["a"] == 1:
        raise ValueError("bgnbd.a must not be exactly 1 (the expected purchases formula divides by a - 1)")
    if parameters["q"] <= 1:
        raise ValueError(f"gamma_gamma.q must be > 1 for a finite expected spend, got {parameters['q']!r}")
    return parameters


def _model_section(document: dict[str, Any], name: str, keys: tuple[str, ...]) -> dict[str, float]:
    section = document.get(name)
    if not isinstance(section, dict):
        raise ValueError(f"{name} must be an object with keys {', '.join(keys)}")
    values: dict[str, float] = {}
    for key in keys:
        value = section.get(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ValueError(f"{name}.{key} must be a positive number, got {json.dumps(value)}")
        values[key] = float(value)
    return values


def parse_rules(
    text: str,
    source: str = "<string>",
    base_dir: str | None = None,
    files: Mapping[str, str] | None = None,
) -> RuleSet:
    """Validate a rules document; raises RulesError naming `source`, the line and what is wrong.

    A model file is looked up relative to `base_dir` (default: the directory of `source`, or the current
    directory for a `<...>` source), or, when `files` is given (a `rules` record carries them), taken from
    it by the path as written.
    """
    loader = _Loader(text, source, base_dir)
    loader.files = files
    return loader.load()


def load_rules(path: str | os.PathLike[str]) -> RuleSet:
    """Read and validate a rules file; a missing or unreadable file is a RulesError too."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise RulesError(source, None, f"cannot read rules file: {exc.strerror or exc}") from None
    return parse_rules(_decode(data, source), source)


def _decode(data: bytes, source: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RulesError(source, line, f"the rules file is not UTF-8 text (byte {exc.start + 1})") from None
    return text.removeprefix("\ufeff")


def default_rules_text() -> str:
    """The text of the built-in default rules (`default.yaml`, exactly SPEC section 5)."""
    try:
        return resources.files("segmenter.rules").joinpath("default.yaml").read_text(encoding="utf-8")
    except OSError as exc:  # a broken installation (package data not shipped)
        raise RulesError(DEFAULT_SOURCE, None, f"cannot read the built-in default.yaml: {exc}") from None


@lru_cache(maxsize=1)
def default_rules() -> RuleSet:
    """The built-in default rules (parsed once)."""
    return parse_rules(default_rules_text(), DEFAULT_SOURCE)
