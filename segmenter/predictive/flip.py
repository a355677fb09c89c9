"""The exact first day on which a rule comparison on a predictive feature changes its truth value.

Between purchases a feature moves only through T and never increases, so "value vs threshold" passes at
most once from above to equal and once from equal to below: the truth value can change at most twice, and
each change is the first day of a monotone predicate. Those days are found by an exact integer search
(exponential probe, then bisection), started from the closed-form crossing where there is one (P(alive)),
which then costs a couple of evaluations.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from segmenter.predictive.bgnbd import p_alive_inverse
from segmenter.predictive.features import feature_value
from segmenter.predictive.model import Model
from segmenter.predictive.summary import Summary

Threshold = float | Fraction  # an int is a float to the type checker
MAX_SEARCH_DAYS = 36500  # a flip more than 100 years away is "never"

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def first_flip_day(
    value_at: Callable[[int], float | Fraction],
    op: str,
    threshold: Threshold,
    start: int,
    limit_days: int = MAX_SEARCH_DAYS,
    crossing: Callable[[Threshold], float | None] | None = None,
) -> int | None:
    """First day in (start, start + limit_days] where `value_at(day) op threshold` differs from its value at
    `start`; None if there is none. `value_at` must be non-increasing in the day.

    `crossing(c)`, if given, estimates the real day where the value passes c; it only seeds the search, so a
    rough or wrong estimate costs evaluations, never exactness.
    """
    compare = OPS[op]
    cache: dict[int, float | Fraction] = {}

    def value(day: int) -> float | Fraction:
        if day not in cache:
            cache[day] = value_at(day)
        return cache[day]

    def level(v: float | Fraction) -> int:  # 0 above, 1 equal, 2 below: never decreases with the day
        return 0 if v > threshold else 1 if v == threshold else 2

    truth = compare(value(start), threshold)
    current, low, end = level(value(start)), start, start + limit_days
    while current < 2:
        # Level 1 starts where value <= threshold, level 2 where value < threshold.
        reached: Callable[[int], bool] = (
            (lambda d: value(d) <= threshold) if current == 0 else (lambda d: value(d) < threshold)
        )
        guess = crossing(threshold) if crossing is not None else None
        day = first_true_day(reached, low, end, guess)
        if day is None:
            return None
        if compare(value(day), threshold) != truth:
            return day
        current, low = level(value(day)), day
    return None


def first_true_day(
    pred: Callable[[int], bool], low: int, high: int, guess: float | None = None
) -> int | None:
    """Smallest day in (low, high] where the monotone (false, then true) `pred` holds, or None.

    Gallops from `guess` (or from low + 1) by doubling steps to bracket the change, then bisects.
    """
    if high <= low:
        return None
    seed = low + 1
    if guess is not None and math.isfinite(guess):
        seed = min(max(math.ceil(guess), low + 1), high)
    if pred(seed):
        # Bracket (false_day, seed] downwards; low itself counts as false.
        true_day, step = seed, 1
        false_day = low
        while true_day - step > low:
            probe = true_day - step
            if not pred(probe):
                false_day = probe
                break
            true_day, step = probe, step * 2
        return _bisect(pred, false_day, true_day)
    false_day, step = seed, 1
    while True:
        probe = min(false_day + step, high)
        if pred(probe):
            return _bisect(pred, false_day, probe)
        if probe == high:
            return None
        false_day, step = probe, step * 2


def _bisect(pred: Callable[[int], bool], false_day: int, true_day: int) -> int:
    while true_day - false_day > 1:
        middle = (false_day + true_day) // 2
        if pred(middle):
            true_day = middle
        else:
            false_day = middle
    return true_day


def next_flip_day(
    model: Model,
    horizon_days: int,
    feature: str,
    op: str,
    threshold: Threshold,
    summary: Summary,
    start: int,
    limit_days: int = MAX_SEARCH_DAYS,
) -> int | None:
    """First day after `start` on which `feature op threshold` flips for a customer with no new purchase.

    `summary` holds the customer's purchases (its own T is ignored: day d has T = d - first purchase day);
    `threshold` is in the feature's value units (cents for predicted_clv), as the rules compare it.
    """
    if op not in OPS:
        raise ValueError(f"unknown comparison {op!r}")
    if feature == "p_alive" and summary.x == 0:
        return None  # constant 1

    def value_at(day: int) -> float | Fraction:
        return feature_value(model, horizon_days, feature, summary.at(day))

    crossing = None
    if feature == "p_alive":

        def crossing(c: Threshold) -> float | None:
            if not 0 < c < 1:
                return None
            try:
                return summary.first_day + p_alive_inverse(model.bgnbd, summary.x, summary.t_x, float(c))
            except (OverflowError, ValueError):  # a crossing beyond any day: let the search say None
                return None

    return first_flip_day(value_at, op, threshold, start, limit_days, crossing)
