"""The whole event path on the real broker and Redis, checked against the independent oracle (tests/oracle).

Interleaving between the two input topics is up to the consumer, so exact per-customer transition sequences
are compared for customers whose events all travel on one topic (their sequence depends only on their own
events and the clock, SPEC section 6); for everyone, final tiers, counts, sets, outcomes and dead letters
are order-independent and compared exactly.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import orjson
import pytest

from tests.integration.pipeline_helpers import (
    delete_prefix,
    produce,
    read_topic,
    redis_state,
    tier_changes,
    topic_size,
    wait_until_quiet,
)
from tests.integration.workerproc import Names, WorkerProcess
from tests.oracle import eventgen, model

PARTITIONS = 4
CLOCK_TO = "2027-03-01T00:00:00Z"
TRANSITION_KEYS = (
    "event_id",
    "customer_id",
    "dimension",
    "seq",
    "from",
    "to",
    "at",
    "reason",
    "cause_event_id",
)


def _clock_advance(stack, names: Names, to: str) -> None:
    from click.testing import CliRunner

    from streams.cli import cli

    env = {**names.env(), "SEGMENTER_BROKER": stack.broker}
    result = CliRunner().invoke(cli, ["clock", "advance", "--to", to], env=env)
    assert result.exit_code == 0, result.output


def _single_topic_customers(messages) -> set[str]:
    kinds: dict[str, set[str]] = defaultdict(set)
    for kind, _key, value in messages:
        try:
            customer_id = orjson.loads(value)["customer_id"]
        except Exception:
            continue
        if isinstance(customer_id, str):
            kinds[customer_id].add(kind)
    return {customer_id for customer_id, seen in kinds.items() if len(seen) == 1}


@pytest.fixture
def names(unique_name, stack):
    names = Names(unique_name)
    names.create_topics(stack.broker, PARTITIONS)
    yield names
    delete_prefix(stack.redis_url, names.redis_prefix)


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_generated_history_matches_the_oracle(stack, names, tmp_path, guarantee: str) -> None:
    messages = eventgen.generate(seed=7, n_customers=120, start="2025-01-01", days=700, bad_per_reason=3)
    expected = model.run_messages(messages, n_partitions=PARTITIONS, clock_advance_to=CLOCK_TO)
    args = ["--processing-guarantee", guarantee]
    worker = WorkerProcess(stack.broker, stack.redis_url, names, tmp_path / "data", extra_args=args).start()
    try:
        produce(stack.broker, names, messages)
        _clock_advance(stack, names, CLOCK_TO)
        wait_until_quiet(lambda: (topic_size(stack.broker, names.tier_changes), worker.metrics().count("\n")))
        metrics = worker.metrics()
    finally:
        worker.stop()

    # Outcomes and dead letters (SPEC section 2, 8).
    dead = read_topic(stack.broker, names.dead_letters)
    headers = [dict(record.headers) for record in dead]
    assert Counter(h["x-dlq-reason"].decode() for h in headers) == expected.dead_letter_reasons
    assert set(expected.dead_letter_reasons) == set(model.DLQ_REASONS)
    assert sorted((r.key or b"", r.value) for r in dead) == sorted(
        (k or b"", v) for _, k, v in expected.dead_letters
    )
    for header in headers:
        assert header["x-dlq-source-topic"].decode() in (names.purchases, names.interactions)
        assert int(header["x-dlq-source-offset"]) >= 0 and header["x-dlq-detail"]
    topic_kind = {names.purchases: "purchases", names.interactions: "interactions"}
    counted = {
        (topic_kind[topic], outcome): int(float(value))
        for outcome, topic, value in re.findall(
            r'^segmenter_events_total\{outcome="(\w+)",topic="([^"]+)"\} (\S+)$', metrics, re.M
        )
    }
    assert counted == dict(expected.outcomes)

    # Tier-change events: well-formed, gap-free, and equal to the oracle's for single-topic customers.
    changes = tier_changes(stack.broker, names)
    by_stream: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for change in changes:
        by_stream[(change["customer_id"], change["dimension"])].append(change)
    for (customer_id, _dimension), stream in by_stream.items():
        assert [c["seq"] for c in stream] == list(range(1, len(stream) + 1))
        assert [c["from"] for c in stream] == [None] + [c["to"] for c in stream[:-1]]
        assert all(c["event_id"] == f"{customer_id}:{c['dimension']}:{c['seq']}" for c in stream)
    single = _single_topic_customers(messages)
    assert len(single) >= 10
    for customer_id in single:
        got = [{k: c[k] for k in TRANSITION_KEYS} for c in changes if c["customer_id"] == customer_id]
        want = [{k: t[k] for k in TRANSITION_KEYS} for t in expected.transitions_of(customer_id)]
        key = lambda c: (c["dimension"], c["seq"])  # noqa: E731 - per-dimension order is what is defined
        assert sorted(got, key=key) == sorted(want, key=key), customer_id

    # Redis: final tiers of everyone, counts and sets (SPEC section 7).
    records, counts, members = redis_state(stack.redis_url, names.redis_prefix)
    assert set(records) == set(expected.final)
    for customer_id, view in expected.final.items():
        record = records[customer_id]
        assert {d: record[d] for d in view.tiers} == view.tiers, customer_id
        for change_stream_dimension, tier in view.tiers.items():
            assert by_stream[(customer_id, change_stream_dimension)][-1]["to"] == tier
    assert counts == expected.tier_counts
    expected_members: dict[tuple[str, str], set[str]] = defaultdict(set)
    for customer_id, view in expected.final.items():
        for dimension, tier in view.tiers.items():
            expected_members[(dimension, tier)].add(customer_id)
    assert {k: v for k, v in members.items() if v} == dict(expected_members)
    # Records of single-topic customers are fully determined: every field must match.
    for customer_id in single:
        if customer_id in expected.final:
            record = dict(records[customer_id])
            assert record.pop("rules_version") and int(record.pop("version")) >= 1
            assert record == expected.final[customer_id].redis_hash(), customer_id


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_restarted_worker_resumes_without_re_emitting(stack, names, tmp_path, store: str) -> None:
    messages = eventgen.generate(seed=11, n_customers=60, start="2025-01-01", days=400, bad_per_reason=1)
    half = len(messages) // 2
    args = ["--store", store]
    worker = WorkerProcess(stack.broker, stack.redis_url, names, tmp_path / "data1", extra_args=args).start()
    try:
        produce(stack.broker, names, messages[:half])
        wait_until_quiet(lambda: topic_size(stack.broker, names.tier_changes))
    finally:
        worker.stop()
    before = topic_size(stack.broker, names.tier_changes)
    # memory: a fresh process with an empty data dir, state back from the changelog; rocksdb: the same data
    # dir, state from the local store plus the changelog after its persisted offsets. Offsets from the group.
    second_dir = tmp_path / ("data2" if store == "memory" else "data1")
    worker = WorkerProcess(stack.broker, stack.redis_url, names, second_dir, extra_args=args).start()
    try:
        produce(stack.broker, names, messages[half:])
        _clock_advance(stack, names, CLOCK_TO)
        wait_until_quiet(lambda: topic_size(stack.broker, names.tier_changes))
    finally:
        worker.stop()
    changes = tier_changes(stack.broker, names)
    assert len(changes) > before
    ids = [c["event_id"] for c in changes]
    assert len(ids) == len(set(ids)), "a transition was emitted twice"
    by_stream: dict[tuple[str, str], list[int]] = defaultdict(list)
    for change in changes:
        by_stream[(change["customer_id"], change["dimension"])].append(change["seq"])
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in by_stream.values())
    expected = model.run_messages(messages, n_partitions=PARTITIONS, clock_advance_to=CLOCK_TO)
    records, counts, _ = redis_state(stack.redis_url, names.redis_prefix)
    assert counts == expected.tier_counts
    for customer_id, view in expected.final.items():
        assert {d: records[customer_id][d] for d in view.tiers} == view.tiers
