"""Predictive features in the engine (SPEC section 12): in records and tier changes, and a P(alive)
threshold crossing as a time-driven tier change on the exact day (checked day by day here)."""

from __future__ import annotations

import json

import orjson

from segmenter.engine import Effects, Engine, InputMessage
from segmenter.events import Kind
from segmenter.predictive.bgnbd import BgNbdParams, p_alive
from segmenter.predictive.summary import summary_at
from segmenter.rules import parse_rules
from segmenter.timeutil import date_to_day, day_midnight_rfc3339

PARAMS = {"bgnbd": {"r": 0.243, "alpha": 30.9, "a": 0.793, "b": 2.426},
          "gamma_gamma": {"p": 6.25, "q": 3.74, "v": 15.44}}
RULES = """
version: 1
model: {file: model.json, horizon_days: 90}
dimensions:
  churn_risk:
    - {tier: none,  when: "lifetime_purchases == 0"}
    - {tier: high,  when: "p_alive < 0.3"}
    - {tier: watch, when: "p_alive < 0.7"}
    - {tier: low,   when: "true"}
  value_forecast:
    - {tier: top,   when: "predicted_clv >= 40"}
    - {tier: other, when: "true"}
"""


def test_p_alive_crossings_are_time_driven_changes_on_the_exact_day(tmp_path) -> None:
    rules = parse_rules(RULES, "rules.yaml", files={"model.json": json.dumps(PARAMS)})
    engine = Engine(rules, {}, {})
    effects = Effects()
    days = ["2025-01-01", "2025-01-20", "2025-02-10"]
    for n, day in enumerate(days):
        body = {"event_id": f"e{n}", "type": "purchase", "customer_id": "c", "ts": f"{day}T10:00:00Z",
                "amount": "30.00"}
        engine.handle_input(InputMessage(Kind.PURCHASES, "p", 0, n, b"c", orjson.dumps(body), []), effects)
    end = date_to_day(__import__("datetime").date(2026, 6, 1))
    engine.handle_clock(0, end * 86_400_000_000, effects)
    state = engine.customers["c"]
    params = BgNbdParams(**PARAMS["bgnbd"])
    expected = []
    previous = None
    for day in range(state.purchase_days[0], end + 1):
        summary = summary_at(state.purchase_days, state.purchase_day_cents, day)
        assert summary is not None
        alive = p_alive(params, summary.x, summary.t_x, summary.T)
        tier = "high" if alive < 0.3 else "watch" if alive < 0.7 else "low"
        if previous is not None and tier != previous and day not in state.purchase_days:
            expected.append((previous, tier, day_midnight_rfc3339(day)))  # time-driven
        previous = tier
    got = [(t.from_tier, t.to_tier, t.at) for t in effects.transitions
           if t.dimension == "churn_risk" and t.reason == "time"]
    assert got == expected and len(got) >= 2
    fields = engine.record_fields(state)
    assert set(fields) >= {"p_alive", "expected_purchases", "predicted_clv", "churn_risk", "value_forecast"}
    assert len(fields["p_alive"].split(".")[1]) == 6 and len(fields["predicted_clv"].split(".")[1]) == 2
    change = effects.transitions[-1]
    assert set(change.features) >= {"p_alive", "expected_purchases", "predicted_clv"}
