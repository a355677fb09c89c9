"""The synthetic event generator (segmenter.simulation): determinism, order, SPEC section 2 validity, realism.

The validity rules are written out here, independently of segmenter.events.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from segmenter.simulation import (
    DLQ_REASONS,
    INTERACTIONS,
    PERSONA_WEIGHTS,
    PERSONAS,
    PURCHASES,
    Message,
    SimConfig,
    Simulation,
    generate,
)

RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
AMOUNT = re.compile(r"^[0-9]+\.[0-9]{2}$")
INTERACTION_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_BYTES = 64 * 1024


def ts_seconds(text: str) -> int:
    match = RFC3339.match(text)
    assert match, f"ts {text!r} is not RFC 3339 with an offset"
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.tzinfo is not None
    return int(moment.timestamp())


def check_valid(message: Message) -> dict:
    """Every rule of SPEC section 2 for a valid event; returns the decoded event."""
    assert len(message.value) <= MAX_BYTES
    event = json.loads(message.value.decode("utf-8"), parse_float=Decimal)
    assert isinstance(event, dict)
    for name in ("event_id", "customer_id"):
        assert isinstance(event[name], str) and 1 <= len(event[name]) <= 128, (name, event)
    assert message.key is not None and message.key.decode("utf-8") == event["customer_id"]
    assert isinstance(event["ts"], str)
    assert ts_seconds(event["ts"]) == message.ts
    assert event["ts"].endswith("Z")
    if message.topic == PURCHASES:
        assert event["type"] in ("purchase", "refund")
        amount = event["amount"]
        assert isinstance(amount, str) and AMOUNT.match(amount), amount
        assert Decimal(amount) > 0
        assert event.get("currency", "USD") == "USD"
        for optional in ("order_id", "category"):
            assert optional not in event or isinstance(event[optional], str)
    elif message.topic == "profiles":  # SPEC section 10
        assert "type" not in event and 1 <= len(event["attributes"]) <= 64
        for name, value in event["attributes"].items():
            assert INTERACTION_TYPE.match(name) and (value is None or isinstance(value, str | int | bool))
    else:
        assert message.topic == INTERACTIONS
        assert INTERACTION_TYPE.match(event["type"])
        assert event["type"] not in ("purchase", "refund")
        assert "properties" not in event or isinstance(event["properties"], dict)
    return event


@pytest.fixture(scope="module")
def stream() -> list[Message]:
    return list(generate(SimConfig(customers=3000, seed=11, start=date(2024, 1, 1), days=400)))


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    config = SimConfig(customers=300, seed=5, start=date(2024, 3, 1), days=120)
    first = list(generate(config))
    again = list(generate(config))
    assert first == again
    other_config = SimConfig(customers=300, seed=6, start=date(2024, 3, 1), days=120)
    other = list(itertools.islice(generate(other_config), len(first)))
    assert [m.value for m in other] != [m.value for m in first]


def test_injections_do_not_change_the_valid_events() -> None:
    base = SimConfig(customers=400, seed=9, start=date(2024, 1, 1), days=200)
    plain = [m for m in generate(base)]
    noisy = [m for m in generate(SimConfig(**{**base.__dict__, "bad_ratio": 0.05, "duplicate_ratio": 0.05}))]
    assert [m for m in noisy if m.kind == "event"] == plain
    assert len(noisy) > len(plain)


def test_global_event_time_order(stream: list[Message]) -> None:
    times = [m.ts for m in stream]
    assert times == sorted(times)
    config = SimConfig(customers=3000, seed=11, start=date(2024, 1, 1), days=400)
    assert config.start_ts <= times[0] and times[-1] < config.end_ts


def test_every_event_is_valid_and_ids_are_unique(stream: list[Message]) -> None:
    assert stream and all(m.kind == "event" for m in stream)
    event_ids = set()
    for message in stream:
        event = check_valid(message)
        assert event["event_id"] not in event_ids
        event_ids.add(event["event_id"])
        assert event["event_id"].startswith("sim-11-")


def test_refunds_refer_to_earlier_orders_of_the_same_customer(stream: list[Message]) -> None:
    orders: dict[str, tuple[str, Decimal]] = {}
    refunds = 0
    for message in stream:
        if message.topic != PURCHASES:
            continue
        event = json.loads(message.value)
        if event["type"] == "purchase":
            orders[event["order_id"]] = (event["customer_id"], Decimal(event["amount"]))
        else:
            refunds += 1
            customer, amount = orders[event["order_id"]]
            assert customer == event["customer_id"]
            assert Decimal(event["amount"]) <= amount
    purchases = len(orders)
    assert 0.01 < refunds / purchases < 0.08


def test_persona_mix_roughly_as_intended() -> None:
    simulation = Simulation(SimConfig(customers=20_000, seed=2, days=30))
    for _ in simulation.historic():
        pass
    total = sum(simulation.persona_counts.values())
    assert total == 20_000
    for persona, weight in zip(PERSONAS, PERSONA_WEIGHTS, strict=True):
        assert abs(simulation.persona_counts[persona] / total - weight) < 0.015, persona
    assert abs(simulation.persona_counts["one_time"] / total - 0.40) < 0.015


def test_customer_behaviour_looks_real(stream: list[Message]) -> None:
    config = SimConfig(customers=3000, seed=11, start=date(2024, 1, 1), days=400)
    purchases: dict[str, list[int]] = defaultdict(list)
    interactions: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    types: Counter[str] = Counter()
    for message in stream:
        event = json.loads(message.value)
        customer = event["customer_id"]
        if message.topic == "profiles":
            continue
        first_seen.setdefault(customer, message.ts)
        types[event["type"]] += 1
        if event["type"] == "purchase":
            purchases[customer].append(message.ts)
        elif message.topic == INTERACTIONS:
            interactions[customer] += 1
    buyers = [c for c in first_seen if purchases[c]]
    # one-time buyers are the biggest group of buyers, a long tail buys often
    counts = Counter(len(purchases[c]) for c in buyers)
    assert counts[1] / len(buyers) > 0.4
    assert max(counts) >= 20
    # prospects: interactions, never a purchase
    prospects = [c for c in first_seen if not purchases[c]]
    assert len(prospects) > 0.05 * len(first_seen) and all(interactions[c] for c in prospects)
    # every interaction type occurs; page views dominate
    for kind in ("page_view", "email_open", "email_click", "support_ticket", "review"):
        assert types[kind] > 0, kind
    assert types["page_view"] == max(types[k] for k in types if k not in ("purchase", "refund"))
    # acquisition: customers keep arriving over the whole period
    last_quarter = config.end_ts - 100 * 86_400
    assert sum(1 for t in first_seen.values() if t >= last_quarter) > 0.1 * len(first_seen)
    # churn: many buyers have not bought for 180 days at the end, many are recent
    recency_days = [(config.end_ts - max(purchases[c])) / 86_400 for c in buyers]
    assert 0.2 < sum(r >= 180 for r in recency_days) / len(buyers) < 0.8
    assert sum(r < 30 for r in recency_days) / len(buyers) > 0.05
    # same-day bursts
    same_day = sum(
        1 for c in buyers for a, b in itertools.pairwise(purchases[c]) if a // 86_400 == b // 86_400
    )
    assert same_day > 0.01 * sum(counts[k] * k for k in counts)
    # interactions correlate with activity: repeat buyers interact more than prospects and one-time buyers
    repeat = [interactions[c] for c in buyers if len(purchases[c]) >= 5]
    once = [interactions[c] for c in buyers if len(purchases[c]) == 1]
    assert sum(repeat) / len(repeat) > 2 * sum(once) / len(once)


def test_order_values_are_heavy_tailed(stream: list[Message]) -> None:
    amounts = sorted(
        Decimal(json.loads(m.value)["amount"])
        for m in stream
        if m.topic == PURCHASES and json.loads(m.value)["type"] == "purchase"
    )
    n = len(amounts)
    median = amounts[n // 2]
    mean = sum(amounts) / n
    assert mean > Decimal("1.5") * median
    assert amounts[int(n * 0.99)] > 8 * median
    assert amounts[-1] > 30 * median
    assert amounts[0] >= Decimal("0.50")
    assert any(a != a.to_integral_value() for a in amounts)  # cents precision


def test_duplicates_repeat_the_previous_message() -> None:
    messages = list(generate(SimConfig(customers=300, seed=4, days=100, duplicate_ratio=0.05)))
    duplicates = 0
    for previous, message in itertools.pairwise(messages):
        if message.kind == "duplicate":
            duplicates += 1
            assert (message.topic, message.key, message.value, message.ts) == (
                previous.topic, previous.key, previous.value, previous.ts,
            )
    assert duplicates > 0.03 * len(messages) / 1.05
    times = [m.ts for m in messages]
    assert times == sorted(times)


def test_bad_messages_have_exactly_the_labelled_defect() -> None:
    messages = list(generate(SimConfig(customers=600, seed=8, days=200, bad_ratio=0.05)))
    bad = [m for m in messages if m.kind in DLQ_REASONS]
    assert {m.kind for m in bad} == set(DLQ_REASONS)
    ids = set()
    for message in bad:
        if message.kind == "too_large":
            assert len(message.value) > MAX_BYTES
            check_valid_but_for_size = json.loads(message.value)
            assert check_valid_but_for_size["customer_id"] == message.key.decode()
            continue
        assert len(message.value) <= MAX_BYTES
        if message.kind == "malformed_json":
            with pytest.raises(ValueError):
                json.loads(message.value)
            continue
        event = json.loads(message.value)
        ids.add(event.get("event_id"))
        if message.kind == "key_mismatch":
            assert message.key is None or message.key.decode() != event["customer_id"]
        elif message.kind == "currency":
            assert message.topic == PURCHASES and event["currency"] != "USD"
        elif message.kind == "schema":
            with pytest.raises(AssertionError):
                check_valid(message._replace(kind="event"))


def test_bad_messages_get_their_reason_from_the_decoder() -> None:
    """Cross-check with the worker's decoder: each bad message is rejected for the labelled reason."""
    events = pytest.importorskip("segmenter.events")
    for message in generate(SimConfig(customers=400, seed=3, days=150, bad_ratio=0.05, duplicate_ratio=0.01)):
        kind = events.Kind(message.topic)
        if message.kind in ("event", "duplicate"):
            events.decode_event(kind, message.key, message.value)
        else:
            with pytest.raises(events.InvalidEvent) as rejected:
                events.decode_event(kind, message.key, message.value)
            assert rejected.value.reason.value == message.kind


