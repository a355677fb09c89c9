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
             "to": "churned", "at": "2026-01-01T00:00:00Z", "reason": "time", "actions": []}
    (line,) = [json.loads(text) for text in marketing.action_lines(event)]
    assert line == {"action": "winback_last_chance", "customer_id": "c-1", "dimension": "lifecycle",
                    "from": "at_risk", "to": "churned", "at": "2026-01-01T00:00:00Z", "reason": "time",
                    "event_id": "c-1:lifecycle:4"}


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
