"""Summary, model file, CLV rounding and `segmenter model fit` (with the changelog read faked)."""

from __future__ import annotations

import datetime as dt
import json
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner

from segmenter.customer import CustomerState
from segmenter.predictive import (
    BgNbdParams,
    GammaGammaParams,
    Model,
    Summary,
    dump_model,
    expected_purchases,
    expected_spend,
    load_model,
    predicted_clv_cents,
    predictive_features,
    round_half_up_cents,
    summary_at,
)
from segmenter.timeutil import date_to_day
from streams.cli import cli
from tests.unit.test_predictive_reference import CALIBRATION_END, cdnow_day_totals

MODEL = Model(
    BgNbdParams(0.243, 30.898, 0.793, 2.426),
    GammaGammaParams(6.25, 3.74, 15.44),
    dt.date(1997, 9, 30),
    "USD",
    2349,
    946,
    -14359.3,
    -4055.9,
)


def test_summary_at_uses_only_purchase_days_up_to_the_day() -> None:
    days, cents = [100, 103, 110, 150], [500, 250, 1000, 999]
    assert summary_at(days, cents, 99) is None
    assert summary_at([], [], 10_000) is None
    assert summary_at(days, cents, 100) == Summary(0, 0, 0, 0, 100)
    one = summary_at(days, cents, 120)
    assert one == Summary(x=2, t_x=10, T=20, repeat_cents=1250, first_day=100)
    assert one.m == 6.25 and one.m_exact == Fraction(25, 4)  # first day's 5.00 is not in m
    assert summary_at(days, cents, 100).m is None  # type: ignore[union-attr]
    assert one.at(130) == Summary(2, 10, 30, 1250, 100)


def test_expected_spend_and_clv_rounding() -> None:
    g = MODEL.gamma_gamma
    assert expected_spend(g, 0, None) == pytest.approx(6.25 * 15.44 / 2.74)
    assert expected_spend(g, 2, 20.0) == pytest.approx(6.25 * (15.44 + 40.0) / (12.5 + 2.74))
    # Half up on the exact decimal value of the float: 0.125 is exact, 0.145 is 0.14499999...
    assert round_half_up_cents(0.125) == 13
    assert round_half_up_cents(0.145) == 14
    assert round_half_up_cents(2.675) == 267  # 2.67499999999999982236431605997495353221893310546875
    assert round_half_up_cents(0.005) == 1  # 0.005000000000000000104...
    summary = Summary(2, 213, 272, 4000, 0)
    features = predictive_features(MODEL, 90, summary)
    purchases = expected_purchases(MODEL.bgnbd, 90, 2, 213, 272)
    assert features.expected_purchases == purchases
    assert features.predicted_clv_cents == predicted_clv_cents(MODEL, 90, summary)
    assert features.predicted_clv_cents == round_half_up_cents(purchases * expected_spend(g, 2, 20.0))


def test_model_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    dump_model(MODEL, path)
    document = json.loads(path.read_text())
    assert list(document) == [
        "bgnbd", "gamma_gamma", "time_unit", "currency", "as_of", "customers", "repeat_customers",
        "log_likelihood",
    ]  # fmt: skip
    assert document["bgnbd"] == {"r": 0.243, "alpha": 30.898, "a": 0.793, "b": 2.426}
    assert document["time_unit"] == "day" and document["as_of"] == "1997-09-30"
    assert load_model(path) == MODEL


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("bgnbd"), "bgnbd must be an object with keys r, alpha, a, b"),
        (lambda d: d["bgnbd"].pop("alpha"), "bgnbd.alpha must be a finite number, got None"),
        (lambda d: d["bgnbd"].update(r=-1), "bgnbd.r must be > 0, got -1.0"),
        (lambda d: d["bgnbd"].update(b="2"), "bgnbd.b must be a finite number, got '2'"),
        (lambda d: d["gamma_gamma"].update(q=0.9), "gamma_gamma.q must be > 1 for a finite expected spend"),
        (lambda d: d.update(time_unit="week"), "time_unit must be \"day\", got 'week'"),
        (lambda d: d.update(as_of="1997-02-30"), "as_of must be a date YYYY-MM-DD, got '1997-02-30'"),
        (lambda d: d.update(currency="usd"), "currency must be a 3-letter ISO 4217 code"),
        (lambda d: d.update(customers=True), "customers must be an integer >= 0, got True"),
        (lambda d: d.update(repeat_customers=3000), "repeat_customers (3000) exceeds customers (2349)"),
        (lambda d: d.update(log_likelihood=None), "log_likelihood must be an object"),
    ],
)
def test_load_model_rejects_bad_files(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    document = MODEL.to_json()
    change(document)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError) as error:
        load_model(path)
    assert str(error.value).startswith(f"{path}: {message}")
    assert "\n" not in str(error.value)


