"""Custom (SPEC section 11) and predictive (SPEC section 12) features of a rule set: their values at a day,
and the first day a comparison on them flips without new events (the customer's timer).

Custom windowed features change between events only when a detail bucket leaves the window: the candidate
days are the buckets' expiry days, walked in order. Predictive features change only through T and are
monotonic in it: `segmenter.predictive.flip` finds the flip day exactly. Both are computed only when a
customer is evaluated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
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
    ORDERING_FUNCTIONS,
    SUM_PURCHASES,
    CustomFeature,
)

if TYPE_CHECKING:
    from segmenter.predictive.model import Model

PREDICTIVE = ("p_alive", "expected_purchases", "predicted_clv")


def _window_value(feature: CustomFeature, state: CustomerState, start: int, end: int) -> int:
    """The feature over the detail buckets `[start, end)` of its list."""
    if feature.kind == COUNT_INTERACTIONS:
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


_FOREVER = 1 << 40  # a day no evaluation reaches: nothing in the window, the values hold until an event
_HEADER = 2  # a bucket list's cache: [first day, end day], then (value, first expiry) per feature


class CustomValues:
    """The custom features' values at a day, reusing the last ones while they still hold.

    Values computed at day D hold on every later day until a bucket leaves a window (the first bucket in
    it, plus the window's length) or enters one (a bucket after D, which no evaluation leaves behind),
    provided the buckets stay as they were: any change empties the cache of that bucket list. Many
    evaluations of a customer find the values of one list still valid (an interaction leaves the purchase
    features alone, a 365-day window rarely loses a bucket).

    Per bucket list (`state.t_values`, `state.c_values`) the cache is `[first, end]` (the days on which its
    values hold) followed by `(value, first expiry)` per feature of that list, `_FOREVER` for an empty
    window: after `ensure(state, day)` a feature's first expiry is the first day after `day` a bucket leaves
    its window.
    """

    def __init__(self, features: tuple[CustomFeature, ...]) -> None:
        interactions = tuple(f for f in features if f.kind == COUNT_INTERACTIONS)
        purchases = tuple(f for f in features if f.kind != COUNT_INTERACTIONS)
        self._lists = tuple(
            (is_t, group, tuple(f.name for f in group))
            for is_t, group in ((True, interactions), (False, purchases))
            if group
        )
        self.slots = {f.name: (True, _HEADER + 2 * i) for i, f in enumerate(interactions)}
        self.slots.update({f.name: (False, _HEADER + 2 * i) for i, f in enumerate(purchases)})
        digest = hashlib.blake2b(repr([f.canonical() for f in features]).encode(), digest_size=7)
        self.key = int.from_bytes(digest.digest(), "big") | 1  # never the default 0

    def values(self, state: CustomerState, day: int, into: dict[str, Any]) -> None:
        self.ensure(state, day)
        for is_t, _, names in self._lists:
            into.update(zip(names, (state.t_values if is_t else state.c_values)[_HEADER::2], strict=True))

    def ensure(self, state: CustomerState, day: int) -> None:
        """Make the caches hold on `day`."""
        if state.custom_key != self.key:
            state.custom_key = self.key
            state.t_values.clear()
            state.c_values.clear()
        for is_t, features, _ in self._lists:
            cache = state.t_values if is_t else state.c_values
            if not cache or not cache[0] <= day < cache[1]:
                _refill(features, state, day, cache, state.t_days if is_t else state.c_days)


def _refill(
    features: tuple[CustomFeature, ...], state: CustomerState, day: int, cache: list[int], days: list[int]
) -> None:
    end = len(days)
    holds_until = _FOREVER
    if end and days[-1] > day:  # a bucket after `day` enters the windows on its day
        end = bisect_right(days, day)
        holds_until = days[end]
    cache[:] = [day, 0]
    for feature in features:
        start = bisect_left(days, day - feature.days + 1)
        if start >= end:
            cache += (0, _FOREVER)
            continue
        expiry = days[start] + feature.days
        cache += (_window_value(feature, state, start, end), expiry)
        if expiry < holds_until:
            holds_until = expiry
    cache[1] = holds_until


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
        self._values = CustomValues(self.custom)
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
            (custom_names[name], tuple(checks), *self._values.slots[name]) for name, checks in grouped.items()
        )

    @property
    def active(self) -> bool:
        return bool(self.custom) or self.model is not None

    def values(self, state: CustomerState, day: int) -> dict[str, Any]:
        """Feature name -> value at `day` (money in cents, predictive unrounded; null without purchases)."""
        values: dict[str, Any] = {}
        if self.custom:
            self._values.values(state, day, values)
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
        running value, and stop at the first day a comparison on it flips or at the best day found; skip
        the features whose current value settles that no comparison on them can flip."""
        best: int | None = None
        bound = _FOREVER if stop is None else stop  # the best day so far, else `stop`
        self._values.ensure(state, after)  # (usually cached by the evaluation at `after`)
        t_values, c_values = state.t_values, state.c_values
        for feature, checks, interactions, at in self._checks_by_feature:
            cache = t_values if interactions else c_values
            # Most features end here: nothing in the window leaves it before the bound (or at all).
            if cache[at + 1] >= bound:
                continue
            value = cache[at]
            refunds = 0
            if feature.kind == SUM_PURCHASES:
                refunds = sum(state.c_refunds[bisect_right(state.c_days, after - feature.days) :])
            if _settled(checks, value, value + refunds):
                continue
            if refunds or feature.kind == DISTINCT_CATEGORIES:
                day = _feature_flip(feature, checks, state, after, bound)
            else:
                start = bisect_right(state.t_days if interactions else state.c_days, after - feature.days)
                day = _falling_flip(feature, checks, state, after, start, value, bound)
            if day is not None and day < bound:
                best = bound = day
        return best


def _settled(checks: tuple[tuple[Callable[[Any, Any], bool], Any], ...], value: int, upper: int) -> bool:
    """No check on a feature can flip before the next event, known from its current `value` alone.

    As buckets leave the window a count or a distinct count only falls, to 0 once all have left: its future
    values lie in `[0, value]`. A net sum can also rise, when a refund leaves the window, but by no more than
    the refunds in it: `[0, upper]`, `upper` = value + refunds. A check whose truth is the same on that whole
    range cannot flip (a comparison's truth is monotone in the value; an equality only flips if its number
    is in the range).
    """
    if upper == 0:
        return True
    for compare, limit in checks:
        if compare in ORDERING_FUNCTIONS:
            if compare(0, limit) != compare(upper, limit):
                return False
        elif 0 <= limit <= upper:
            return False
    return True


def _falling_flip(
    feature: CustomFeature,
    checks: tuple[tuple[Callable[[Any, Any], bool], Any], ...],
    state: CustomerState,
    after: int,
    start: int,
    value: int,
    stop: int | None,
) -> int | None:
    """`_feature_flip` for a count, or a net sum without refunds in its window: its value (known) only falls
    as buckets leave, so walking the expiries from the oldest needs no pass over the rest of the window."""
    window = feature.days
    days, names, amounts = _columns(feature, state)
    if feature.kind == SUM_PURCHASES:
        amounts = state.c_cents
    wanted = _filter(feature)
    now = tuple(compare(value, limit) for compare, limit in checks)
    index, end = start, len(days) if days[-1] <= after else bisect_right(days, after)
    while index < end:
        day = days[index] + window
        if stop is not None and day >= stop:
            return None
        while index < end and days[index] + window == day:
            if wanted is None or names[index] in wanted:
                value -= amounts[index]
            index += 1
        if tuple(compare(value, limit) for compare, limit in checks) != now:
            return day
    return None


def _columns(feature: CustomFeature, state: CustomerState) -> tuple[list[int], list[str], list[int]]:
    """The detail buckets a feature reads: (days, names, counts), interactions' or purchases'."""
    if feature.kind == COUNT_INTERACTIONS:
        return state.t_days, state.t_names, state.t_count
    return state.c_days, state.c_names, state.c_count


def _filter(feature: CustomFeature) -> frozenset[str] | None:
    """The names a feature counts (None: all)."""
    if feature.kind == COUNT_INTERACTIONS:
        return feature.types
    return None if feature.kind == DISTINCT_CATEGORIES else feature.categories


def _feature_flip(
    feature: CustomFeature,
    checks: tuple[tuple[Callable[[Any, Any], bool], Any], ...],
    state: CustomerState,
    after: int,
    stop: int | None,
) -> int | None:
    days, names, amounts = _columns(feature, state)
    wanted = _filter(feature)
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
