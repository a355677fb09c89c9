"""examples/: the logic of the marketing consumer and the support script's argument handling, without Kafka or
Redis (tests/integration/test_ops_live.py runs both against a real worker)."""

from __future__ import annotations

import importlib.util
import subprocess

import pytest

from tests.ops.helpers import REPO

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def marketing():
    spec = importlib.util.spec_from_file_location("marketing_consumer", EXAMPLES / "marketing_consumer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("to", "actions", "expected"),
    [
        ("vip", [], ["vip_welcome"]),
        ("at_risk", [], ["winback_offer"]),
        ("churned", ["winback_last_chance", "survey"], ["winback_last_chance", "survey"]),
        ("active", [], []),
        ("high", ["upsell"], ["upsell"]),
        ("vip", ["vip_welcome", "gift", "gift"], ["vip_welcome", "gift"]),
    ],
)
def test_actions_for(marketing, to, actions, expected):
    assert marketing.actions_for({"to": to, "actions": actions}) == expected


def test_action_lines_carry_the_transition(marketing):
    import json

    event = {"event_id": "c-1:lifecycle:4", "customer_id": "c-1", "dimension": "lifecycle", "from": "at_risk",
             "to": "churned", "at": "2026-01-01T00:00:00Z", "reason": "time", "actions": [],
             "when": "recency_days >= 180"}
    (line,) = [json.loads(text) for text in marketing.action_lines(event)]
    assert line == {"action": "winback_last_chance", "customer_id": "c-1", "dimension": "lifecycle",
                    "from": "at_risk", "to": "churned", "at": "2026-01-01T00:00:00Z", "reason": "time",
                    "when": "recency_days >= 180", "event_id": "c-1:lifecycle:4"}


def test_seen_events_is_a_bounded_lru(marketing):
    seen = marketing.SeenEvents(capacity=2)
    assert seen.add("a") and seen.add("b")
    assert not seen.add("a")  # duplicate; "a" becomes the most recent
    assert seen.add("c")  # evicts "b", the least recently seen
    assert len(seen) == 2
    assert not seen.add("a")
    assert seen.add("b")


def test_arguments(marketing, monkeypatch):
    monkeypatch.delenv("SEGMENTER_BROKER", raising=False)
    monkeypatch.delenv("SEGMENTER_TOPIC_TIER_CHANGES", raising=False)
    args = marketing.parse_args([])
    assert args.broker == ["localhost:9092"] and args.topic == "customer.tier-changes"
    monkeypatch.setenv("SEGMENTER_BROKER", "kafka://a:9092,b:9092")
    assert marketing.parse_args([]).broker == ["a:9092", "b:9092"]
    for bad in (["--max-messages", "0"], ["--timeout", "-1"], ["--dedupe-size", "0"]):
        with pytest.raises(SystemExit) as caught:
            marketing.parse_args(bad)
        assert caught.value.code == 2


def test_support_lookup_usage():
    for args in ([], ["a", "b"], ["--help"]):
        result = subprocess.run(["bash", str(EXAMPLES / "support_lookup.sh"), *args], capture_output=True,
                                text=True, timeout=30, check=False)
        assert result.returncode == 2 and "usage:" in result.stderr


class RecordingConsumer:
    """Stands in for kafka.KafkaConsumer: records how it was configured, delivers nothing."""

    configs: list[dict] = []

    def __init__(self, *topics, **config) -> None:
        RecordingConsumer.configs.append({"topics": topics, **config})

    def poll(self, timeout_ms: int = 0) -> dict:
        return {}

    def __iter__(self):
        return iter(())

    def commit(self, offsets=None) -> None:
        raise AssertionError("nothing was handled, nothing to commit")

    def close(self) -> None:
        pass


@pytest.fixture
def recording_consumer(monkeypatch):
    import kafka

    RecordingConsumer.configs = []
    monkeypatch.setattr(kafka, "KafkaConsumer", RecordingConsumer)
    return RecordingConsumer


def test_marketing_consumer_reads_committed_only(marketing, recording_consumer, monkeypatch):
    """The worker writes tier changes in transactions: kafka-python defaults to read_uncommitted."""
    monkeypatch.delenv("SEGMENTER_BROKER", raising=False)
    args = marketing.parse_args(["--timeout", "0.01", "--topic", "t.tier-changes"])
    assert marketing.run(args) == 0
    (config,) = recording_consumer.configs
    assert config["topics"] == ("t.tier-changes",)
    assert config["isolation_level"] == "read_committed"
    assert config["enable_auto_commit"] is False


def test_demo_live_view_reads_committed_only(recording_consumer):
    import threading
    from collections import deque

    from streams.cli import demo_cmd

    stop = threading.Event()
    stop.set()
    demo_cmd._follow_transitions("127.0.0.1:9", deque(), stop)
    (config,) = recording_consumer.configs
    assert config["topics"] == (demo_cmd.DEMO_TOPICS.tier_changes,)
    assert config["isolation_level"] == "read_committed"


# --- example rules files -----------------------------------------------------------------------------------

EXAMPLE_RULES = sorted(EXAMPLES.glob("rules-*.yaml"))


def test_the_example_rules_files_are_there():
    assert {"rules-b2b.yaml", "rules-predictive.yaml"} <= {path.name for path in EXAMPLE_RULES}


