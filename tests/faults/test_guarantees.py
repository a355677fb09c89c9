"""at_least_once vs exactly_once: throughput of the same replay, and timer-sent control messages.

* Throughput: the same generated history (FAULTS_TPUT_CUSTOMERS customers, ~90 messages each) is produced
  to fresh topics for each guarantee, then two workers are started on it; the time from the first handled
  message to "every message handled" (summed `segmenter_events_total`) gives messages/s, and the time from
  starting the processes the end-to-end figure (start-up, transactional producers included). Repeated
  FAULTS_TPUT_REPEATS times, alternating the guarantees. Figures go to $FAULTS_REPORT_DIR.
* Timers: with `--clock wall` the worker sends itself a control message per owned partition every 30 s
  from an `app.timer` (the wall clock raises the watermark, SPEC section 3). In exactly_once mode Faust
  routes such a send into the open transaction of that partition, which is only committed when an input
  event of that partition is processed: on a quiet partition the tick never becomes visible to the
  read_committed consumer, so the watermark never moves.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid

import pytest

from tests.faults.harness import code_version, create_topics, end_offsets, env_int, lag, read_all
from tests.integration.pipeline_helpers import produce
from tests.integration.workerproc import Names, WorkerProcess
from tests.oracle import eventgen

pytestmark = pytest.mark.faults
GUARANTEES = ("at_least_once", "exactly_once")


def _handled(workers: list[WorkerProcess]) -> float:
    total = 0.0
    for worker in workers:
        try:
            text = worker.metrics()
        except OSError:  # still starting
            continue
        for value in re.findall(r"^segmenter_events_total\{[^}]*\} (\S+)$", text, re.M):
            total += float(value)
    return total


@pytest.mark.timeout(1200)
def test_throughput_of_the_guarantees(private_stack, report_dir, tmp_path) -> None:
    customers = env_int("FAULTS_TPUT_CUSTOMERS", 700)
    repeats = env_int("FAULTS_TPUT_REPEATS", 2)
    partitions = env_int("FAULTS_PARTITIONS", 6)
    messages = eventgen.generate(3, customers, "2024-01-01", 730, bad_per_reason=10)
    broker, redis_url = private_stack.broker, private_stack.redis_url
    runs: list[dict] = []
    for repeat in range(repeats):
        for guarantee in GUARANTEES:
            names = Names(f"t{uuid.uuid4().hex[:8]}")
            create_topics(broker, names, partitions)
            produce(broker, names, messages)
            inputs = [names.purchases, names.interactions]
            workers = [
                WorkerProcess(
                    broker,
                    redis_url,
                    names,
                    tmp_path / f"{guarantee}-{repeat}-{i}",
                    extra_args=["--processing-guarantee", guarantee],
                )
                for i in range(2)
            ]
            started = time.monotonic()
            stalled = failed = None
            first = done = None
            try:
                for worker in workers:
                    worker.start(wait_ready=0)
                last, last_change = -1.0, started
                while True:
                    for worker in workers:
                        if worker.process.poll() is not None:
                            raise AssertionError(f"worker exited with {worker.process.returncode}")
                    handled = _handled(workers)
                    now = time.monotonic()
                    if handled and first is None:
                        first = now
                    if handled >= len(messages):
                        done = now
                        break
                    if handled != last:
                        last, last_change = handled, now
                    elif now - last_change > 90:
                        stalled = {
                            "handled": handled,
                            "of": len(messages),
                            "lag": lag(broker, names.app_id, inputs),
                        }
                        break
                    time.sleep(0.1)
            except AssertionError as exc:
                reasons = set()
                for worker in workers:
                    reasons |= set(
                        re.findall(r"Crashed reason=(\w+)", worker.log_path.read_text(errors="replace"))
                    )
                failed = f"{str(exc).splitlines()[0]}; crash reasons in the logs: {sorted(reasons)}"
            finally:
                for worker in workers:
                    worker.stop()
            runs.append(
                {
                    "guarantee": guarantee,
                    "repeat": repeat,
                    "messages": len(messages),
                    "first_message_after_seconds": None if first is None else round(first - started, 1),
                    "end_to_end_seconds": None if done is None else round(done - started, 2),
                    "processing_seconds": None if done is None else round(done - first, 2),
                    "messages_per_second": None if done is None else round(len(messages) / (done - first)),
                    "stalled": stalled,
                    "failed": failed,
                }
            )
    rates = {
        g: [r["messages_per_second"] for r in runs if r["guarantee"] == g and r["messages_per_second"]]
        for g in GUARANTEES
    }
    summary = {
        "runs": runs,
        "mean_messages_per_second": {g: round(sum(v) / len(v)) if v else None for g, v in rates.items()},
        "partitions": partitions,
        "workers": 2,
        "cpus": os.cpu_count(),
        "code": code_version(),
    }
    means = summary["mean_messages_per_second"]
    if means["exactly_once"] and means["at_least_once"]:
        summary["exactly_once_cost_percent"] = round(
            100 * (1 - means["exactly_once"] / means["at_least_once"]), 1
        )
    path = report_dir / f"throughput-{int(time.time())}.json"
    path.write_text(json.dumps(summary, indent=2))
    cost = summary.get("exactly_once_cost_percent")
    print(f"\nthroughput: {means} (exactly_once cost {cost}%), report {path}")
    eos_failures = [r for r in runs if r["guarantee"] == "exactly_once" and (r["stalled"] or r["failed"])]
    if eos_failures:  # experimental with Faust 0.15.3 (docs/RELIABILITY.md): reported, not asserted
        print(f"exactly_once (experimental) runs that failed: {eos_failures}")
    bad = [r for r in runs if r["guarantee"] == "at_least_once" and (r["stalled"] or r["failed"])]
    assert not bad, f"{len(bad)} at_least_once run(s) stalled (no progress for 60 s) or failed: {bad}"
    assert rates["at_least_once"], "no at_least_once run finished"


FAUST_EOS_DEFECT = (
    "faust-streaming 0.15.3: sends to topics the consumer does not subscribe to, and sends from timers on "
    "quiet partitions, are not committed with the transactions (docs/RELIABILITY.md); exactly_once is "
    "experimental. strict: a Faust that fixes it makes this test pass and the suite say so."
)


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "guarantee",
    [
        "at_least_once",
        pytest.param("exactly_once", marks=pytest.mark.xfail(strict=True, reason=FAUST_EOS_DEFECT)),
    ],
)
def test_wall_clock_ticks_reach_quiet_partitions(private_stack, tmp_path, guarantee: str) -> None:
    broker, redis_url = private_stack.broker, private_stack.redis_url
    names = Names(f"w{uuid.uuid4().hex[:8]}")
    partitions = 2
    create_topics(broker, names, partitions)
    worker = WorkerProcess(
        broker,
        redis_url,
        names,
        tmp_path / "data",
        extra_args=["--clock", "wall", "--processing-guarantee", guarantee],
    )
    worker.start()
    try:
        deadline = time.monotonic() + 75  # the tick runs every 30 s
        seen: set[str] = set()
        while time.monotonic() < deadline and len(seen) < partitions:
            seen = set(
                re.findall(
                    r'^segmenter_watermark_timestamp_seconds\{partition="(\d+)"\}', worker.metrics(), re.M
                )
            )
            time.sleep(1)
    finally:
        worker.stop()
    ticks = [r for r in read_all(broker, names.control) if r.key == b"wall"]
    assert len(seen) == partitions, (
        f"{guarantee}: after 75 s the wall clock moved the watermark of partitions {sorted(seen)} only; "
        f"{len(ticks)} committed wall tick(s) in {names.control}"
    )


@pytest.mark.timeout(300)
@pytest.mark.xfail(strict=True, reason=FAUST_EOS_DEFECT)
def test_exactly_once_writes_tier_changes_and_dead_letters_inside_transactions(
    private_stack, tmp_path
) -> None:
    """With exactly_once, outputs must be part of the transaction that commits the input offsets (and the
    table changelog); otherwise work that is aborted (kill -9, fencing) leaves its tier changes visible
    to read_committed consumers and the replay emits them again, differently.

    A transactional write leaves a commit marker in the partition, so end offset > records read. Faust
    0.15.3 picks the transaction from the *destination* partition, found through the consumer's metadata;
    the consumer does not subscribe to the output topics, gets None, and sends them with the
    non-transactional producer (faust/transport/drivers/aiokafka.py, `key_partition`).
    """
    broker, redis_url = private_stack.broker, private_stack.redis_url
    names = Names(f"x{uuid.uuid4().hex[:8]}")
    create_topics(broker, names, 2)
    messages = eventgen.generate(5, 20, "2025-01-01", 60, bad_per_reason=1)
    worker = WorkerProcess(
        broker, redis_url, names, tmp_path / "data", extra_args=["--processing-guarantee", "exactly_once"]
    )
    worker.start()
    try:
        produce(broker, names, messages)
        deadline = time.monotonic() + 60
        while _handled([worker]) < len(messages) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # a few commit intervals
    finally:
        worker.stop()
    for topic in (names.tier_changes, names.dead_letters, f"{names.app_id}-customers-changelog"):
        records = len(read_all(broker, topic))
        end = sum(end_offsets(broker, [topic]).values())
        assert records > 0
        assert end > records, f"{topic}: {records} records, end offset {end}: written outside transactions"
