"""kill -9 of one worker out of two: how long until the survivor owns and processes the dead one's partitions.

Two exactly_once workers share 4 partitions. The first half of a generated history is processed, then the
second half is produced over 20 s; 6 s into it the worker that owns partitions is killed with SIGKILL and
not restarted, and right after the kill one marker purchase per partition is produced for a new customer.
The takeover time is the time from the kill until every marker of the dead worker's partitions is in Redis
(Redis is written after the batch's transaction committed: the survivor has been told the member is gone
(session timeout, 10 s), rebalanced, restored the partitions from their changelogs, waited for the dead
worker's open transaction where it held offsets, and committed a batch of them). It is printed, and only
bounded generously (TAKEOVER_BOUND_S); what is asserted is correctness: afterwards, with the survivor alone,
the outputs equal the oracle's (tier changes exactly once with gap-free seq, Redis, tables, dead letters)
and `segmenter redis check` agrees.
"""

from __future__ import annotations

import re
import time
import urllib.request
import uuid

import orjson
import pytest

from tests.faults.harness import (
    Findings,
    PacedProducer,
    applied_events,
    check_dead_letters,
    check_redis,
    check_tables,
    check_transitions,
    cli,
    create_topics,
    lag,
    oracle_result,
    read_all,
    single_topic_customers,
    start_oracle,
    stop_oracle,
    wait_for,
)
from tests.integration.pipeline_helpers import produce, redis_state
from tests.integration.workerproc import Names, WorkerProcess
from tests.oracle import eventgen, model

pytestmark = pytest.mark.faults
PARTITIONS = 4
TAKEOVER_BOUND_S = 120.0
START, DAYS = "2024-01-01", 365
CLOCK_TO = "2025-01-01T00:00:00Z"  # the day after the history
WATERMARK = re.compile(r'^segmenter_watermark_timestamp_seconds\{partition="(\d+)"\}', re.M)


def _owned(worker: WorkerProcess) -> set[int]:
    """Partitions the worker exports a watermark for: set at assignment for each owned partition with data."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=2) as response:
            return {int(p) for p in WATERMARK.findall(response.read().decode())}
    except OSError:
        return set()


def _markers(partitions: list[int]) -> dict[int, tuple[str, bytes]]:
    """One new customer per partition (found by Kafka's partitioner) with one purchase.

    Its event time is the history's first second: an older event never raises a watermark, so the markers do
    not change anyone else's evaluation days.
    """
    out: dict[int, tuple[str, bytes]] = {}
    index = 0
    while len(out) < len(partitions) and index < 10_000:
        customer = f"takeover-{index}"
        partition = model.partition_for_key(customer.encode(), PARTITIONS)
        if partition in partitions and partition not in out:
            event = {
                "event_id": f"{customer}-p1",
                "type": "purchase",
                "customer_id": customer,
                "ts": f"{START}T00:00:01Z",
                "amount": "10.00",
            }
            out[partition] = (customer, orjson.dumps(event))
        index += 1
    assert len(out) == len(partitions)
    return out


@pytest.mark.timeout(900)
def test_survivor_takes_over_the_partitions_of_a_killed_worker(private_stack, tmp_path) -> None:
    broker, redis_url = private_stack.broker, private_stack.redis_url
    names = Names(f"k{uuid.uuid4().hex[:8]}")
    create_topics(broker, names, PARTITIONS)
    messages = eventgen.generate(11, 400, START, DAYS, bad_per_reason=5)
    half = len(messages) // 2
    inputs = [names.purchases, names.interactions]
    workers = [
        WorkerProcess(broker, redis_url, names, tmp_path / n / "data", extra_args=["--stall-seconds", "60"])
        for n in ("w1", "w2")
    ]
    markers = _markers(list(range(PARTITIONS)))
    marker_messages = [("purchases", customer.encode(), value) for customer, value in markers.values()]
    everything = messages + marker_messages
    pool, oracle = start_oracle(everything, PARTITIONS, CLOCK_TO)
    findings = Findings()
    try:
        for worker in workers:
            worker.start(wait_ready=0)
        for worker in workers:
            worker.wait_ready(180)
        produce(broker, names, messages[:half])
        wait_for(lambda: lag(broker, names.app_id, inputs) == 0, 240, "the first half to be committed")
        wait_for(
            lambda: (
                _owned(workers[0]) | _owned(workers[1]) == set(range(PARTITIONS))
                and not _owned(workers[0]) & _owned(workers[1])
            ),
            60,
            "the two workers to share the partitions",
        )
        victim, survivor = (workers[1], workers[0]) if _owned(workers[1]) else (workers[0], workers[1])
        orphaned = sorted(_owned(victim))

        producer = PacedProducer(broker, names, messages[half:], 20.0)
        producer.start()
        time.sleep(6)
        assert not producer.done.is_set()
        victim.stop(kill=True)
        killed_at = time.monotonic()
        produce(broker, names, marker_messages)
        owned_after = wait_for(
            lambda: _owned(survivor) == set(range(PARTITIONS)), TAKEOVER_BOUND_S, "the survivor to own all"
        )
        wanted = {markers[p][0] for p in orphaned}
        wait_for(
            lambda: wanted <= set(redis_state(redis_url, names.redis_prefix)[0]),
            TAKEOVER_BOUND_S,
            "the markers of the dead worker's partitions in Redis",
            interval=0.2,
        )
        processed_after = time.monotonic() - killed_at
        print(
            f"\ntakeover after kill -9 of the owner of partitions {orphaned}: survivor owns them after "
            f"{owned_after:.1f}s, has processed and committed them after {processed_after:.1f}s"
        )
        assert processed_after < TAKEOVER_BOUND_S

        producer.done.wait(timeout=120)
        assert producer.done.is_set() and not producer.errors, producer.errors[:3]
        wait_for(lambda: lag(broker, names.app_id, inputs) == 0, 240, "everything to be committed")
        advance = cli(["clock", "advance", "--to", CLOCK_TO], names, broker, redis_url)
        assert advance.returncode == 0, advance.stderr
        expected = oracle_result(oracle, timeout=600)
        wait_for(
            lambda: redis_state(redis_url, names.redis_prefix)[1] == expected.tier_counts,
            180,
            "Redis tier counts to equal the oracle's",
            interval=2.0,
        )
        # The dead worker's open transaction holds back read_committed readers until it times out (30 s).
        time.sleep(5)
        assert survivor.process is not None and survivor.process.poll() is None, survivor.log_tail(30)
    finally:
        for worker in workers:
            worker.stop()
        stop_oracle(pool)
    single = single_topic_customers(messages) - {customer for customer, _ in markers.values()}
    check_transitions(read_all(broker, names.tier_changes), expected, single, findings)
    check_redis(redis_url, names.redis_prefix, expected, single, findings)
    check_dead_letters(read_all(broker, names.dead_letters), expected, set(inputs), findings)
    if findings.figures["dead_letters_duplicates"]:
        findings.problem("dead_letter_duplicates", str(findings.figures["dead_letters_duplicates"]))
    check_tables(broker, names.app_id, applied_events(everything), findings)
    redis_check = cli(["redis", "check"], names, broker, redis_url)
    if redis_check.returncode != 0:
        findings.problem("redis_check", redis_check.stdout[-500:] + redis_check.stderr[-500:])
    shown = {k: v for k, v in findings.figures.items() if not k.startswith("problems")}
    print(f"takeover figures: {shown}")
    assert findings.figures["transitions_read"] > 0
    assert not findings.problems, dict(findings.problems)
