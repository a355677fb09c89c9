"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"), fitted on (x, m) for x >= 1.

Spend per transaction ~ Gamma(p, nu), nu ~ Gamma(q, v); the mean of x transactions is what is observed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln

from segmenter.predictive._optimize import maximise

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class GammaGammaParams:
    p: float
    q: float
    v: float  # in currency units


@dataclass(frozen=True, slots=True)
class GammaGammaFit:
    params: GammaGammaParams
    log_likelihood: float
    customers: int


def log_likelihood(params: GammaGammaParams, x: FloatArray, m: FloatArray) -> FloatArray:
    """Per-customer log density of the mean spend m over x >= 1 transactions."""
    p, q, v = params.p, params.q, params.v
    px = p * x
    result: FloatArray = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1.0) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(x * m + v)
    )
    return result


def fit(x: FloatArray, m: FloatArray) -> GammaGammaFit:
    """Maximum-likelihood (p, q, v) over repeat customers (x >= 1, m > 0)."""
    x, m = np.asarray(x, dtype=np.float64), np.asarray(m, dtype=np.float64)
    keep = x >= 1
    x, m = x[keep], m[keep]
    if x.size == 0:
        raise ValueError("no repeat customers (x >= 1) to fit the spend model on")
    if np.any(m <= 0):
        raise ValueError("a repeat customer has a mean spend <= 0")

    def total(params: FloatArray) -> float:
        return float(log_likelihood(GammaGammaParams(*map(float, params)), x, m).sum())

    start = np.array([1.0, 2.0, float(np.mean(m))])
    best, value = maximise(total, start, ("p", "q", "v"))
    return GammaGammaFit(GammaGammaParams(*map(float, best)), value, int(x.size))


def expected_spend(params: GammaGammaParams, x: int, m: float | None) -> float:
    """E[spend per purchase | x, m] = p (v + x m) / (p x + q - 1); p v / (q - 1) at x = 0 (population)."""
    p, q, v = params.p, params.q, params.v
    if x == 0 or m is None:
        return p * v / (q - 1.0)
    return p * (v + x * m) / (p * x + q - 1.0)
