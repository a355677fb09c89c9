"""The flip-day search against brute force over days (SPEC section 12: time-driven transitions are exact)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmenter.predictive import (
    BgNbdParams,
    GammaGammaParams,
    Model,
    Summary,
    feature_value,
    first_flip_day,
    next_flip_day,
)
from segmenter.predictive.flip import OPS

LIMIT = 1500  # brute force looks this far; the search is given the same bound


def brute_force(
    value_at: Callable[[int], float | Fraction], op: str, threshold: object, start: int
) -> int | None:
    compare = OPS[op]
    initial = compare(value_at(start), threshold)
    for day in range(start + 1, start + LIMIT + 1):
        if compare(value_at(day), threshold) != initial:
            return day
    return None


ops = st.sampled_from(sorted(OPS))


@st.composite
def non_increasing(draw: st.DrawFn) -> list[int]:
    steps = draw(st.lists(st.integers(0, 3), min_size=10, max_size=60))
    top = draw(st.integers(-5, 50))
    values, value = [], top
    for step in steps:
        value -= step
        values.append(value)
    return values


@settings(max_examples=400, deadline=None)
@given(
    non_increasing(),
    ops,
    st.floats(0, 1),
    st.integers(-1, 1),
    st.integers(0, 5),
    st.none() | st.floats(-50, 120),
)
def test_generic_search_on_step_functions(
    values: list[int], op: str, at: float, delta: int, start: int, guess: float | None
) -> None:
    """Plateaus, ties (== and !=) and a wrong closed-form seed: the search must still be exact."""
    start = min(start, len(values) - 1)
    threshold = values[int(at * (len(values) - 1))] + delta

    def value_at(day: int) -> int:
        return values[min(day, len(values) - 1)]

    found = first_flip_day(value_at, op, threshold, start, LIMIT, crossing=lambda c: guess)
    assert found == brute_force(value_at, op, threshold, start)


models = st.builds(
    lambda r, alpha, a, b, p, q, v: Model(
        BgNbdParams(r, alpha, a, b), GammaGammaParams(p, q, v), dt.date(2026, 1, 1)
    ),
    st.floats(0.05, 5.0),
    st.floats(0.5, 200.0),
    st.floats(0.05, 5.0).filter(lambda a: abs(a - 1) > 1e-3),
    st.floats(0.1, 10.0),
    st.floats(0.5, 10.0),
    st.floats(1.2, 10.0),
    st.floats(1.0, 100.0),
)


@st.composite
def summaries(draw: st.DrawFn) -> Summary:
    x = draw(st.integers(0, 30))
    t_x = 0 if x == 0 else draw(st.integers(x, 1000))
    T = t_x + draw(st.integers(0, 400))
    return Summary(x, t_x, T, draw(st.integers(x, 100_000 * max(x, 1))) if x else 0, 20_000)


@settings(max_examples=150, deadline=None)
@given(
    models,
    summaries(),
    st.sampled_from(["p_alive", "expected_purchases", "predicted_clv"]),
    ops,
    st.integers(0, LIMIT),
    st.floats(-0.5, 1.5),
    st.sampled_from(["at_day", "fraction", "float"]),
    st.integers(1, 365),
)
def test_feature_flip_day_equals_brute_force(
    model: Model,
    summary: Summary,
    feature: str,
    op: str,
    at: int,
    scale: float,
    kind: str,
    horizon: int,
) -> None:
    start = summary.first_day + summary.T

    def value_at(day: int) -> float | Fraction:
        return feature_value(model, horizon, feature, summary.at(day))

    # Thresholds the feature reaches exactly (== / != flips), exact fractions, and arbitrary floats.
    reached = value_at(start + at)
    threshold: float | Fraction
    if kind == "at_day":
        threshold = reached
    elif kind == "fraction":
        threshold = (
            Fraction(reached) + Fraction(1, 10**9)
            if feature != "predicted_clv"
            else Fraction(int(reached), 1)
        )
    else:
        threshold = scale if feature == "p_alive" else reached * (1 + scale / 10)
    found = next_flip_day(model, horizon, feature, op, threshold, summary, start, LIMIT)
    assert found == brute_force(value_at, op, threshold, start)


def test_p_alive_closed_form_finds_a_far_day_with_few_evaluations(monkeypatch: pytest.MonkeyPatch) -> None:
    from segmenter.predictive import flip

    model = Model(
        BgNbdParams(0.243, 30.9, 0.793, 2.426), GammaGammaParams(6.25, 3.74, 15.44), dt.date(1997, 9, 30)
    )
    summary = Summary(x=2, t_x=213, T=272, repeat_cents=4500, first_day=0)
    calls: list[int] = []

    def counted(model: Model, horizon: int, feature: str, s: Summary) -> float | int:
        calls.append(s.T)
        return feature_value(model, horizon, feature, s)

    monkeypatch.setattr(flip, "feature_value", counted)
    found = next_flip_day(model, 90, "p_alive", "<", 0.01, summary, 272)
    assert found == 3603
    assert len(calls) <= 4  # start, the closed-form day and its neighbour: no search

    def value(day: int) -> float | int:
        return feature_value(model, 90, "p_alive", summary.at(day))

    assert value(found) < 0.01 <= value(found - 1)
    # Already below and still falling: never flips back. One-time buyers: P(alive) stays 1.
    assert next_flip_day(model, 90, "p_alive", ">", 0.5, summary, found) is None
    assert next_flip_day(model, 90, "p_alive", "<", 0.3, Summary(0, 0, 10, 0, 0), 10) is None
