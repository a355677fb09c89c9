"""BG/NBD (Fader, Hardie & Lee 2005): purchase frequency and dropout, fitted on (x, t_x, T).

Vectorised log-likelihood in log space (`gammaln`, `betaln`, log-sum-exp) for fitting; the per-customer
features are scalar `math` code, because the engine evaluates one customer at a time and the flip-day search
must evaluate exactly the function the rules see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import betaln, gammaln, hyp2f1

from segmenter.predictive._optimize import maximise

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """Purchase rate ~ Gamma(r, alpha) (alpha in days), dropout probability ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True, slots=True)
class BgNbdFit:
    params: BgNbdParams
    log_likelihood: float
    customers: int


def log_likelihood(params: BgNbdParams, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    """Per-customer log-likelihood, FHL 2005 equation (6)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    still_alive = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    repeat = x > 0
    # The dropout term exists only for x > 0; elsewhere it is -inf (b + x - 1 may be <= 0 there).
    dropped = np.full_like(still_alive, -np.inf)
    xr = x[repeat]
    dropped[repeat] = betaln(a + 1.0, b + xr - 1.0) - (r + xr) * np.log(alpha + t_x[repeat])
    result: FloatArray = common + np.logaddexp(still_alive, dropped)
    return result


def fit(x: FloatArray, t_x: FloatArray, T: FloatArray) -> BgNbdFit:
    """Maximum-likelihood (r, alpha, a, b) over customers given as parallel arrays (days)."""
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    if x.size == 0:
        raise ValueError("no customers to fit")
    # Identical summaries are common with daily periods: fit on unique rows, weighted.
    rows, counts = np.unique(np.stack([x, t_x, T], axis=1), axis=0, return_counts=True)
    ux, ut, uT = rows[:, 0], rows[:, 1], rows[:, 2]
    weights = counts.astype(np.float64)

    def total(p: FloatArray) -> float:
        return float(np.dot(weights, log_likelihood(BgNbdParams(*map(float, p)), ux, ut, uT)))

    # Scale-aware start: alpha ~ r / (repeat purchases per day of observation).
    rate = max(float(x.sum()), 1.0) / max(float(T.sum()), 1.0)
    start = np.array([1.0, 1.0 / rate, 1.0, 1.0])
    best, value = maximise(total, start, ("r", "alpha", "a", "b"))
    return BgNbdFit(BgNbdParams(*map(float, best)), value, int(x.size))


def _log_odds_dead(params: BgNbdParams, x: int, t_x: float, T: float) -> float:
    """log(P(dead) / P(alive)) for x > 0: log(a / (b + x - 1)) + (r + x) log((alpha + T) / (alpha + t_x))."""
    return math.log(params.a / (params.b + x - 1)) + (params.r + x) * (
        math.log(params.alpha + T) - math.log(params.alpha + t_x)
    )


def p_alive(params: BgNbdParams, x: int, t_x: float, T: float) -> float:
    """P(alive | x, t_x, T), FHL 2005 equation (A13); 1 for x = 0 (the model cannot tell)."""
    if x == 0:
        return 1.0
    odds = _log_odds_dead(params, x, t_x, T)
    return 1.0 / (1.0 + math.exp(odds)) if odds < 700 else 0.0


def p_alive_inverse(params: BgNbdParams, x: int, t_x: float, p: float) -> float:
    """The real T at which `p_alive` equals p (0 < p < 1, x > 0): the closed form solved for T."""
    odds = math.log((1.0 - p) / p) - math.log(params.a / (params.b + x - 1))
    return (params.alpha + t_x) * math.exp(odds / (params.r + x)) - params.alpha


def expected_purchases(params: BgNbdParams, horizon: float, x: int, t_x: float, T: float) -> float:
    """E[purchases in (T, T + horizon] | x, t_x, T], FHL 2005 equation (10).

    The hypergeometric term is taken after Euler's transformation, (1 - z)^(r + x) 2F1(r + x, b + x;
    a + b + x - 1; z) = (1 - z)^(a - 1) 2F1(a + b - 1 - r, a - 1; a + b + x - 1; z), which converges at
    z -> 1 and does not overflow for large x. Undefined at a = 1 exactly.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if horizon <= 0:
        return 0.0
    one_minus_z = (alpha + T) / (alpha + T + horizon)
    z = horizon / (alpha + T + horizon)
    tail = one_minus_z ** (a - 1.0) * float(hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z))
    return float(p_alive(params, x, t_x, T) * (a + b + x - 1.0) / (a - 1.0) * (1.0 - tail))


def probability_of_purchases(params: BgNbdParams, counts: int, t: FloatArray) -> FloatArray:
    """P(X(t) = n) for n = 0 .. counts - 1 (rows) and a new customer observed for each t (columns) days,
    FHL 2005 equation (8); the NBD terms are accumulated once for all n."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t = np.asarray(t, dtype=np.float64)
    n = np.arange(counts, dtype=np.float64)[:, None]
    log_q = np.log(alpha) - np.log(alpha + t)  # log(alpha / (alpha + t))
    log_p = np.log(t) - np.log(alpha + t)
    # log NBD(n): gamma(r + n) / (gamma(r) n!) q^r p^n, with 0 * log(0) = 0 at t = 0
    log_nbd = gammaln(r + n) - gammaln(r) - gammaln(n + 1.0) + r * log_q + np.where(n > 0, n * log_p, 0.0)
    nbd = np.exp(log_nbd)
    below = np.cumsum(nbd, axis=0) - nbd  # sum over j < n
    alive = np.exp(betaln(a, b + n) - betaln(a, b)) * nbd
    tail = np.maximum(1.0 - below, 0.0)  # P(NBD >= n), clipped: the cumulative sum may pass 1 by an ulp
    dropped = np.exp(betaln(a + 1.0, np.maximum(b + n - 1.0, 1e-300)) - betaln(a, b)) * tail
    result: FloatArray = alive + np.where(n > 0, dropped, 0.0)
    return result
