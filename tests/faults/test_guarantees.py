"""at_least_once vs exactly_once: throughput of the same replay, and timer-sent control messages.

* Throughput: the same generated history (FAULTS_TPUT_CUSTOMERS customers, ~90 messages each) is produced
  to fresh topics for each guarantee, then two workers consume it from the start; the time from "both
  ready" to "every message handled" (summed `segmenter_events_total`) gives messages/s. Repeated
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

from tests.faults.harness import code_version, create_topics, env_int, lag, read_all
from tests.integration.pipeline_helpers import produce
from tests.integration.workerproc import Names, WorkerProcess
from tests.oracle import eventgen

pytestmark = pytest.mark.faults
GUARANTEES = ("at_least_once", "exactly_once")


def _handled(workers: list[WorkerProcess]) -> float:
    total = 0.0
    for worker in workers:
        for value in re.findall(r"^segmenter_events_total\{[^}]*\} (\S+)$", worker.metrics(), re.M):
            total += float(value)
    return total


@pytest.mark.timeout(1200)
def test_throughput_of_the_guarantees(private_stack, report_dir, tmp_path) -> None:
    customers = env_int("FAULTS_TPUT_CUSTOMERS", 1100)
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
            stalled = None
            try:
                for worker in workers:
                    worker.start(wait_ready=0)
                for worker in workers:
                    worker.wait_ready(180)
                ready = time.monotonic()
                last, last_change = -1.0, ready
                while (handled := _handled(workers)) < len(messages):
                    assert all(w.process.poll() is None for w in workers), workers[0].log_tail()
                    if handled != last:
                        last, last_change = handled, time.monotonic()
                    elif time.monotonic() - last_change > 60:
                        stalled = {
                            "handled": handled,
                            "of": len(messages),
                            "lag": lag(broker, names.app_id, inputs),
                        }
                        break
                    time.sleep(0.2)
                done = time.monotonic()
            finally:
                for worker in workers:
                    worker.stop()
            runs.append(
                {
                    "guarantee": guarantee,
                    "repeat": repeat,
                    "messages": len(messages),
                    "startup_seconds": round(ready - started, 1),
                    "processing_seconds": None if stalled else round(done - ready, 2),
                    "messages_per_second": None if stalled else round(len(messages) / (done - ready)),
                    "stalled": stalled,
                }
            )
    rates = {
        g: [r["messages_per_second"] for r in runs if r["guarantee"] == g and not r["stalled"]]
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
    summary["exactly_once_cost_percent"] = round(
        100 * (1 - means["exactly_once"] / means["at_least_once"]), 1
    )
    path = report_dir / f"throughput-{int(time.time())}.json"
    path.write_text(json.dumps(summary, indent=2))
    print(f"\nthroughput: {means} (exactly_once cost {summary['exactly_once_cost_percent']}%), report {path}")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("guarantee", GUARANTEES)
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
