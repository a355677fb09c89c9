"""Custom (SPEC section 11) and predictive (SPEC section 12) features of a rule set: their values at a day,
and the first day a comparison on them flips without new events (the customer's timer).

Custom windowed features change between events only when a detail bucket leaves the window: the candidate
days are the buckets' expiry days, walked in order. Predictive features change only through T and are
monotonic in it: `segmenter.predictive.flip` finds the flip day exactly. Both are computed only when a
customer is evaluated.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from segmenter.customer import CustomerState
from segmenter.rules import RuleSet
from segmenter.rules.model import (
    COUNT_INTERACTIONS,
    COUNT_PURCHASES,
    DISTINCT_CATEGORIES,
    OPERATOR_FUNCTIONS,
    SUM_PURCHASES,
    CustomFeature,
)

if TYPE_CHECKING:
    from segmenter.predictive.model import Model

PREDICTIVE = ("p_alive", "expected_purchases", "predicted_clv")


def custom_value(feature: CustomFeature, state: CustomerState, day: int) -> int:
    """The feature over the window `[day - days + 1, day]` of the detail buckets."""
    low = day - feature.days + 1
    interactions = feature.kind == COUNT_INTERACTIONS
    days = state.t_days if interactions else state.c_days
    if not days or days[-1] < low:
        return 0
    start = bisect_left(days, low)
    end = len(days) if days[-1] <= day else bisect_right(days, day)  # usually no bucket after `day`
    if interactions:
        if feature.types is None:
            return sum(state.t_count[start:end])
        types, names, counts = feature.types, state.t_names, state.t_count
        return sum(counts[i] for i in range(start, end) if names[i] in types)
    names = state.c_names
    if feature.kind == DISTINCT_CATEGORIES:
        counts = state.c_count
        return len({names[i] for i in range(start, end) if names[i] and counts[i] > 0})
    categories = feature.categories
    if feature.kind == COUNT_PURCHASES:
        if categories is None:
            return sum(state.c_count[start:end])
        counts = state.c_count
        return sum(counts[i] for i in range(start, end) if names[i] in categories)
    assert feature.kind == SUM_PURCHASES
    cents, refunds = state.c_cents, state.c_refunds
    if categories is None:
        return max(0, sum(cents[start:end]) - sum(refunds[start:end]))
    return max(0, sum(cents[i] - refunds[i] for i in range(start, end) if names[i] in categories))


def _model_of(rules: RuleSet) -> Model | None:
    """The model of a rules file that names one. numpy/scipy are imported only then: every command loads
    the engine, and they cost seconds to import."""
    named = rules.model
    if named is None:
        return None
    from segmenter.predictive.bgnbd import BgNbdParams
    from segmenter.predictive.gamma_gamma import GammaGammaParams
    from segmenter.predictive.model import Model

    return Model(
        bgnbd=BgNbdParams(named.r, named.alpha, named.a, named.b),
        gamma_gamma=GammaGammaParams(named.p, named.q, named.v),
        as_of=dt.date(1970, 1, 1),
    )


class Derived:
    """The custom and predictive features of one rule set."""

    def __init__(self, rules: RuleSet) -> None:
        self.custom = rules.custom_features
        self.model = _model_of(rules)
        self.horizon = rules.model.horizon_days if rules.model is not None else 0
        self.history_days = rules.history_days
        custom_names = {feature.name: feature for feature in self.custom}
        self._custom_checks: list[tuple[CustomFeature, Callable[[Any, Any], bool], Any]] = []
        self._predictive_checks: list[tuple[str, str, Any]] = []
        for comparison in rules.comparisons:
            if comparison.feature in custom_names:
                feature = custom_names[comparison.feature]
                check = (feature, OPERATOR_FUNCTIONS[comparison.op], comparison.threshold)
                self._custom_checks.append(check)
            elif comparison.feature in PREDICTIVE and self.model is not None:
                self._predictive_checks.append((comparison.feature, comparison.op, comparison.threshold))

        grouped: dict[str, list[tuple[Callable[[Any, Any], bool], Any]]] = {}
        for feature, compare, threshold in self._custom_checks:
            grouped.setdefault(feature.name, []).append((compare, threshold))
        self._checks_by_feature = tuple(
            (custom_names[name], tuple(checks)) for name, checks in grouped.items()
        )

    @property
    def active(self) -> bool:
        return bool(self.custom) or self.model is not None

    def values(self, state: CustomerState, day: int) -> dict[str, Any]:
        """Feature name -> value at `day` (money in cents, predictive unrounded; null without purchases)."""
        values: dict[str, Any] = {f.name: custom_value(f, state, day) for f in self.custom}
        if self.model is not None:
            from segmenter.predictive.features import predictive_features
            from segmenter.predictive.summary import summary_at

            summary = summary_at(state.purchase_days, state.purchase_day_cents, day)
            if summary is None:
                values.update(dict.fromkeys(PREDICTIVE))
            else:
                found = predictive_features(self.model, self.horizon, summary)
                values["p_alive"] = found.p_alive
                values["expected_purchases"] = found.expected_purchases
                values["predicted_clv"] = found.predicted_clv_cents
        return values

    def first_flip(self, state: CustomerState, after: int, stop: int | None = None) -> int | None:
        """The first day > `after` and < `stop` on which a comparison on these features flips (None:
        never, or not before `stop`: the caller has an earlier candidate already)."""
        best: int | None = None
        if self._custom_checks:
            best = self._custom_flip(state, after, stop)
        if self._predictive_checks and self.model is not None:
            from segmenter.predictive.flip import next_flip_day
            from segmenter.predictive.summary import summary_at

            summary = summary_at(state.purchase_days, state.purchase_day_cents, after)
            if summary is not None:
                for feature, op, threshold in self._predictive_checks:
                    bound = best if stop is None or (best is not None and best < stop) else stop
                    limit = 36_500 if bound is None else bound - after
                    day = next_flip_day(
                        self.model, self.horizon, feature, op, threshold, summary, after, limit
                    )
                    if day is not None and (best is None or day < best):
                        best = day
        return best

    def _custom_flip(self, state: CustomerState, after: int, stop: int | None) -> int | None:
        """Per feature, walk its buckets' expiry days in order (they are in day order already) with a
        running value, and stop at the first day a comparison on it flips or at the best day found."""
        best: int | None = None
        for feature, checks in self._checks_by_feature:
            bound = best if stop is None or (best is not None and best < stop) else stop
            # Most calls end here: nothing in the window leaves it before the bound.
            days = state.t_days if feature.kind == COUNT_INTERACTIONS else state.c_days
            start = bisect_right(days, after - feature.days)
            if start == len(days) or (bound is not None and days[start] + feature.days >= bound):
                continue
            day = _feature_flip(feature, checks, state, after, bound)
            if day is not None and (best is None or day < best):
                best = day
        return best


def _feature_flip(
    feature: CustomFeature,
    checks: tuple[tuple[Callable[[Any, Any], bool], Any], ...],
    state: CustomerState,
    after: int,
    stop: int | None,
) -> int | None:
    if feature.kind == COUNT_INTERACTIONS:
        days, names, amounts = state.t_days, state.t_names, state.t_count
        wanted = feature.types
    else:
        days, names = state.c_days, state.c_names
        wanted = None if feature.kind == DISTINCT_CATEGORIES else feature.categories
        amounts = state.c_count
    start, end = bisect_right(days, after - feature.days), bisect_right(days, after)
    if start == end or (stop is not None and days[start] + feature.days >= stop):
        return None  # nothing in the window, or nothing leaves it before the earlier candidate
    window = feature.days
    distinct = feature.kind == DISTINCT_CATEGORIES
    net = feature.kind == SUM_PURCHASES
    cents, refunds = state.c_cents, state.c_refunds
    if distinct:
        chosen = [i for i in range(start, end) if names[i] and amounts[i]]
    else:
        chosen = [i for i in range(start, end) if wanted is None or names[i] in wanted]
    if not chosen:
        return None
    counts: dict[str, int] = {}
    total = 0
    for i in chosen:
        if distinct:
            counts[names[i]] = counts.get(names[i], 0) + amounts[i]
        else:
            total += cents[i] - refunds[i] if net else amounts[i]

    def value() -> int:
        if distinct:
            return len(counts)
        return max(0, total) if net else total

    current = value()
    now = tuple(compare(current, threshold) for compare, threshold in checks)
    position = 0
    while position < len(chosen):
        day = days[chosen[position]] + window
        if stop is not None and day >= stop:
            return None
        while position < len(chosen) and days[chosen[position]] + window == day:
            i = chosen[position]
            if distinct:
                left = counts[names[i]] - amounts[i]
                if left:
                    counts[names[i]] = left
                else:
                    del counts[names[i]]
            else:
                total -= cents[i] - refunds[i] if net else amounts[i]
            position += 1
        current = value()
        if tuple(compare(current, threshold) for compare, threshold in checks) != now:
            return day
    return None
