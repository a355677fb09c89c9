"""Failover: `kill -9` of one worker out of two, until the other owns and processes its partitions.

    python -m bench.failover [--partitions 4 --repeat 3 --interval 0.05]

Per repetition (fresh app id and Redis prefix, the same topics): two workers A and B of one app id; a probe
producer sends one brand-new customer's purchase to every input partition every `--interval` seconds
(explicit partition, confluent-kafka), and a checker polls Redis (EXISTS on the probes' record keys every
20 ms) for when each probe became visible. Once both workers process steadily, A is killed with SIGKILL at a
random moment of its loop (after a random 0-1 s pause), and the benchmark measures from the kill:

- `owns`: the time of B's log line `assigned partitions [...]` that includes A's partitions (librdkafka
  notices the dead member after `session.timeout.ms`; then B restores those partitions);
- `processes`: for each of A's partitions, the first probe sent after the kill that reached Redis; the
  figure is the latest over A's partitions (the last one to come back);
- B's own partitions: their longest gap between two probes reaching Redis around the kill (the eager
  `range` assignor revokes everything on a rebalance, so B pauses too).
"""

from __future__ import annotations

import argparse
import random
import re
import threading
import time
from datetime import datetime
from typing import Any

from bench.common import (
    BROKER,
    WORK_DIR,
    BenchNames,
    Worker,
    cleanup,
    cleanup_redis,
    create_topics,
    fmt,
    log,
    machine_info,
    machine_line,
    markdown_table,
    median,
    metric_samples,
    redis_client,
    rfc3339,
    run_benchmark,
    runs_cell,
    unique_prefix,
)

ASSIGNED = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO streams\.partitions: assigned partitions \[([\d, ]*)\]"
)


class Probes:
    """Sends probes on every partition and records when each one's Redis record appeared."""

    def __init__(self, names: BenchNames, run: str, partitions: int, interval: float) -> None:
        self.names, self.run, self.partitions, self.interval = names, run, partitions, interval
        self.sent: dict[str, tuple[int, float]] = {}  # customer id -> (partition, time.time() of produce)
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads = [
            threading.Thread(target=self._produce, daemon=True),
            threading.Thread(target=self._check, daemon=True),
        ]

    def start(self) -> Probes:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(10)

    def _produce(self) -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": BROKER, "linger.ms": 1, "acks": "all"})
        n = 0
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            for partition in range(self.partitions):
                customer = f"fo{self.run}-{partition}-{n}"
                value = (
                    f'{{"event_id":"{customer}","type":"purchase","customer_id":"{customer}",'
                    f'"ts":"{rfc3339(int(time.time() * 1e6))}","amount":"12.00"}}'
                ).encode()
                with self.lock:
                    self.sent[customer] = (partition, time.time())
                producer.produce(
                    self.names.purchases, key=customer.encode(), value=value, partition=partition
                )
            producer.poll(0)
            n += 1
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        producer.flush(10)

    def _check(self) -> None:
        client = redis_client()
        prefix = self.names.redis_prefix(self.run)
        while not self.stop_event.is_set():
            with self.lock:
                waiting = [c for c in self.sent if c not in self.seen]
            if waiting:
                pipe = client.pipeline(transaction=False)
                for customer in waiting:
                    pipe.exists(f"{prefix}:customer:{customer}")
                found = pipe.execute()
                now = time.time()
                with self.lock:
                    for customer, exists in zip(waiting, found, strict=True):
                        if exists:
                            self.seen[customer] = now
            time.sleep(0.02)
        client.close()

    def first_seen_after(self, partition: int, after: float) -> float | None:
        with self.lock:
            times = [
                self.seen[c]
                for c, (p, sent) in self.sent.items()
                if p == partition and sent > after and c in self.seen
            ]
        return min(times, default=None)

    def longest_gap(self, partition: int, start: float, end: float) -> float:
        with self.lock:
            times = sorted(
                t for c, t in self.seen.items() if self.sent[c][0] == partition and start <= t <= end
            )
        edges = [start, *times, end]
        return max((b - a for a, b in zip(edges, edges[1:], strict=False)), default=0.0)

    def steady(self, seconds: float) -> bool:
        """Every partition had a probe reach Redis within the last `seconds`."""
        now = time.time()
        with self.lock:
            recent = {self.sent[c][0] for c, t in self.seen.items() if now - t < seconds}
        return len(recent) == self.partitions


def owned_partitions(worker: Worker) -> set[int]:
    return {
        int(labels["partition"])
        for labels, _ in metric_samples(worker.metrics(), "segmenter_watermark_timestamp_seconds")
    }


def assigned_after(worker: Worker, after: float, wanted: set[int]) -> float | None:
    """Wall time of the worker's first `assigned partitions` log line after `after` covering `wanted`."""
    if worker.log_path is None or not worker.log_path.exists():
        return None
    for line in worker.log_path.read_text(errors="replace").splitlines():
        match = ASSIGNED.match(line)
        if not match:
            continue
        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        partitions = {int(x) for x in match.group(2).replace(" ", "").split(",") if x}
        if at > after and wanted <= partitions:
            return at
    return None