def test_live_continues_with_now_stamps_and_bounded_memory() -> None:
    simulation = Simulation(SimConfig(customers=200, seed=1, start=date(2024, 1, 1), days=60))
    historic = list(simulation.historic())
    clock = itertools.count(int(datetime(2030, 1, 1, tzinfo=UTC).timestamp()) * 10)
    live = list(itertools.islice(simulation.live(lambda: next(clock) / 10), 60_000))
    stamps = [m.ts for m in live]
    assert stamps == sorted(stamps) and stamps[0] >= historic[-1].ts
    assert all(check_valid(m) for m in live[:2000])
    assert sum(simulation.persona_counts.values()) > 200  # acquisition goes on
    assert len(simulation._heap) < 20 * sum(simulation.persona_counts.values())
    customers_in_last = {m.key for m in live[-5000:]}
    assert len(customers_in_last) > 20  # still a lively population


def test_generator_streams_lazily() -> None:
    # Speed is measured by the benchmarks, not asserted here: a large configuration yields its first
    # 100k messages without generating the whole history first.
    count = sum(1 for _ in itertools.islice(generate(SimConfig(customers=5000, seed=1)), 100_000))
    assert count == 100_000


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        SimConfig(customers=0)
    with pytest.raises(ValueError):
        SimConfig(bad_ratio=2)