def test_load_model_extra_keys_allowed_and_bad_json(tmp_path: Path) -> None:
    document = MODEL.to_json() | {"fit_report": {"0": 1}, "note": "weekly refit"}
    path = tmp_path / "model.json"
    path.write_text(json.dumps(document))
    assert load_model(path) == MODEL
    path.write_text("{\n  nope")
    with pytest.raises(ValueError, match=r"model.json: not valid JSON \(line 2: "):
        load_model(path)
    with pytest.raises(ValueError, match="cannot read the model file"):
        load_model(tmp_path / "missing.json")


def cdnow_states() -> dict[str, CustomerState]:
    """The CDNOW sample as the workers would keep it: every purchase day, D_c = the customer's last day."""
    states = {}
    for customer, totals in cdnow_day_totals().items():
        days = sorted(totals)
        state = CustomerState(customer_id=customer, partition=0, day=days[-1])
        state.purchase_days, state.purchase_day_cents = days, [totals[d] for d in days]
        states[customer] = state
    states["profile-only"] = CustomerState(customer_id="profile-only", partition=1, day=days[0])
    return states


@pytest.fixture
def fake_changelog(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    from state import changelog

    calls: list[tuple[str, str]] = []

    def read_customers(broker: str, app_id: str, on_progress=None, ends=None):  # type: ignore[no-untyped-def]
        calls.append((broker, app_id))
        if app_id == "missing":
            raise LookupError("changelog topic missing-customers-changelog does not exist (wrong --app-id?)")
        if on_progress is not None:
            on_progress(1, 1)
        return {} if app_id == "empty" else cdnow_states()

    monkeypatch.setattr(changelog, "read_customers", read_customers)
    return calls


def test_model_fit_writes_the_model_and_a_report(tmp_path: Path, fake_changelog: list) -> None:  # type: ignore[type-arg]
    out = tmp_path / "model.json"
    result = CliRunner().invoke(
        cli,
        [
            "model",
            "fit",
            "--out",
            str(out),
            "--as-of",
            "1997-09-30",
            "--broker",
            "kafka://k:9092",
            "--app-id",
            "shop",
        ],
    )
    assert result.exit_code == 0, result.output
    assert fake_changelog == [("k:9092", "shop")]
    model = load_model(out)
    assert model.as_of == CALIBRATION_END and model.currency == "USD"
    assert (model.customers, model.repeat_customers) == (2349, 946)
    assert round(model.bgnbd.r, 2) == 0.24 and round(model.gamma_gamma.v, 1) == 15.4
    lines = result.stdout.splitlines()
    assert lines[0] == f"wrote {out}: 2349 customers, 946 repeat customers, as of 1997-09-30"
    assert lines[1].startswith(
        "BG/NBD       r=0.2439 alpha=30.96/day a=0.7925 b=2.423  log-likelihood -14359.3"
    )
    assert lines[2].startswith("Gamma-Gamma  p=6.25 q=3.744 v=15.44 USD  log-likelihood -4055.9")
    assert lines[3].split() == ["repeat", "purchase", "days", "customers", "expected", "(BG/NBD)"]
    assert [line.split()[:2] for line in lines[4:]] == [
        ["0", "1403"], ["1", "439"], ["2", "214"], ["3", "100"], ["4", "62"], ["5", "38"], ["6+", "93"]
    ]  # fmt: skip


def test_model_fit_defaults_to_the_latest_evaluation_day(tmp_path: Path, fake_changelog: list) -> None:  # type: ignore[type-arg]
    out = tmp_path / "model.json"
    result = CliRunner().invoke(cli, ["model", "fit", "--out", str(out), "--currency", "EUR"])
    assert result.exit_code == 0, result.output
    model = load_model(out)
    latest = max(max(s.purchase_days) for s in cdnow_states().values() if s.purchase_days)
    assert date_to_day(model.as_of) == latest and model.as_of == dt.date(1998, 6, 30)
    assert model.customers == 2349 and model.currency == "EUR"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "1997-13-01"], "Error: --as-of '1997-13-01' is not a date YYYY-MM-DD"),
        (["--as-of", "19970930"], "Error: --as-of '19970930' is not a date YYYY-MM-DD"),
        (
            ["--as-of", "1996-12-31"],
            "Error: no customer has a purchase on or before 1996-12-31 (2350 customers read)",
        ),
        (["--app-id", "empty"], "Error: no customers in empty's tables (has a worker run?)"),
        (["--app-id", "missing"], "Error: changelog topic missing-customers-changelog does not exist"),
    ],
)
def test_model_fit_errors_are_one_line(
    tmp_path: Path, fake_changelog: list, args: list[str], message: str
) -> None:  # type: ignore[type-arg]
    out = tmp_path / "model.json"
    result = CliRunner().invoke(cli, ["model", "fit", "--out", str(out), *args])
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output and not out.exists()
