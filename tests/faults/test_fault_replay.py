"""Replay a generated history through two workers while injecting faults; compare the outcome with the oracle.

Faults, at points of the replay chosen from the seed (progress = share of the history produced so far):
kill -9 of a worker (FAULTS_KILLS times, each restarted after 0.5-5 s), one restart of the Kafka broker,
Redis stopped for FAULTS_REDIS_DOWN_SECONDS while producing continues (Redis comes back empty: it runs
without persistence) followed by FLUSHALL and `segmenter redis rebuild --yes` while the workers run, and a
third worker added then removed (two extra rebalances). All of it on a private Kafka + Redis
(tests/faults/stack.py).

exactly_once is strict: the tier-changes topic, read with read_committed, holds every (customer, dimension,
seq) exactly once, gap-free, and the dead-letter topic every bad message exactly once. at_least_once is
checked as strictly everywhere its design promises it (tables, Redis, dead letters present, offsets); on the
output topics it may show what streams/checkpoint.py documents for a batch cut while being written: repeated
tier changes or dead letters whose first copy was written just before a kill -9 or a broker outage, and
tier changes lost from such a batch (seq gaps and what follows from them). Those are reported as
`allowed_at_least_once`, never silently.

Run: `pytest -m faults tests/faults` (sizes and the guarantees tried: see docs/RELIABILITY.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
import uuid
from dataclasses import asdict

import pytest

from tests.faults.harness import (
    Findings,
    Fleet,
    PacedProducer,
    ReplayConfig,
    applied_events,
    check_dead_letters,
    check_redis,
    check_tables,
    check_transitions,
    cli,
    code_version,
    committed_offsets,
    create_topics,
    end_offsets,
    lag,
    metric_sums,
    oracle_result,
    read_all,
    single_topic_customers,
    start_oracle,
    stop_oracle,
    wait_for,
)
from tests.integration.pipeline_helpers import redis_state, wait_until_quiet
from tests.integration.workerproc import Names
from tests.oracle import eventgen

pytestmark = pytest.mark.faults

# guarantee/store pairs: both guarantees and both stores in three replays (each ~5 min on 2 cores).
MATRIX = [
    tuple(pair.split("/"))
    for pair in (
        os.environ.get("FAULTS_MATRIX") or "exactly_once/memory,exactly_once/rocksdb,at_least_once/memory"
    ).split(",")
    if pair
]
WORKERS = ("w1", "w2")
# What a batch cut while being written can leave on the tier-changes topic without transactions
# (streams/checkpoint.py): lost tier changes show as gaps, and through them as a broken from/to chain, a
# wrong last tier on the topic and a single-topic sequence that differs from the oracle's.
AT_LEAST_ONCE_LOSSES = ("seq_gap", "from_to_chain", "final_tier_in_topic", "single_topic_sequence")


def _plan(config: ReplayConfig, rng: random.Random) -> list[tuple[float, str]]:
    kills = [(rng.uniform(0.03, 0.97), "kill") for _ in range(config.kills)]
    fixed = [(0.30, "kafka"), (0.50, "redis"), (0.62, "add_worker"), (0.80, "remove_worker")]
    return sorted(kills + fixed)


@pytest.mark.timeout(3600)
@pytest.mark.parametrize(("guarantee", "store"), MATRIX, ids=["-".join(pair) for pair in MATRIX])
def test_replay_under_faults(private_stack, report_dir, tmp_path, guarantee: str, store: str) -> None:
    config = ReplayConfig()
    rng = random.Random(config.seed)
    broker, redis_url = private_stack.broker, private_stack.redis_url
    names = Names(f"f{uuid.uuid4().hex[:8]}")
    create_topics(broker, names, config.partitions)
    findings = Findings()
    figures = findings.figures
    figures.update(
        guarantee=guarantee,
        store=store,
        config=asdict(config),
        topics_prefix=names.prefix,
        code=code_version(),
    )
    run_started = time.monotonic()

    messages = eventgen.generate(
        config.seed, config.customers, config.start, config.days, bad_per_reason=config.bad_per_reason
    )
    figures["messages"] = len(messages)
    pool, oracle_futures = start_oracle(messages, config.partitions, config.clock_to)

    fleet = Fleet(broker, redis_url, names, tmp_path, guarantee, store)
    fleet.live_log = report_dir / "live.log"
    fleet.note(
        f"=== {guarantee} {store} seed {config.seed}: {len(messages)} messages, "
        f"{config.partitions} partitions"
    )
    plan = _plan(config, rng)
    kills = 0
    try:
        for name in WORKERS:
            fleet.start(name)
        for name in WORKERS:
            fleet.slots[name].worker.wait_ready(180)
        fleet.note("workers ready")
        producer = PacedProducer(broker, names, messages, config.produce_seconds)
        producer.start()
        for point, action in plan:
            while producer.progress < point and not producer.done.is_set():
                time.sleep(0.1)
            fleet.note(f"{action} at {producer.progress:.0%} produced")
            if action == "kill":
                victim = rng.choice(WORKERS)
                fleet.kill(victim)
                kills += 1
                time.sleep(rng.uniform(0.5, 5.0))
                fleet.start(victim)
            elif action == "kafka":
                fleet.server_down("kafka")
                seconds = private_stack.restart_kafka(config.kafka_down_seconds)
                figures["kafka_restart_seconds"] = round(seconds, 1)
                fleet.server_back("kafka")
                fleet.note("kafka back")
                fleet.restart_refused()
            elif action == "redis":
                fleet.server_down("redis")
                private_stack.stop_redis()
                time.sleep(config.redis_down_seconds)
                private_stack.start_redis()
                fleet.server_back("redis")
                fleet.note("redis back (empty)")
                fleet.restart_refused()
                time.sleep(2)
                # With the workers running: `redis rebuild` holds their writes while it runs (060f4b5; before,
                # records, sets and counts could end up apart: fault-findings F2).
                private_stack.flushall()
                started = time.monotonic()
                rebuild = cli(["redis", "rebuild", "--yes"], names, broker, redis_url)
                figures["rebuild"] = {
                    "exit": rebuild.returncode,
                    "seconds": round(time.monotonic() - started, 1),
                    "output": rebuild.stdout.strip().splitlines()[-1:]
                    + rebuild.stderr.strip().splitlines()[-3:],
                }
                fleet.note(f"flushall + redis rebuild: exit {rebuild.returncode}")
            elif action == "add_worker":
                fleet.start("w3")
            elif action == "remove_worker":
                try:
                    fleet.slots["w3"].worker.wait_ready(150)
                except AssertionError:
                    fleet.note("w3 not ready after 150 s; removing it anyway")
                fleet.stop("w3")
        producer.done.wait(timeout=config.produce_seconds * 4 + 600)
        fleet.note(f"produced {producer.sent} in {producer.elapsed:.0f}s")
        figures["produce_seconds_actual"] = round(producer.elapsed, 1)
        figures["producer_errors"] = producer.errors[:5]
        figures["kills"] = kills

        # Let every worker come back (an unexpected exit is recorded, then the worker is restarted).
        time.sleep(max(0.0, fleet.quiet_until() - time.monotonic()))
        fleet.restart_refused()
        for name in WORKERS:
            if not fleet.slots[name].alive():
                fleet.start(name)
        for name in WORKERS:
            fleet.slots[name].worker.wait_ready(240)
        inputs = [names.purchases, names.interactions]
        figures["input_records"] = sum(end_offsets(broker, inputs).values())
        # `clock advance` waits by itself until each partition has processed the inputs produced before it.
        advance = cli(["clock", "advance", "--to", config.clock_to], names, broker, redis_url)
        assert advance.returncode == 0, advance.stderr
        fleet.note("clock advance sent")
        expected = oracle_result(oracle_futures, timeout=900)
        fleet.note("oracle done")
        try:
            waited = wait_for(
                lambda: redis_state(redis_url, names.redis_prefix)[1] == expected.tier_counts,
                config.converge_seconds,
                "Redis tier counts to equal the oracle's",
                interval=2.0,
            )
            fleet.note(f"Redis counts equal the oracle's (+{waited:.0f}s)")
        except AssertionError as exc:
            findings.problem("convergence", str(exc))
            fleet.note("Redis counts did NOT converge to the oracle's")
        wait_until_quiet(lambda: sum(end_offsets(broker, [names.tier_changes]).values()), quiet_seconds=5)
        fleet.note("outputs quiet")
        # Everything is processed; the group's committed offsets must have caught up too.
        with contextlib.suppress(AssertionError):
            wait_for(lambda: lag(broker, names.app_id, inputs) == 0, 60, "the group to commit all inputs")
        ends, done = end_offsets(broker, inputs), committed_offsets(broker, names.app_id)
        behind = {
            f"{tp.topic}[{tp.partition}]": (done.get(tp), end)
            for tp, end in ends.items()
            if done.get(tp) != end
        }
        figures["uncommitted_at_end"] = behind
        for where, (committed, end) in behind.items():
            findings.problem("offsets_not_committed", f"{where}: committed {committed}, end {end}")
        fleet.note(f"committed offsets behind on {len(behind)} partition(s)")
    finally:
        fleet.close()
        stop_oracle(pool)
    figures["replay_seconds"] = round(time.monotonic() - run_started, 1)
    figures["incarnations"] = {name: slot.incarnation for name, slot in fleet.slots.items()}
    figures["unexpected_exits"] = fleet.unexpected_exits
    figures["liveness_restarts"] = fleet.liveness_restarts
    figures["interruptions"] = len(fleet.interruptions)
    figures["refused_starts_server_down"] = fleet.refused_starts
    figures["timeline"] = fleet.events
    figures["metrics_summed_over_incarnations"] = metric_sums(fleet.totals(), names)
    figures["oracle"] = {
        "outcomes": {f"{k}.{o}": n for (k, o), n in sorted(expected.outcomes.items())},
        "transitions": len(expected.transitions),
        "customers": len(expected.final),
    }

    # ---- checks ------------------------------------------------------------------------------------
    single = single_topic_customers(messages)
    strict = guarantee == "exactly_once"
    check_transitions(
        read_all(broker, names.tier_changes),
        expected,
        single,
        findings,
        interruptions=None if strict else fleet.interruptions,
    )
    check_redis(redis_url, names.redis_prefix, expected, single, findings)
    check_dead_letters(
        read_all(broker, names.dead_letters), expected, {names.purchases, names.interactions}, findings
    )
    if strict and figures["dead_letters_duplicates"]:
        findings.problem("dead_letter_duplicates", f"{figures['dead_letters_duplicates']} repeated")
    check_tables(broker, names.app_id, applied_events(messages), findings)
    redis_check = cli(["redis", "check"], names, broker, redis_url)
    figures["redis_check"] = {
        "exit": redis_check.returncode,
        "output": (redis_check.stdout + redis_check.stderr)[-2000:],
    }
    if redis_check.returncode != 0:
        findings.problem("redis_check", redis_check.stdout[-500:] + redis_check.stderr[-500:])
    if figures["input_records"] != len(messages):
        findings.problem("input_records", f"{figures['input_records']} records for {len(messages)} messages")
    if not strict and fleet.interruptions:
        allowed = {
            kind: findings.problems.pop(kind) for kind in AT_LEAST_ONCE_LOSSES if kind in findings.problems
        }
        figures["allowed_at_least_once"] = {kind: figures[f"problems.{kind}"] for kind in allowed}
        figures["allowed_at_least_once_examples"] = allowed
    for exit_ in fleet.unexpected_exits:
        findings.problem("unexpected_exit", exit_)
    if producer.errors:
        findings.problem("producer", "; ".join(producer.errors[:3]))
    if (figures.get("rebuild") or {}).get("exit") != 0:
        findings.problem("rebuild", str(figures.get("rebuild")))
    figures["problems"] = dict(findings.problems)
    report = report_dir / f"replay-{guarantee}-{store}-{config.seed}-{int(time.time())}.json"
    report.write_text(json.dumps(figures, indent=2, default=str))
    print(f"\nfault replay report: {report}")
    assert kills == config.kills, f"only {kills} of {config.kills} kills happened"
    assert not findings.problems, f"{sorted(findings.problems)} (report: {report})"
