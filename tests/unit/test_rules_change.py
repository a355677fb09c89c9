"""A `rules` record in the engine (SPEC section 13): re-tiering, dimensions added and dropped, seq kept,
replays and duplicates of the record, waiting for the inputs, and the `emitted` bookkeeping (SPEC 14)."""

from __future__ import annotations

import orjson

from segmenter.engine import BatchResult, ClockAdvance, Engine, InputMessage, RulesChange
from segmenter.events import Kind
from segmenter.rules import default_rules, parse_rules

RULES_B = """\
version: 1
windows: {value_days: 365, engagement_days: 30}
dimensions:
  lifecycle:
    - {tier: prospect, when: "lifetime_purchases == 0"}
    - {tier: at_risk,  when: "recency_days >= 30"}
    - {tier: active,   when: "true"}
  spend:
    - {tier: big,   when: "lifetime_monetary >= 100"}
    - {tier: small, when: "true"}
"""
ISSUED = "2025-03-01T12:00:00.5Z"


def purchase(offset: int, customer: str, ts: str, amount: str = "20.00") -> InputMessage:
    value = orjson.dumps(
        {"event_id": f"e{offset}", "type": "purchase", "customer_id": customer, "ts": ts, "amount": amount}
    )
    return InputMessage(Kind.PURCHASES, "purchases", 0, offset, customer.encode(), value, [])


def rules_change(text: str, after: dict[str, int] | None = None) -> RulesChange:
    return RulesChange(0, text, parse_rules(text).version, ISSUED, after)


def run(engine: Engine, records: list) -> BatchResult:
    """Process a batch and write its states to the tables, as the worker's commit does."""
    result = engine.process(records)
    engine.customers.update(result.customers)
    engine.clocks.update({str(p): clock for p, clock in result.clocks.items()})
    return result


def engine_with_history() -> Engine:
    engine = Engine(default_rules(), {}, {})
    run(
        engine,
        [purchase(0, "a", "2025-01-01T10:00:00Z", "150.00"), purchase(1, "b", "2025-02-20T10:00:00Z")],
    )
    return engine


def test_rules_change_retiers_every_customer_at_its_evaluation_day() -> None:
    engine = engine_with_history()
    result = run(engine, [rules_change(RULES_B)])
    changes = {(c.customer_id, c.dimension): c for c in result.transitions}
    # D_c of both is the watermark day 2025-02-20: a was last seen 50 days before, so at_risk under B.
    a_lifecycle = changes[("a", "lifecycle")]
    assert (a_lifecycle.from_tier, a_lifecycle.to_tier) == ("active", "at_risk")
    assert changes[("a", "lifecycle")].when == "recency_days >= 30"
    assert changes[("a", "spend")].from_tier is None and changes[("a", "spend")].to_tier == "big"
    assert changes[("b", "spend")].to_tier == "small" and ("b", "lifecycle") in changes  # new -> active
    for change in result.transitions:
        assert change.reason == "rules_changed" and change.at == ISSUED and change.cause_event_id is None
        assert change.rules_version == parse_rules(RULES_B).version
    # Every record is written again, without the dropped dimensions; the counts follow.
    assert set(result.records) == {"a", "b"}
    assert "value" not in result.records["a"] and result.records["a"]["spend"] == "big"
    assert result.groups == [(("lifecycle", "spend", "-engagement", "-value"), ["a", "b"])]
    clock = result.clocks[0]
    assert set(clock.tier_counts) == {"lifecycle", "spend"}
    assert clock.tier_counts["spend"] == {"big": 1, "small": 1}
    # The emitted changes carry the record version they are written with, and the flows day of `at`.
    state = result.customers["a"]
    assert [e.version for e in state.emitted] == [state.version, state.version]
    assert {e.day for e in state.emitted} == {20148}  # 2025-03-01


def test_same_rules_again_changes_nothing_and_a_dimension_added_back_continues_its_seq() -> None:
    engine = engine_with_history()
    run(engine, [rules_change(RULES_B)])
    assert run(engine, [rules_change(RULES_B)]).transitions == []  # replayed or re-applied record
    back = run(engine, [rules_change(default_rules_text_with_value())])
    value = [c for c in back.transitions if c.dimension == "value" and c.customer_id == "a"]
    assert len(value) == 1 and value[0].from_tier is None and value[0].seq == 2


def default_rules_text_with_value() -> str:
    from segmenter.rules import default_rules_text

    return default_rules_text()


def test_rules_record_waits_for_the_inputs_produced_before_it() -> None:
    engine = engine_with_history()
    pending = run(engine, [rules_change(RULES_B, after={"purchases": 3})])
    assert pending.transitions == [] and engine.has_pending(0)
    later = run(engine, [purchase(2, "c", "2025-02-21T09:00:00Z", "500.00")])
    # The purchase was produced before the command: applied under the old rules, then the switch.
    by_reason = {(c.customer_id, c.reason, c.dimension) for c in later.transitions}
    assert ("c", "purchase", "value") in by_reason
    assert ("c", "rules_changed", "spend") in by_reason
    assert not engine.has_pending(0)


def test_time_driven_changes_follow_the_new_rules() -> None:
    engine = engine_with_history()
    run(engine, [rules_change(RULES_B)])
    result = run(engine, [ClockAdvance(0, 1_743_465_600_000_000)])  # 2025-04-01
    moves = {(c.customer_id, c.dimension, c.to_tier, c.at) for c in result.transitions}
    assert ("b", "lifecycle", "at_risk", "2025-03-22T00:00:00Z") in moves  # 30 days after 2025-02-20
    assert all(c.rules_version == parse_rules(RULES_B).version for c in result.transitions)
