"""Fit both models on a population of summaries and say how well BG/NBD reproduces it.

The fit report compares, per repeat-purchase count bucket 0, 1, ..., 6+, the number of customers observed
with the number BG/NBD expects, sum_i P(X(T_i) = x): the check FHL (2005, figure 2) use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from segmenter.predictive import bgnbd, gamma_gamma
from segmenter.predictive.model import Model
from segmenter.predictive.summary import Summary

BUCKETS = 7  # 0, 1, ..., 5 and "6+"


@dataclass(frozen=True, slots=True)
class FitReport:
    """Per bucket: its label, the customers observed in it, and the customers BG/NBD expects in it."""

    labels: tuple[str, ...]
    actual: tuple[int, ...]
    expected: tuple[float, ...]


def fit_model(summaries: Iterable[Summary], as_of: dt.date, currency: str = "USD") -> tuple[Model, FitReport]:
    """Maximum-likelihood BG/NBD over every summary and Gamma-Gamma over those with x >= 1."""
    rows = list(summaries)
    if not rows:
        raise ValueError("no customer with a purchase on or before the as-of day")
    x = np.array([s.x for s in rows], dtype=np.float64)
    t_x = np.array([s.t_x for s in rows], dtype=np.float64)
    T = np.array([s.T for s in rows], dtype=np.float64)
    if np.any(t_x > T) or np.any(t_x < 0):
        raise ValueError("a summary has t_x > T or t_x < 0 (take summaries at or after the purchases)")
    bg = bgnbd.fit(x, t_x, T)
    repeat = [s for s in rows if s.x >= 1]
    gg = gamma_gamma.fit(
        np.array([s.x for s in repeat], dtype=np.float64), np.array([s.m for s in repeat], dtype=np.float64)
    )
    model = Model(
        bg.params, gg.params, as_of, currency, len(rows), len(repeat), bg.log_likelihood, gg.log_likelihood
    )
    return model, frequency_report(bg.params, x, T)


def frequency_report(params: bgnbd.BgNbdParams, x: np.ndarray, T: np.ndarray) -> FitReport:
    """Observed vs expected customers per repeat-purchase bucket 0..5, 6+."""
    actual = [int(np.sum(x == n)) for n in range(BUCKETS - 1)]
    actual.append(int(np.sum(x >= BUCKETS - 1)))
    expected = [float(v) for v in bgnbd.probability_of_purchases(params, BUCKETS - 1, T).sum(axis=1)]
    expected.append(float(x.size) - sum(expected))
    labels = tuple(str(n) for n in range(BUCKETS - 1)) + (f"{BUCKETS - 1}+",)
    return FitReport(labels, tuple(actual), tuple(expected))
