"""The fits and formulas of SPEC section 12 against published values on the CDNOW sample (tests/data)."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from segmenter.predictive import BgNbdParams, Summary, fit_model, p_alive, summary_at
from segmenter.predictive.bgnbd import expected_purchases, probability_of_purchases
from segmenter.timeutil import date_to_day

DATA = Path(__file__).parent.parent / "data" / "cdnow_sample.txt"
CALIBRATION_END = dt.date(1997, 9, 30)  # end of the 39-week calibration period of the published fits

# Fader, Hardie & Lee (2005), "Counting your customers the easy way", CDNOW calibration fit; alpha per
# week there, 7 times that per day here. Gamma-Gamma: Fader, Hardie & Lee (2005), "RFM and CLV", and
# Fader & Hardie, "The Gamma-Gamma Model of Monetary Value" (2013).
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426}
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "v": 15.44}


def agree_to_2_significant_digits(value: float, published: float) -> bool:
    """Within half a unit of the published value's second significant digit (6.2496 agrees with 6.25)."""
    unit = 10.0 ** (math.floor(math.log10(abs(published))) - 1)
    return abs(value - published) <= unit / 2


def cdnow_day_totals() -> dict[str, dict[int, int]]:
    """customer -> day -> purchase cents; the 8 rows of 0.00 are dead letters (SPEC section 2)."""
    days: dict[str, dict[int, int]] = defaultdict(dict)
    for line in DATA.read_text().splitlines():
        _, customer, date, _, amount = line.split()
        cents = round(float(amount) * 100)
        if cents == 0:
            continue
        day = date_to_day(dt.date(int(date[:4]), int(date[4:6]), int(date[6:])))
        days[customer][day] = days[customer].get(day, 0) + cents
    return days


@pytest.fixture(scope="module")
def cdnow_summaries() -> list[Summary]:
    end = date_to_day(CALIBRATION_END)
    summaries = []
    for totals in cdnow_day_totals().values():
        purchase_days = sorted(totals)
        summary = summary_at(purchase_days, [totals[d] for d in purchase_days], end)
        assert summary is not None
        summaries.append(summary)
    return summaries


def test_sample_shape(cdnow_summaries: list[Summary]) -> None:
    assert len(DATA.read_text().splitlines()) == 6919
    assert len(cdnow_summaries) == 2349  # 2,357 less the 8 whose only purchase was 0.00
    assert max(s.T for s in cdnow_summaries) == 272  # 1997-01-01 .. 1997-09-30
    assert sum(s.x >= 1 for s in cdnow_summaries) == 946


def test_fit_reproduces_the_published_parameters(cdnow_summaries: list[Summary]) -> None:
    model, report = fit_model(cdnow_summaries, CALIBRATION_END)
    fitted = {"r": model.bgnbd.r, "alpha": model.bgnbd.alpha, "a": model.bgnbd.a, "b": model.bgnbd.b}
    for name, published in PUBLISHED_BGNBD.items():
        assert agree_to_2_significant_digits(fitted[name], published), (name, fitted[name], published)
    spend = {"p": model.gamma_gamma.p, "q": model.gamma_gamma.q, "v": model.gamma_gamma.v}
    for name, published in PUBLISHED_GG.items():
        assert agree_to_2_significant_digits(spend[name], published), (name, spend[name], published)
    assert (model.customers, model.repeat_customers) == (2349, 946)
    # Same maximum as lifetimes 0.11.3 (BetaGeoFitter, GammaGammaFitter) on the same daily summaries:
    # r=0.243903 alpha=30.957048 a=0.792508 b=2.422938, p=6.249572 q=3.744225 v=15.443521.
    assert model.bgnbd.r == pytest.approx(0.243903, rel=1e-4)
    assert model.bgnbd.alpha == pytest.approx(30.957048, rel=1e-4)
    assert model.bgnbd.b == pytest.approx(2.422938, rel=1e-4)
    assert model.gamma_gamma.v == pytest.approx(15.443521, rel=1e-4)
    assert model.log_likelihood_bgnbd < 0 and model.log_likelihood_gamma_gamma < 0
    # BG/NBD fits the frequency distribution closely (FHL 2005, figure 2).
    assert report.labels == ("0", "1", "2", "3", "4", "5", "6+")
    assert sum(report.actual) == 2349 and sum(report.expected) == pytest.approx(2349)
    assert report.actual[:3] == (1403, 439, 214)
    for actual, expected in zip(report.actual, report.expected, strict=True):
        assert abs(actual - expected) <= max(25.0, 0.1 * actual)


def test_published_example_customer() -> None:
    # FHL 2005: x = 2, t_x = 30.43, T = 38.86 weeks -> 1.226 expected purchases in the next 39 weeks.
    params = BgNbdParams(**PUBLISHED_BGNBD)
    assert round(expected_purchases(params, 273, 2, 213, 272), 3) == 1.226
    # lifetimes 0.11.3 BetaGeoFitter with these parameters (alpha = 30.898), computed once:
    #   conditional_probability_alive(2, 213, 272) = 0.7265897218354948
    #   conditional_expected_number_of_purchases_up_to_time(273, 2, 213, 272) = 1.2261158061493334
    #   ...(90, 0, 0, 100) = 0.15247837271573897, ...(90, 15, 200, 300) = 0.3004781865367133
    assert p_alive(params, 2, 213, 272) == pytest.approx(0.7265897218354948, rel=1e-12)
    assert expected_purchases(params, 273, 2, 213, 272) == pytest.approx(1.2261158061493334, rel=1e-12)
    assert expected_purchases(params, 90, 0, 0, 100) == pytest.approx(0.15247837271573897, rel=1e-12)
    assert expected_purchases(params, 90, 15, 200, 300) == pytest.approx(0.3004781865367133, rel=1e-12)
    assert p_alive(params, 0, 0, 272) == 1.0


def test_euler_transformed_expectation_equals_the_direct_formula() -> None:
    from scipy.special import hyp2f1

    params = BgNbdParams(**PUBLISHED_BGNBD)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    for x, t_x, T, t in [(0, 0, 10, 30), (1, 5, 400, 90), (7, 300, 310, 365), (3, 20, 2000, 7)]:
        z = t / (alpha + T + t)
        direct = (
            (a + b + x - 1)
            / (a - 1)
            * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z))
            / (1 + (x > 0) * a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))
        )
        assert expected_purchases(params, t, x, t_x, T) == pytest.approx(direct, rel=1e-10)


def test_probability_of_purchases_sums_to_one() -> None:
    params = BgNbdParams(**PUBLISHED_BGNBD)
    t = np.array([1.0, 30.0, 272.0, 5000.0])
    probabilities = probability_of_purchases(params, 5000, t)
    assert np.all(probabilities >= 0)
    assert np.allclose(probabilities.sum(axis=0), 1.0, atol=1e-6)
    # n = 0 by hand: B(a, b) / B(a, b) (alpha / (alpha + t))^r
    assert probabilities[0] == pytest.approx((params.alpha / (params.alpha + t)) ** params.r)
