"""The three predictive features of a customer (SPEC section 12), from a model and a summary.

Each depends on the day only through T, and is non-increasing in T: the flip-day search relies on that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from segmenter.predictive.bgnbd import expected_purchases, p_alive
from segmenter.predictive.gamma_gamma import expected_spend
from segmenter.predictive.model import Model
from segmenter.predictive.summary import Summary

FEATURES = ("p_alive", "expected_purchases", "predicted_clv")


@dataclass(frozen=True, slots=True)
class PredictiveFeatures:
    p_alive: float
    expected_purchases: float
    predicted_clv_cents: int


def round_half_up_cents(value: float) -> int:
    """Currency units (a float, taken exactly) to cents, rounded half up: no binary-to-decimal surprise."""
    return math.floor(Fraction(value) * 100 + Fraction(1, 2))


def predicted_clv_cents(model: Model, horizon_days: int, summary: Summary) -> int:
    """Expected purchases over the horizon times the expected spend per purchase, no discounting."""
    purchases = expected_purchases(model.bgnbd, horizon_days, summary.x, summary.t_x, summary.T)
    return round_half_up_cents(purchases * expected_spend(model.gamma_gamma, summary.x, summary.m))


def predictive_features(model: Model, horizon_days: int, summary: Summary) -> PredictiveFeatures:
    """All three features at the summary's T (computed together: the CLV reuses the expectation)."""
    alive = p_alive(model.bgnbd, summary.x, summary.t_x, summary.T)
    purchases = expected_purchases(model.bgnbd, horizon_days, summary.x, summary.t_x, summary.T)
    spend = expected_spend(model.gamma_gamma, summary.x, summary.m)
    return PredictiveFeatures(alive, purchases, round_half_up_cents(purchases * spend))


def feature_value(model: Model, horizon_days: int, feature: str, summary: Summary) -> float | int:
    """One feature by name, in the units rules compare it in (`predicted_clv` in cents)."""
    if feature == "p_alive":
        return p_alive(model.bgnbd, summary.x, summary.t_x, summary.T)
    if feature == "expected_purchases":
        return expected_purchases(model.bgnbd, horizon_days, summary.x, summary.t_x, summary.T)
    if feature == "predicted_clv":
        return predicted_clv_cents(model, horizon_days, summary)
    raise ValueError(f"unknown predictive feature {feature!r} (known: {', '.join(FEATURES)})")
