"""Rules files (SPEC section 5): YAML text -> validated `RuleSet`; every mistake is `file:line: reason`.

The YAML is composed to nodes (never constructed into Python objects wholesale), so every value keeps its line
and duplicate mapping keys — which a plain YAML load silently collapses — are caught. Names and conditions
are read from the scalar's text, so `when: true` (a YAML boolean) is the condition `true`, and a tier called
`no` stays the string "no".
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from functools import lru_cache
from importlib import resources

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from segmenter.rules.expression import ConditionError, compile_condition
from segmenter.rules.model import Comparison, Dimension, RulesError, RuleSet, Tier

SUPPORTED_VERSION = 1
DEFAULT_WINDOWS = {"value_days": 365, "engagement_days": 30}
MAX_WINDOW_DAYS = 3650
TOP_LEVEL_KEYS = ("version", "windows", "dimensions")
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
    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source

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
                label = "dimension" if what == "dimensions" else "key"
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
        windows = self.windows(*fields["windows"]) if "windows" in fields else dict(DEFAULT_WINDOWS)
        if "dimensions" not in fields:
            raise self.error(root, "missing 'dimensions' (a mapping of dimension name to list of tiers)")
        dimensions = self.dimensions(*fields["dimensions"])

        comparisons: dict[Comparison, None] = {}
        for dimension in dimensions:
            for tier in dimension.tiers:
                for comparison in tier.comparisons:
                    comparisons.setdefault(comparison)
        return RuleSet(
            value_days=windows["value_days"],
            engagement_days=windows["engagement_days"],
            dimensions=dimensions,
            comparisons=tuple(comparisons),
            version=rules_version(windows["value_days"], windows["engagement_days"], dimensions),
            source=self.source,
        )

    def check_version(self, key_node: ScalarNode, node: Node) -> None:
        at = key_node if _is_empty(node) else node
        if not (isinstance(node, ScalarNode) and node.tag == _INT and _int(node) == SUPPORTED_VERSION):
            raise self.error(
                at, f"unsupported rules version: found {_describe(node)}, expected {SUPPORTED_VERSION}"
            )

    def windows(self, key_node: ScalarNode, node: Node) -> dict[str, int]:
        if not isinstance(node, MappingNode):
            raise self.error(
                key_node if _is_empty(node) else node,
                f"'windows' must be a mapping like {{value_days: 365, engagement_days: 30}}, "
                f"found {_describe(node)}",
            )
        windows = dict(DEFAULT_WINDOWS)
        for key, window_key, value in self.mapping_items(node, "windows"):
            if key not in DEFAULT_WINDOWS:
                choices = tuple(DEFAULT_WINDOWS)
                raise self.error(window_key, f"unknown window '{key}'{_did_you_mean(key, choices)}")
            at = window_key if _is_empty(value) else value
            if not (isinstance(value, ScalarNode) and value.tag == _INT) or _int(value) <= 0:
                raise self.error(
                    at, f"windows.{key} must be a positive whole number of days, found {_describe(value)}"
                )
            days = _int(value)
            if days > MAX_WINDOW_DAYS:
                raise self.error(at, f"windows.{key} is too large: {days} days (at most {MAX_WINDOW_DAYS})")
            windows[key] = days
        return windows

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
            condition = compile_condition(text)
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


def rules_version(value_days: int, engagement_days: int, dimensions: tuple[Dimension, ...]) -> str:
    """sha256 hex of the canonical JSON of the normalised rules (insensitive to formatting and comments)."""
    canonical = {
        "version": SUPPORTED_VERSION,
        "windows": {"value_days": value_days, "engagement_days": engagement_days},
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
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def parse_rules(text: str, source: str = "<string>") -> RuleSet:
    """Validate a rules document; raises RulesError naming `source`, the line and what is wrong."""
    return _Loader(text, source).load()


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
