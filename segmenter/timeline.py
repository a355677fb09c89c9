"""Exact time-driven evaluation (SPEC section 6) without visiting every day.

Between events a customer's features move in only two ways: day-count features (`recency_days`,
`tenure_days`, `days_since_last_interaction`) grow by one a day, and window features drop when a bucket
leaves its window. So each rule comparison can only change its truth value on a few known days: where a
day-count feature crosses the comparison's number, and where a bucket expires. Evaluating on those
candidate days (and only those) gives exactly the tiers of a day-by-day evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from segmenter.customer import CustomerState
from segmenter.features import Features, WindowSums
from segmenter.rules import RuleSet

_DAY_FEATURES = ("recency_days", "tenure_days", "days_since_last_interaction")


@dataclass(frozen=True, slots=True)
class Change:
    """Tiers at `day` differ from those of the day before."""

    day: int
    tiers: tuple[str, ...]
    features: Features


class Timeline:
    """Candidate days and change scans for one rule set."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        offsets: dict[str, set[int]] = {name: set() for name in _DAY_FEATURES}
        for comparison in rules.comparisons:
            if comparison.feature in offsets:
                number = comparison.number
                # The truth of `x OP number` over integer x can only flip at these x.
                offsets[comparison.feature].update({math.ceil(number), math.floor(number) + 1})
        self._offsets = {name: sorted(values) for name, values in offsets.items() if values}

    def candidate_days(self, state: CustomerState, after: int) -> list[int]:
        """Sorted days > `after` on which some comparison of the rules can change its truth value."""
        value_days, engagement_days = self.rules.value_days, self.rules.engagement_days
        days = {d + value_days for d in state.p_days}
        days.update(d + engagement_days for d in state.i_days)
        bases = {
            "recency_days": state.last_purchase_day,
            "tenure_days": state.first_purchase_day,
            "days_since_last_interaction": state.last_interaction_day,
        }
        for feature, offsets in self._offsets.items():
            base = bases[feature]
            if base is not None:
                days.update(base + offset for offset in offsets)
        return sorted(day for day in days if day > after)

    def changes(
        self,
        state: CustomerState,
        after: int,
        tiers: tuple[str | None, ...],
        sums: WindowSums | None = None,
    ) -> Iterator[Change]:
        """Yield, in day order, each day > `after` whose tiers differ from the previous day's."""
        if sums is None:
            sums = WindowSums(state, self.rules.value_days, self.rules.engagement_days)
        classify = self.rules.classify
        current = tiers
        for day in self.candidate_days(state, after):
            features = sums.at(day)
            new = classify(features)
            if new != current:
                current = new
                yield Change(day, new, features)