@pytest.mark.parametrize("path", EXAMPLE_RULES, ids=[path.name for path in EXAMPLE_RULES])
def test_example_rules_load(path):
    """`segmenter rules check` would accept them: the same loader (file, line and reason on error)."""
    from segmenter.rules import load_rules

    rules = load_rules(path)
    assert rules.dimension_names


def test_b2b_rules_declare_what_the_issue_asks():
    from segmenter.rules import load_rules

    rules = load_rules(EXAMPLES / "rules-b2b.yaml")
    assert {"industry", "service_level", "assortment"} <= set(rules.dimension_names)
    kinds = {feature.name: (feature.kind, feature.types) for feature in rules.custom_features}
    assert kinds["tickets_90d"] == ("count_interactions", frozenset({"support_ticket", "complaint"}))
    assert kinds["categories_365d"] == ("distinct_categories", None)
    assert {"industry", "region"} <= set(rules.attribute_names)


def _b2b_tiers(events: list[tuple[str, dict]]) -> dict[str, dict[str, str]]:
    """Feed (topic, event) pairs through the engine under examples/rules-b2b.yaml; each customer's tiers."""
    import json

    from segmenter.engine import Engine, InputMessage
    from segmenter.events import Kind
    from segmenter.rules import load_rules

    engine = Engine(load_rules(EXAMPLES / "rules-b2b.yaml"), {}, {})
    offsets = {kind: 0 for kind in ("purchases", "interactions", "profiles")}
    records = []
    for topic, event in events:
        key, value = event["customer_id"].encode(), json.dumps(event).encode()
        records.append(InputMessage(Kind(topic), topic, 0, offsets[topic], key, value, []))
        offsets[topic] += 1
    result = engine.process(records)
    assert not result.dead_letters
    engine.flush()
    customers = {event["customer_id"] for _, event in events}
    return {cid: dict((result.customers.get(cid) or engine.customer(cid, 0)).tiers) for cid in customers}


def _profile(cid: str, day: str, **attributes) -> tuple[str, dict]:
    return "profiles", {"event_id": f"{cid}-p{day}", "customer_id": cid, "ts": f"2026-{day}T08:00:00Z",
                        "attributes": attributes}


def _purchase(cid: str, day: str, amount: str = "100.00", category: str | None = None) -> tuple[str, dict]:
    event = {"event_id": f"{cid}-o{day}-{category}", "type": "purchase", "customer_id": cid,
             "ts": f"2026-{day}T09:00:00Z", "amount": amount}
    if category:
        event["category"] = category
    return "purchases", event


def _ticket(cid: str, day: str, kind: str = "support_ticket") -> tuple[str, dict]:
    return "interactions", {"event_id": f"{cid}-t{day}", "type": kind, "customer_id": cid,
                            "ts": f"2026-{day}T10:00:00Z"}


def test_b2b_rules_classify_by_attributes_tickets_and_assortment():
    events = sorted(
        [
            # trade, EU, 3 tickets/complaints in 90 days, 3 categories
            _profile("a", "03-01", industry="retail", region="EU"),
            *(_purchase("a", "03-02", category=c) for c in ("books", "toys", "home")),
            _ticket("a", "03-05"), _ticket("a", "03-06", "complaint"), _ticket("a", "03-07"),
            # never synced from the CRM, one purchase without a category
            _purchase("b", "03-07"),
            # an industry outside the list, APAC, one ticket, 5 categories
            _profile("c", "03-01", industry="mining", region="APAC"),
            *(_purchase("c", "03-02", category=c) for c in ("books", "toys", "home", "shoes", "sports")),
            _ticket("c", "03-03"),
            # public sector in the US with one ticket, one category: cross-sell
            _profile("d", "03-01", industry="public", region="US"),
            _purchase("d", "03-02", category="books"), _ticket("d", "03-03"),
            # a large LATAM account without tickets (no industry attribute)
            _profile("e", "03-01", region="LATAM"), _purchase("e", "03-02", amount="25000.00"),
            # region removed by a later profile event: `in` on a missing attribute is false
            _profile("f", "03-01", region="EU", industry="services"), _profile("f", "03-02", region=None),
            _ticket("f", "03-03"),
            # three tickets, then an order 100 days later: the tickets have left the 90-day window
            *(_ticket("g", day) for day in ("01-05", "01-06", "01-07")), _purchase("g", "04-17"),
        ],
        key=lambda item: item[1]["ts"],
    )
    tiers = _b2b_tiers(events)
    expected = {
        "a": {"industry": "trade", "service_level": "escalation", "assortment": "multi"},
        "b": {"industry": "unknown", "service_level": "standard", "assortment": "none"},
        "c": {"industry": "other", "service_level": "priority_global", "assortment": "broad"},
        "d": {"industry": "public_sector", "service_level": "priority_local", "assortment": "narrow"},
        "e": {"industry": "unknown", "service_level": "key_account", "assortment": "none", "value": "high"},
        "f": {"industry": "services", "service_level": "priority_global"},
        "g": {"service_level": "standard", "assortment": "none"},
    }
    for cid, want in expected.items():
        assert {dimension: tiers[cid][dimension] for dimension in want} == want, cid
