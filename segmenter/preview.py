"""`rules preview` (SPEC section 13): what a rules file would do to every customer, computed read-only.

Each customer is evaluated under the proposed rules at its evaluation day `D_c`, over the days its state
retained (a window longer than the rules in effect kept sees only those days), and compared with the tiers
it holds now under the rules in effect.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from segmenter.customer import CustomerState
from segmenter.derived import Derived
from segmenter.features import features_at
from segmenter.rules import RuleSet

Move = tuple[str | None, str | None]  # (tier now, tier under the proposed rules); None: not classified


@dataclass
class DimensionPreview:
    name: str
    before: Counter[str] = field(default_factory=Counter)
    after: Counter[str] = field(default_factory=Counter)
    moves: Counter[Move] = field(default_factory=Counter)  # every (from, to), unchanged ones too
    examples: dict[Move, list[str]] = field(default_factory=dict)  # changed moves only

    def to_json(self) -> dict[str, object]:
        return {
            "dimension": self.name,
            "before": dict(sorted(self.before.items())),
            "after": dict(sorted(self.after.items())),
            "moves": [
                {"from": f, "to": t, "customers": n, "examples": self.examples.get((f, t), [])}
                for (f, t), n in sorted(self.moves.items(), key=lambda item: (-item[1], str(item[0])))
            ],
        }


@dataclass
class Preview:
    current_versions: set[str]
    proposed_version: str
    customers: int = 0
    dimensions: dict[str, DimensionPreview] = field(default_factory=dict)
    shorter_history: list[str] = field(default_factory=list)  # windows longer than what was retained

    @property
    def changed(self) -> int:
        return sum(n for d in self.dimensions.values() for (f, t), n in d.moves.items() if f != t)

    def to_json(self) -> dict[str, object]:
        return {
            "rules_in_effect": sorted(self.current_versions),
            "proposed": self.proposed_version,
            "customers": self.customers,
            "tier_changes": self.changed,
            "retained_history_notes": self.shorter_history,
            "dimensions": [d.to_json() for d in self.dimensions.values()],
        }


def preview(
    states: Iterable[CustomerState],
    rules_of: Callable[[int], RuleSet],
    proposed: RuleSet,
    examples: int = 3,
    watermark_day_of: Callable[[int], int | None] = lambda partition: None,
) -> Preview:
    """Counts before and after, the move matrix and up to `examples` customer ids per changed move.

    `rules_of(partition)` gives the rules in effect on a partition, `watermark_day_of` its watermark day:
    a customer's `D_c` is the later of its own day and that (a customer no timer was due for keeps an
    older day in its state, with the same tiers). Examples are the smallest ids, so the output does not
    depend on the order the states were read in.
    """
    result = Preview(current_versions=set(), proposed_version=proposed.version)
    derived = Derived(proposed)
    names = dict.fromkeys(proposed.dimension_names)
    seen_rules: dict[str, RuleSet] = {}
    for state in states:
        if state.day is None:
            continue
        current = rules_of(state.partition)
        if current.version not in seen_rules:
            seen_rules[current.version] = current
            names.update(dict.fromkeys(current.dimension_names))
            for name in names:
                result.dimensions.setdefault(name, DimensionPreview(name))
        result.customers += 1
        watermark = watermark_day_of(state.partition)
        day = state.day if watermark is None else max(state.day, watermark)
        features = features_at(state, day, proposed.value_days, proposed.engagement_days)
        if derived.active:
            features.update(derived.values(state, day))
        after = dict(zip(proposed.dimension_names, proposed.classify(features), strict=True))
        for name in current.dimension_names:
            tier = state.tiers.get(name)
            if tier is not None:
                result.dimensions[name].before[tier] += 1
        for name, dimension in result.dimensions.items():
            old = state.tiers.get(name) if name in current.dimension_names else None
            new = after.get(name)
            if new is not None:
                dimension.after[new] += 1
            if old is None and new is None:
                continue
            move = (old, new)
            dimension.moves[move] += 1
            if old != new:
                kept = dimension.examples.setdefault(move, [])
                kept.append(state.customer_id)
                if len(kept) > 4 * examples:
                    kept.sort()
                    del kept[examples:]
    for dimension in result.dimensions.values():
        for move, kept in dimension.examples.items():
            dimension.examples[move] = sorted(kept)[:examples]
    result.current_versions = set(seen_rules)
    for rules in seen_rules.values():
        if proposed.custom_features and not rules.custom_features:
            result.shorter_history.append(
                f"rules {rules.version[:12]} declare no custom features, so no detail buckets were kept: "
                "the custom features start from the events after the change"
            )
        for window in ("value_days", "engagement_days"):
            if getattr(proposed, window) > getattr(rules, window):
                result.shorter_history.append(
                    f"{window} {getattr(proposed, window)} is longer than the {getattr(rules, window)} days "
                    f"kept under rules {rules.version[:12]}: those customers' windows see only those days"
                )
    return result
