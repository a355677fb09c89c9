"""Predictive features (SPEC section 12): BG/NBD and Gamma-Gamma, fitted and evaluated per customer.

Pure numerics (numpy, scipy): nothing here knows about Kafka or Redis.
"""

from segmenter.predictive.bgnbd import BgNbdFit, BgNbdParams, expected_purchases, p_alive
from segmenter.predictive.features import (
    FEATURES,
    PredictiveFeatures,
    feature_value,
    predicted_clv_cents,
    predictive_features,
    round_half_up_cents,
)
from segmenter.predictive.fit import FitReport, fit_model
from segmenter.predictive.flip import MAX_SEARCH_DAYS, first_flip_day, next_flip_day
from segmenter.predictive.gamma_gamma import GammaGammaFit, GammaGammaParams, expected_spend
from segmenter.predictive.model import Model, dump_model, load_model, parse_model
from segmenter.predictive.summary import Summary, summary_at

__all__ = [
    "FEATURES",
    "MAX_SEARCH_DAYS",
    "BgNbdFit",
    "BgNbdParams",
    "FitReport",
    "GammaGammaFit",
    "GammaGammaParams",
    "Model",
    "PredictiveFeatures",
    "Summary",
    "dump_model",
    "expected_purchases",
    "expected_spend",
    "feature_value",
    "first_flip_day",
    "fit_model",
    "load_model",
    "next_flip_day",
    "p_alive",
    "parse_model",
    "predicted_clv_cents",
    "predictive_features",
    "round_half_up_cents",
    "summary_at",
]
