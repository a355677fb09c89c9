"""Parameter recovery: customers simulated from known BG/NBD and Gamma-Gamma parameters, then summarised
by day exactly as the state keeps them (`summary_at`) and fitted with `fit_model`."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from segmenter.predictive import Summary, fit_model, summary_at

TRUE = {"r": 0.5, "alpha": 20.0, "a": 0.8, "b": 2.5, "p": 6.0, "q": 4.0, "v": 15.0}
CUSTOMERS = 25_000
MAX_REPEATS = 400


def simulate(rng: np.random.Generator, n: int) -> list[Summary]:
    """BG/NBD: rate ~ Gamma(r, 1/alpha) per day, after each repeat purchase gone with p ~ Beta(a, b);
    Gamma-Gamma: each repeat purchase spends Gamma(p, 1/nu) dollars with nu ~ Gamma(q, 1/v)."""
    rate = rng.gamma(TRUE["r"], 1.0 / TRUE["alpha"], n)
    dropout = rng.beta(TRUE["a"], TRUE["b"], n)
    observed = rng.integers(180, 721, n)  # days from the first purchase day to the as-of day
    offset = rng.uniform(0.0, 1.0, n)  # time of day of the first purchase
    times = offset[:, None] + np.cumsum(rng.exponential(1.0, (n, MAX_REPEATS)), axis=1) / rate[:, None]
    alive_for = rng.geometric(dropout)  # repeat purchases made before dropping out (the last one included)
    made = (np.arange(1, MAX_REPEATS + 1)[None, :] <= alive_for[:, None]) & (times < observed[:, None] + 1)
    assert not made[:, -1].any()
    nu = rng.gamma(TRUE["q"], 1.0 / TRUE["v"], n)
    spend = rng.gamma(TRUE["p"], 1.0, (n, MAX_REPEATS)) / nu[:, None]
    as_of = 10_000
    summaries = []
    for i in range(n):
        count = int(made[i].sum())
        first = as_of - int(observed[i])
        totals = {first: 1_000}
        for day, cents in zip(
            np.floor(times[i, :count]).astype(int),
            np.maximum(np.round(spend[i, :count] * 100), 1).astype(int),
            strict=True,
        ):
            totals[first + int(day)] = totals.get(first + int(day), 0) + int(cents)
        days = sorted(totals)
        summary = summary_at(days, [totals[d] for d in days], as_of)
        assert summary is not None
        summaries.append(summary)
    return summaries


def test_fit_recovers_simulated_parameters_within_10_percent() -> None:
    summaries = simulate(np.random.default_rng(20240615), CUSTOMERS)
    model, _ = fit_model(summaries, dt.date(1997, 1, 1))
    b, g = model.bgnbd, model.gamma_gamma
    fitted = {"r": b.r, "alpha": b.alpha, "a": b.a, "b": b.b, "p": g.p, "q": g.q, "v": g.v}
    print("recovered", {name: round(value, 4) for name, value in fitted.items()})
    for name, true in TRUE.items():
        assert fitted[name] == pytest.approx(true, rel=0.10), (name, fitted[name], true)
    assert model.customers == CUSTOMERS and model.repeat_customers > 10_000