def measure(names: BenchNames, run: str, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    base = WORK_DIR / names.prefix / run
    a = Worker(names, run, base / "a").start()
    b = Worker(names, run, base / "b").start()
    probes = Probes(names, run, args.partitions, args.interval).start()
    try:
        a.wait_ready(timeout=args.timeout)
        b.wait_ready(timeout=args.timeout)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            a.check_alive()
            b.check_alive()
            mine = owned_partitions(a)
            if probes.steady(1.0) and mine and len(mine) < args.partitions and owned_partitions(b):
                break
            time.sleep(0.2)
        else:
            raise TimeoutError("the two workers did not settle into processing every partition")
        time.sleep(args.settle)
        mine = owned_partitions(a)
        theirs = set(range(args.partitions)) - mine
        time.sleep(rng.random())
        killed_at = time.time()
        a.process.kill()  # SIGKILL: no revocation, no transaction abort, no leaving the group
        a.process.wait(10)
        back: dict[int, float | None] = dict.fromkeys(mine)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and any(v is None for v in back.values()):
            b.check_alive()
            for partition in mine:
                if back[partition] is None:
                    back[partition] = probes.first_seen_after(partition, killed_at)
            time.sleep(0.05)
        time.sleep(2.0)
        ended = time.time()
        owns = assigned_after(b, killed_at, mine)
        processes = None if any(v is None for v in back.values()) else max(back.values()) - killed_at
        gaps = {p: probes.longest_gap(p, killed_at - 1.0, ended) for p in theirs}
    finally:
        probes.stop()
        if a.alive():
            a.process.kill()
        b.stop()
        cleanup_redis(names.redis_prefix(run))
    result = {
        "killed_partitions": sorted(mine),
        "owns_s": None if owns is None else owns - killed_at,
        "processes_s": processes,
        "per_partition_s": {p: (None if t is None else t - killed_at) for p, t in back.items()},
        "survivor_longest_gap_s": max(gaps.values(), default=None),
    }
    log(
        f"  {run}: killed A (partitions {sorted(mine)}): B owns them after {fmt(result['owns_s'], 2)} s, "
        f"processes them after {fmt(processes, 2)} s; B's own partitions paused up to "
        f"{fmt(result['survivor_longest_gap_s'], 2)} s"
    )
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__.split("\n")[0])
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.05, help="Seconds between probes per partition.")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="Seconds of steady processing before the kill."
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = BenchNames(unique_prefix("fo"))
    result: dict[str, Any] = {
        "benchmark": "failover",
        "params": vars(args),
        "prefix": names.prefix,
        "machine": machine_info(),
        "runs": [],
    }
    rng = random.Random(args.seed)
    try:
        create_topics(names, args.partitions)
        for rep in range(args.repeat):
            log(f"repetition {rep + 1}/{args.repeat}")
            result["runs"].append(measure(names, f"r{rep}", args, rng))
    finally:
        if not args.keep:
            cleanup(names)
    runs = result["runs"]
    result["summary"] = {
        key: median(r[key] for r in runs) for key in ("owns_s", "processes_s", "survivor_longest_gap_s")
    }
    return result


def render(result: dict[str, Any]) -> str:
    p, s, runs = result["params"], result["summary"], result["runs"]
    from streams.kafka_clients import SESSION_TIMEOUT_MS, TRANSACTION_TIMEOUT_MS

    lines = [
        f"### Failover (kill -9 of one worker of two, {p['partitions']} partitions, probes every "
        f"{p['interval'] * 1000:g} ms per partition, {p['repeat']} runs)",
        "",
        machine_line(result["machine"]),
        "",
        f"Command: `python -m bench.failover --partitions {p['partitions']} --repeat {p['repeat']}`",
        "",
        markdown_table(
            ["from the kill to", "median s", "runs s"],
            [
                [
                    "the survivor owns the partitions (its `assigned` log line)",
                    fmt(s["owns_s"], 1),
                    runs_cell((r["owns_s"] for r in runs), 1),
                ],
                [
                    "**the survivor processes them (last partition's first probe in Redis)**",
                    fmt(s["processes_s"], 1),
                    runs_cell((r["processes_s"] for r in runs), 1),
                ],
                [
                    "the survivor's own partitions: longest pause",
                    fmt(s["survivor_longest_gap_s"], 1),
                    runs_cell((r["survivor_longest_gap_s"] for r in runs), 1),
                ],
            ],
        ),
        "",
        f"Worker settings: `session.timeout.ms` {SESSION_TIMEOUT_MS:,}, `transaction.timeout.ms` "
        f"{TRANSACTION_TIMEOUT_MS:,} (a transaction the dead worker left open blocks `read_committed` reads "
        "of its partitions until it times out).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_benchmark("failover", parse_args, run, render, argv)


if __name__ == "__main__":
    main()
